"""Tutorial 2's optimizers compared: SGD, momentum, Nesterov, Adagrad, RMSProp, Adam and L-BFGS (optax),
plus SGD and momentum as pure pytree updates (jaxdl.functional.optim, tested equal to optax).

On an ill-conditioned quadratic and on the Rosenbrock function each optimizer's trajectory is drawn on
the contours; at the saddle of x^2 - y^2 + y^4 / 4 plain gradient descent stays put while a little
gradient noise escapes; and a learning-rate range test (tutorial 3's "learning rate finder") sweeps the
rate over a few hundred steps of a real network (an MLP on the digits) and suggests one.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import data as data_lib
from jaxdl import plots
from jaxdl.claims import Claim, Run, at_most
from jaxdl.experiments import Experiment
from jaxdl.experiments.settings import OptimizersConfig as Config
from jaxdl.functional import mlp_apply, mlp_init, optim
from jaxdl.functional.losses import softmax_cross_entropy
from jaxdl.rundir import RunDir


def quadratic(p):
    """An ill-conditioned bowl, ``(x^2 + 50 y^2) / 2``: curvature 50 times steeper along y, minimum 0 at (0, 0).

    Args:
      p: the point ``(x, y)``, an array of shape (2,).

    Returns:
      The value, a scalar.

    Example:
      >>> float(quadratic(jnp.array([1.0, 1.0])))
      25.5
    """
    return 0.5 * (p[0] ** 2 + 50.0 * p[1] ** 2)


def rosenbrock(p):
    """Rosenbrock's banana valley, ``(1 - x)^2 + 100 (y - x^2)^2``: minimum 0 at (1, 1) in a curved valley.

    Args:
      p: the point ``(x, y)``, an array of shape (2,).

    Returns:
      The value, a scalar.

    Example:
      >>> float(rosenbrock(jnp.array([1.0, 1.0])))
      0.0
    """
    return (1 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


PROBLEMS = {
    # name: (function, start, learning rates by optimizer)
    "quadratic": (quadratic, (1.0, 1.0), {"sgd": 0.035, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.5,
                                          "rmsprop": 0.02, "adam": 0.05}),
    "rosenbrock": (rosenbrock, (-1.2, 1.0), {"sgd": 1e-3, "momentum": 2e-4, "nesterov": 2e-4, "adagrad": 0.3,
                                             "rmsprop": 2e-3, "adam": 0.02}),
}  # fmt: skip


def make(name: str, lr: float) -> optax.GradientTransformation:
    """One of the compared first-order optimizers (momentum 0.9 where it has one).

    Args:
      name: "sgd" or "momentum" (the pure pytree versions of
        :mod:`jaxdl.functional.optim`), "nesterov", "adagrad", "rmsprop" or
        "adam" (optax).
      lr: the learning rate.

    Returns:
      The optimizer as an optax transformation.
    """
    return {
        "sgd": lambda: optim.sgd(lr),  # the pure pytree versions
        "momentum": lambda: optim.momentum(lr, 0.9),
        "nesterov": lambda: optax.sgd(lr, momentum=0.9, nesterov=True),
        "adagrad": lambda: optax.adagrad(lr),
        "rmsprop": lambda: optax.rmsprop(lr),
        "adam": lambda: optax.adam(lr),
    }[name]()


def trajectory(f, start, tx: optax.GradientTransformation, steps: int) -> np.ndarray:
    """The points ``tx`` visits minimising ``f`` from ``start``, compiled as one scan.

    Args:
      f: the objective, ``(2,) array -> scalar`` (e.g. :func:`rosenbrock`).
      start: the first point ``(x, y)``.
      tx: the optimizer.
      steps: how many steps.

    Returns:
      The path, float32 ``(steps + 1, 2)``: the start, then the point after
      each step.
    """

    def step(carry, _):
        p, s = carry
        updates, s = tx.update(jax.grad(f)(p), s, p)
        p = optax.apply_updates(p, updates)
        return (p, s), p

    p0 = jnp.asarray(start, jnp.float32)
    _, path = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), length=steps))(p0)
    return np.concatenate([np.asarray(p0)[None], np.asarray(path)])


def lbfgs_trajectory(f, start, steps: int) -> np.ndarray:
    """Like :func:`trajectory`, for optax's L-BFGS with its line search (which needs ``f`` itself).

    Args:
      f: the objective, ``(2,) array -> scalar``.
      start: the first point ``(x, y)``.
      steps: how many steps (each may evaluate ``f`` several times).

    Returns:
      The path, float32 ``(steps + 1, 2)``.
    """
    tx = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(f)

    def step(carry, _):
        p, s = carry
        value, grad = value_and_grad(p, state=s)
        updates, s = tx.update(grad, s, p, value=value, grad=grad, value_fn=f)
        p = optax.apply_updates(p, updates)
        return (p, s), p

    p0 = jnp.asarray(start, jnp.float32)
    _, path = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), length=steps))(p0)
    return np.concatenate([np.asarray(p0)[None], np.asarray(path)])


def saddle(p):
    """``x^2 - y^2 + y^4 / 4``: a saddle at (0, 0), minima -1 at (0, +-sqrt(2)).

    Args:
      p: the point ``(x, y)``, an array of shape (2,).

    Returns:
      The value, a scalar.
    """
    return p[0] ** 2 - p[1] ** 2 + p[1] ** 4 / 4


def _saddle(config: Config) -> dict[str, Any]:
    def run(noise: float):
        def step(p, k):
            g = jax.grad(saddle)(p) + noise * jax.random.normal(k, (2,))
            return p - 0.05 * g, None

        keys = jax.random.split(jax.random.key(config.seed), config.steps)
        p, _ = jax.lax.scan(step, jnp.array([1.0, 0.0]), keys)
        return p

    stuck, escaped = run(0.0), run(0.01)
    return {"saddle_gd_final": float(saddle(stuck)), "saddle_noisy_final": float(saddle(escaped))}


def _sgd_step(params, grads, lr):
    """One step of the pure pytree SGD (``jaxdl.functional.optim.sgd``); ``lr`` may be traced."""
    updates, _ = optim.sgd(lr).update(grads, optim.SGDState())
    return optax.apply_updates(params, updates)


def _range_test(config: Config):
    ds = data_lib.load("digits", "train")
    x = jnp.asarray(ds.inputs.reshape(len(ds), -1), jnp.float32) / 255.0
    y = jnp.asarray(ds.labels)
    params = mlp_init(jax.random.key(config.seed), [64, 64, 10], init="he")

    def loss(p, xb, yb):
        return softmax_cross_entropy(mlp_apply(p, xb), yb)

    rates = jnp.logspace(-4, 1, config.range_steps)

    def run(p, x, y):  # the images are arguments of the program, not constants in it
        def step(p, inputs):
            lr, k = inputs
            rows = jax.random.choice(k, x.shape[0], (64,), replace=False)
            value, g = jax.value_and_grad(loss)(p, x[rows], y[rows])
            return _sgd_step(p, g, lr), value

        return jax.lax.scan(step, p, (rates, keys))

    keys = jax.random.split(jax.random.key(config.seed + 1), config.range_steps)
    _, losses = jax.jit(run)(params, x, y)
    losses, rates = np.asarray(losses), np.asarray(rates)
    smooth = np.convolve(losses, np.ones(15) / 15, mode="same")
    start = len(rates) // 30  # skip the smoothing window's edge
    valid = slice(start, max(int(np.argmin(smooth)) + 1, start + 2))  # descending, before the loss blows up
    slope = np.gradient(smooth[valid], np.log10(rates[valid]))
    suggested = float(rates[valid][int(np.argmin(slope))])

    def train(lr):
        def step(p, k):
            rows = jax.random.choice(k, x.shape[0], (64,), replace=False)
            return _sgd_step(p, jax.grad(loss)(p, x[rows], y[rows]), lr), None

        p, _ = jax.lax.scan(step, params, jax.random.split(jax.random.key(config.seed + 2), 300))
        return float(loss(p, x, y))

    return rates, losses, smooth, suggested, {lr: train(lr) for lr in (1e-3, suggested)}


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """Trajectories on the quadratic and Rosenbrock, the saddle, and the learning-rate range test.

    Writes the range test's losses by step as the history, ``trajectories.png``
    and ``lr_range_test.png``.

    Args:
      config: ``steps`` per trajectory (and on the saddle), ``range_steps`` of
        the range test, and the seed.
      run_dir: where the history and figures go.

    Returns:
      Metrics: ``{problem}_{optimizer}_final_value``, f after ``steps`` for
      each problem ("quadratic", "rosenbrock") and optimizer (the six of
      :func:`make` and "lbfgs"); ``saddle_gd_final`` and ``saddle_noisy_final``
      (f where gradient descent from (1, 0) ends, without and with gradient
      noise; 0 is stuck, -1 the minimum); ``range_test_suggested_lr``, and
      ``range_test_loss_at_suggested`` and ``range_test_loss_at_1e-3`` (the
      digits MLP's loss after 300 SGD steps at each rate).
    """
    paths: dict[str, dict[str, np.ndarray]] = {}
    metrics: dict[str, Any] = {}
    for problem, (f, start, rates) in PROBLEMS.items():
        paths[problem] = {name: trajectory(f, start, make(name, lr), config.steps) for name, lr in rates.items()}
        paths[problem]["lbfgs"] = lbfgs_trajectory(f, start, config.steps)
        for name, path in paths[problem].items():
            metrics[f"{problem}_{name}_final_value"] = float(f(jnp.asarray(path[-1])))
    metrics.update(_saddle(config))
    rates, losses, smooth, suggested, trained = _range_test(config)
    metrics["range_test_suggested_lr"] = suggested
    metrics["range_test_loss_at_1e-3"] = trained[1e-3]
    metrics["range_test_loss_at_suggested"] = trained[suggested]
    run_dir.append_history(
        [{"step": i + 1, "lr": float(r), "loss": float(v)} for i, (r, v) in enumerate(zip(rates, losses, strict=True))]
    )
    for problem in PROBLEMS:
        finals = ", ".join(f"{n} {metrics[f'{problem}_{n}_final_value']:.2e}" for n in paths[problem])
        print(f"{problem}, f after {config.steps} steps: {finals}")
    print(f"saddle of x^2 - y^2 + y^4/4 from (1, 0): gradient descent ends at f = {metrics['saddle_gd_final']:.3f} "
          f"(stuck on the saddle); with gradient noise 0.01 at f = {metrics['saddle_noisy_final']:.3f} "
          "(the minimum is -1)")  # fmt: skip
    print(f"learning-rate range test on a digits MLP: suggests lr = {suggested:.3g}; 300 SGD steps reach loss "
          f"{trained[suggested]:.3f} with it and {trained[1e-3]:.3f} with lr = 0.001")  # fmt: skip
    run_dir.save_figure(plots.optimizer_paths(paths, {k: v[0] for k, v in PROBLEMS.items()}), "trajectories.png")
    run_dir.save_figure(plots.range_test(rates, losses, smooth, suggested), "lr_range_test.png")
    return metrics


EXPERIMENT = Experiment(
    name="optimizers",
    description="tutorial 2: SGD, momentum, Nesterov, Adagrad, RMSProp, Adam, L-BFGS on a quadratic, Rosenbrock, "
    "a saddle; LR finder",
    config=Config,
    run=run,
    smallest=("steps=100", "range_steps=60"),
    claims=(
        Run(name="optimizers", quick=("steps=100", "range_steps=100"), claims=(
            Claim(source="tutorial 2", statement="Rosenbrock after 300 steps: L-BFGS's f (the others stall in the "
                  "valley)", tutorial="", metric="rosenbrock_lbfgs_final_value", fmt="{:.2g}",
                  target=at_most(1e-6, "<= 1e-6")),
            Claim(source="tutorial 2", statement="at a saddle, gradient descent stalls (f stays 0) and noise "
                  "escapes to the minimum -1: f with noise", tutorial="escapes", metric="saddle_noisy_final",
                  fmt="{:.3f}", target=at_most(-0.9, "<= -0.9")),
            Claim(source="tutorial 3", statement="the learning-rate finder's suggestion for a digits MLP",
                  tutorial="(future work)", metric="range_test_suggested_lr", fmt="{:.3g}"),
        )),
    ),
)  # fmt: skip
