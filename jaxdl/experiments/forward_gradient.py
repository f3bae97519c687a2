"""Training by forward mode alone: the forward gradient (Baydin et al., 2022) against backprop.

Each step of the forward gradient runs one ``jax.jvp`` along a fresh random
direction v ~ N(0, I) and steps along (grad f . v) v, an unbiased estimate of
the gradient whose variance grows with the parameter count n: it is
(n + 1) |grad f|^2. On the blob classifier (21 parameters, full batch), an MLP
on the 8x8 digits and, where CIFAR-10 is available, tutorial 1's CIFAR-10 MLP
(308,310 parameters), both estimators train the same network from the same
start with SGD for the same number of steps. Reported per network: the loss
against steps and against seconds, the compiled step's time and temporary
memory, the steps and seconds each needs to reach the loss that the forward
gradient ends at, a z-test of the estimator's mean against the true gradient
(as minibatch-sgd does for minibatches), and its variance against (n + 1) |g|^2.
"""

from __future__ import annotations

import functools
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxdl import data as data_lib
from jaxdl import plots
from jaxdl.autodiff import forward_gradient
from jaxdl.claims import Claim, Run, at_least, at_most
from jaxdl.compilation_cache import level_0_options, run_once
from jaxdl.experiments import Experiment
from jaxdl.experiments.blobs import make_loss_fn
from jaxdl.experiments.settings import ForwardGradientConfig as Config
from jaxdl.functional import mlp_apply, mlp_init, softmax_cross_entropy
from jaxdl.models.blobs import BlobClassifier
from jaxdl.rundir import RunDir


def _problem(name: str, config: Config, key: jax.Array):
    """(params, loss(params, x, y), x, y, batch size) of one network."""
    if name == "blobs":
        x, y = (jnp.asarray(a) for a in data_lib.make_blobs_dataset())
        model = BlobClassifier()
        loss_fn = make_loss_fn(model)
        return model.init(key, x[:1])["params"], lambda p, xb, yb: loss_fn(p, (xb, yb))[0], x, y, len(y)
    if name == "digits":
        ds, sizes = data_lib.load("digits", "train"), [64, 32, 10]
    else:
        ds, sizes = data_lib.load("cifar10", "train", data=config.data or None), [3072, 100, 10]
    x = data_lib.normalize(ds.inputs, "unit").reshape(len(ds), -1)
    y = jnp.asarray(ds.labels)
    params = run_once(lambda k: mlp_init(k, sizes, init="torch"), key)  # one program, not one per operation

    def loss(p, xb, yb):
        return softmax_cross_entropy(mlp_apply(p, xb), yb)

    return params, loss, x, y, min(config.batch_size, len(y))


def _train(loss, params, x, y, batch, steps, lr, key, estimator: str):
    """SGD for ``steps`` steps with backprop's gradient or the forward gradient; compiled once, timed blocked.

    The data are arguments of the compiled program, not constants in it (XLA would fold them)."""
    tx = optax.sgd(lr)

    def step(carry, k, x, y):
        p, s = carry
        # uniform rows with replacement: a permutation of 50,000 rows per step would cost more than the step
        rows = (
            jnp.arange(len(y)) if batch >= len(y) else jax.random.randint(jax.random.fold_in(k, 0), (batch,), 0, len(y))
        )
        f = lambda q: loss(q, x[rows], y[rows])  # noqa: E731
        if estimator == "backprop":
            value, g = jax.value_and_grad(f)(p)
        else:
            value, g = forward_gradient(f, p, jax.random.fold_in(k, 1))
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), value

    def run(p, keys, x, y):
        (p, _), losses = jax.lax.scan(lambda c, k: step(c, k, x, y), (p, tx.init(p)), keys)
        return p, losses

    keys = jax.random.split(key, steps)
    x, y = jnp.asarray(x), jnp.asarray(y)
    start = time.perf_counter()
    compiled = jax.jit(run).lower(params, keys, x, y).compile()
    compile_seconds = time.perf_counter() - start
    # one step's program, compiled only for its temporaries: the same buffers at level 0 (timing.py)
    one_step = jax.jit(run).lower(params, keys[:1], x, y).compile(level_0_options())
    start = time.perf_counter()
    _, losses = jax.block_until_ready(compiled(params, keys, x, y))
    seconds = time.perf_counter() - start
    memory = one_step.memory_analysis()
    return {
        "losses": np.asarray(losses),
        "seconds_per_step": seconds / steps,
        "compile_seconds": compile_seconds,
        "temp_bytes": int(memory.temp_size_in_bytes) if memory else None,
    }


def forward_lr(config: Config, params) -> float:
    """The forward gradient's SGD rate for this network: min(lr, forward_lr_n / (n + 2)).

    The estimate's second moment is (n + 2) |g|^2 for n parameters, so a rate that is stable for it
    falls like 1/n.

    Args:
      config: the run's settings (``lr``, ``forward_lr_n``).
      params: the network's parameters (only their count matters).

    Returns:
      The learning rate.
    """
    return min(config.lr, config.forward_lr_n / (ravel_pytree(params)[0].size + 2))


def _smooth(curve: np.ndarray, window: int) -> np.ndarray:
    """Moving averages over ``window`` steps; element i ends at step i + window (1-based)."""
    return np.convolve(curve, np.ones(window) / window, mode="valid")


def _first_step_at_or_below(curve: np.ndarray, level: float, window: int) -> int | None:
    """The first step at which the moving average of the loss reaches ``level`` (1-based)."""
    hits = np.flatnonzero(_smooth(curve, window) <= level)
    return int(hits[0]) + window if hits.size else None


def _unbiasedness(loss, params, x, y, draws: int, key: jax.Array) -> dict[str, float]:
    """z of the mean of ``draws`` forward gradients against the true gradient, and the estimator's variance."""
    # the full data: the only noise is the direction's; data and parameters are the program's arguments
    true = jax.jit(lambda p, x, y: ravel_pytree(jax.grad(loss)(p, x, y))[0])(params, x, y)

    @functools.partial(jax.jit, compiler_options=level_0_options())
    def moments(keys, params, true, x, y):  # sums of the estimates and of their squares, 50 draws at a time
        def chunk(carry, ks):
            g = jax.vmap(lambda k: ravel_pytree(forward_gradient(lambda p: loss(p, x, y), params, k)[1])[0] - true)(ks)
            return (carry[0] + g.sum(0), carry[1] + (g * g).sum(0)), None

        zero = jnp.zeros_like(true)
        return jax.lax.scan(chunk, (zero, zero), keys.reshape(-1, 50))[0]

    draws = 50 * max(draws // 50, 1)
    total, squares = moments(jax.random.split(key, draws), params, true, jnp.asarray(x), jnp.asarray(y))
    # deviations from the true gradient: their mean is the bias, their spread the estimator's (in NumPy,
    # float64: a few vectors, not worth a compiled program per operation)
    total, squares, true = (np.asarray(a, np.float64) for a in (total, squares, true))
    bias = total / draws
    variances = (squares - draws * bias**2) / (draws - 1)
    std = np.sqrt(np.maximum(variances, 0))
    z = bias / (std / np.sqrt(draws) + 1e-30)
    n = true.size
    variance = float(np.sum(variances))
    theory = float((n + 1) * np.sum(true**2))
    # The largest of n |z| grows like sqrt(2 ln n) even for an unbiased estimator: compare it with the
    # Bonferroni bound that n standard normals exceed with probability 1%.
    bound = statistics.NormalDist().inv_cdf(1 - 0.005 / n)
    max_z = float(np.max(np.abs(z)))
    return {"max_abs_z": max_z, "max_abs_z_over_bound": max_z / bound, "share_abs_z_over_1.96":
            float(np.mean(np.abs(z) > 1.96)), "variance": variance, "variance_theory": theory,
            "parameters": int(n)}  # fmt: skip


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """Per network: the forward gradient's unbiasedness and variance, then SGD by backprop and by it.

    Args:
      config: the run's settings (``networks``, ``steps``, ``lr``, ``draws``, ...).
      run_dir: where the loss curves (history) and ``forward_gradient.png`` go.

    Returns:
      Figures per network ``N``: ``N_parameters``, ``N_max_abs_z`` and ``N_max_abs_z_over_bound`` (the
      unbiasedness test), ``N_variance`` against ``N_variance_theory`` ((n + 1) |g|^2), and per estimator
      ``E`` (backprop, forward) ``N_E_final_loss``, ``N_E_ms_per_step``, ``N_E_temp_bytes``,
      ``N_E_steps_to_forward_final`` and ``N_E_seconds_to_forward_final`` (to the loss the forward
      gradient ends at), ``N_steps_ratio`` and ``N_seconds_ratio``; over all networks
      ``worst_max_abs_z_over_bound`` and ``worst_variance_over_theory`` (largest |log| ratio).
    """
    key = jax.random.key(config.seed)
    metrics: dict[str, Any] = {}
    curves: dict[str, dict[str, dict]] = {}
    for index, name in enumerate(config.networks):
        params, loss, x, y, batch = _problem(name, config, jax.random.fold_in(key, index))
        # a random sample of at most 2,000 examples (the copies are stored class by class)
        rows = np.sort(np.random.default_rng(config.seed).choice(len(y), min(2000, len(y)), replace=False))
        stats = _unbiasedness(loss, params, x[rows], y[rows], config.draws, jax.random.fold_in(key, 100 + index))
        runs = {
            estimator: _train(
                loss, params, x, y, batch, config.steps, lr, jax.random.fold_in(key, 200 + index), estimator
            )  # fmt: skip
            for estimator, lr in (("backprop", config.lr), ("forward", forward_lr(config, params)))
        }
        curves[name] = runs
        window = max(config.steps // 50, 1)
        level = float(_smooth(runs["forward"]["losses"], window)[-1])  # where the forward gradient ends
        reached = {e: _first_step_at_or_below(r["losses"], level, window) for e, r in runs.items()}
        row = {f"{name}_{k}": v for k, v in stats.items()}
        row[f"{name}_forward_lr"] = forward_lr(config, params)
        for estimator, result in runs.items():
            row[f"{name}_{estimator}_final_loss"] = float(_smooth(result["losses"], window)[-1])
            row[f"{name}_{estimator}_ms_per_step"] = 1e3 * result["seconds_per_step"]
            row[f"{name}_{estimator}_temp_bytes"] = result["temp_bytes"]
            row[f"{name}_{estimator}_steps_to_forward_final"] = reached[estimator]
            row[f"{name}_{estimator}_seconds_to_forward_final"] = (
                reached[estimator] * result["seconds_per_step"] if reached[estimator] else None
            )
        row[f"{name}_steps_ratio"] = (
            reached["forward"] / reached["backprop"] if reached["forward"] and reached["backprop"] else None
        )
        row[f"{name}_seconds_ratio"] = (
            row[f"{name}_forward_seconds_to_forward_final"] / row[f"{name}_backprop_seconds_to_forward_final"]
            if row[f"{name}_steps_ratio"]
            else None
        )
        metrics.update(row)
        print(
            f"{name}: {stats['parameters']:,} parameters; forward gradient unbiased "
            f"(max |z| {stats['max_abs_z']:.2f}), "
            f"variance {stats['variance']:.3g} against (n + 1)|g|^2 = {stats['variance_theory']:.3g}; "
            f"{1e3 * runs['backprop']['seconds_per_step']:.3f} ms per backprop step, "
            f"{1e3 * runs['forward']['seconds_per_step']:.3f} ms per forward step; to the forward gradient's final "
            f"loss {level:.4f}: backprop {reached['backprop']} steps, forward {reached['forward']}"
        )
    run_dir.append_history(
        [
            {"network": n, "estimator": e, "step": i + 1, "loss": float(v)}
            for n, runs in curves.items()
            for e, r in runs.items()
            for i, v in enumerate(r["losses"])
            if i % max(config.steps // 200, 1) == 0
        ]  # fmt: skip
    )
    run_dir.save_figure(plots.forward_gradient(curves, metrics), "forward_gradient.png")
    metrics["worst_max_abs_z_over_bound"] = max(metrics[f"{n}_max_abs_z_over_bound"] for n in curves)
    metrics["worst_variance_over_theory"] = max(
        abs(np.log(metrics[f"{n}_variance"] / metrics[f"{n}_variance_theory"])) for n in curves
    )
    return metrics


EXPERIMENT = Experiment(
    name="forward-gradient",
    description="Baydin et al. 2022: training by one jvp per step against backprop; unbiasedness, variance, cost",
    config=Config,
    run=run,
    smallest=("steps=200", "draws=250"),
    claims=(
        Run(name="forward-gradient", data="cifar10", quick=("steps=500", "draws=250"), claims=(
            Claim(source="Baydin et al. 2022", statement="the forward gradient (grad f . v) v is unbiased: the largest "
                  "|z| of the mean of 2,000 draws over the n parameters, over the bound n normals pass with "
                  "probability 1%", tutorial="unbiased", metric="worst_max_abs_z_over_bound", fmt="{:.2f}",
                  target=at_most(1.0, "<= 1")),
            Claim(source="Baydin et al. 2022", statement="... its variance is (n + 1) |grad f|^2: worst "
                  "|log(measured / theory)|", tutorial="(n + 1) |g|^2", metric="worst_variance_over_theory",
                  fmt="{:.3f}", target=at_most(0.2, "<= 0.2")),
            Claim(source="Baydin et al. 2022", statement="digits MLP (2,410 parameters): steps the forward gradient "
                  "needs over backprop's to reach the forward gradient's final loss", tutorial="",
                  metric="digits_steps_ratio", fmt="{:.3g}x", target=at_least(1.0, ">= 1")),
            Claim(source="Baydin et al. 2022", statement="... and the CIFAR-10 MLP (308,310 parameters): seconds, "
                  "forward gradient over backprop", tutorial="", metric="cifar10_seconds_ratio", fmt="{:.3g}x"),
        )),
    ),
)  # fmt: skip
