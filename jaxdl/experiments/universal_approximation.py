"""Tutorial 0's universal approximation theorem, measured: one hidden layer of N sigmoids fits a continuous function.

G^N(x) = sum_j alpha_j sigmoid(w_j . x + theta_j) (+ a bias) is fitted by full-batch Adam (one compiled
program per dimension, every width vmapped) to f(x) = sin(2 pi x) + 0.5 cos(5 pi x) on [0, 1] and to
f(x, y) = sin(2 pi x) cos(2 pi y) on [0, 1]^2; the maximum error on a fine grid falls as N grows.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import plots
from jaxdl.claims import Claim, Run, at_least
from jaxdl.experiments import Experiment
from jaxdl.experiments.settings import UniversalApproximationConfig as Config
from jaxdl.functional import mlp_apply, mlp_init, sigmoid
from jaxdl.rundir import RunDir
from jaxdl.train.full_batch import full_batch_scan


def target_1d(x):
    """The 1-D target, ``sin(2 pi x) + 0.5 cos(5 pi x)``: two frequencies, so a few sigmoids cannot fit it.

    Args:
      x: points ``(..., 1)`` in [0, 1].

    Returns:
      The values, shape ``x.shape[:-1]``.

    Example:
      >>> float(target_1d(jnp.array([0.0])))
      0.5
    """
    return jnp.sin(2 * jnp.pi * x[..., 0]) + 0.5 * jnp.cos(5 * jnp.pi * x[..., 0])


def target_2d(x):
    """The 2-D target, ``sin(2 pi x) cos(2 pi y)``.

    Args:
      x: points ``(..., 2)`` in [0, 1]^2.

    Returns:
      The values, shape ``x.shape[:-1]``.
    """
    return jnp.sin(2 * jnp.pi * x[..., 0]) * jnp.cos(2 * jnp.pi * x[..., 1])


def _grid(points: int, dim: int) -> jax.Array:
    axis = jnp.linspace(0.0, 1.0, points)
    if dim == 1:
        return axis[:, None]
    gx, gy = jnp.meshgrid(axis, axis)
    return jnp.stack([gx.ravel(), gy.ravel()], axis=1)


def init_sigmoid_layer(key: jax.Array, dim: int, width: int, steepness: float = 10.0):
    """Sigmoids with slopes ~ N(0, steepness^2) centred at uniform points of [0, 1]^dim.

    The theorem's construction needs steps inside the cube; a default (Glorot)
    initialisation makes every sigmoid nearly linear on [0, 1] and the fit stalls.

    Args:
      key: PRNG key for the slopes, the centres and the output layer.
      dim: the input dimension.
      width: N, the number of sigmoids.
      steepness: the slopes' standard deviation; larger makes sharper steps.

    Returns:
      :func:`jaxdl.functional.mlp_init` parameters for ``[dim, width, 1]``:
      ``dense0`` (the sigmoids, ``w`` ``(dim, width)``) and the Glorot output
      layer ``dense1``.
    """
    w_key, c_key, out_key = jax.random.split(key, 3)
    w = steepness * jax.random.normal(w_key, (dim, width))
    centres = jax.random.uniform(c_key, (dim, width))
    params = mlp_init(out_key, [dim, width, 1], init="glorot")
    params["dense0"] = {"w": w, "b": -jnp.sum(w * centres, axis=0)}
    return params


def _padded_inits(widths: tuple[int, ...], dim: int, key: jax.Array):
    """Each width's :func:`init_sigmoid_layer`, its hidden units padded with zeros to the widest, stacked;
    and the masks ``(len(widths), widest)`` that keep the padding's units out of the network."""
    widest = max(widths)

    def pad(a, axis, width):
        return jnp.pad(a, [(0, widest - width) if i == axis % a.ndim else (0, 0) for i in range(a.ndim)])

    inits = []
    for width in widths:
        p = init_sigmoid_layer(jax.random.fold_in(key, width * 10 + dim), dim, width)
        inits.append({"dense0": {"w": pad(p["dense0"]["w"], -1, width), "b": pad(p["dense0"]["b"], -1, width)},
                      "dense1": {"w": pad(p["dense1"]["w"], 0, width), "b": p["dense1"]["b"]}})  # fmt: skip
    masks = jnp.asarray([[1.0] * w + [0.0] * (widest - w) for w in widths])
    return jax.tree.map(lambda *a: jnp.stack(a), *inits), masks


def _model(params, mask, x):
    """G^N at ``x``: the masked units output zero, so their weights get zero gradients and Adam never moves them."""
    return mlp_apply(params, x, activation=lambda h: sigmoid(h) * jnp.broadcast_to(mask, h.shape))[..., 0]


@functools.partial(jax.jit, static_argnames=("widths", "target", "dim", "steps", "lr"))
def _fit_widths(x, fine, key, *, widths, target, dim, steps, lr):
    """Every width fitted at once (vmapped over the padded networks): their parameters, max errors and masks."""
    params, masks = _padded_inits(widths, dim, key)
    y, truth = target(x), target(fine)

    def fit_one(p, mask):
        def loss_fn(p, batch):
            return jnp.mean((_model(p, mask, batch[0]) - batch[1]) ** 2), {}

        p, _ = full_batch_scan(loss_fn, optax.adam(lr), steps)(p, (x, y))
        return p, jnp.max(jnp.abs(_model(p, mask, fine) - truth))

    return (*jax.vmap(fit_one)(params, masks), masks)


def fit(widths: Sequence[int], target, dim: int, config: Config):
    """Fits G^N for each N in ``widths`` by full-batch Adam on a grid; each max error on a 4x finer grid.

    The networks train together, in one compiled program: each narrower one is padded to the widest with
    units masked to zero, and the stack is vmapped. A masked unit adds an exact zero to the output and gets
    zero gradients, so each network trains as it would alone (up to float rounding: the order of sums, and the
    initialisation computed inside the program).

    Args:
      widths: the numbers of sigmoids N.
      target: the function to fit, ``(..., dim) -> (...)``, e.g. :func:`target_1d`.
      dim: the input dimension, 1 or 2 (in 2-D the training grid has
        ``config.points // 4`` points per axis).
      config: ``points``, ``lr``, ``steps`` and ``seed``.

    Returns:
      ``(max_errors, predict)``: ``max |G^N - f|`` on the fine grid for each width, and
      ``predict(points) -> (len(widths), len(points))`` values for plotting.
    """
    x = _grid(config.points if dim == 1 else config.points // 4, dim)
    fine = _grid(4 * config.points if dim == 1 else config.points, dim)
    params, errors, masks = _fit_widths(x, fine, jax.random.key(config.seed), widths=tuple(widths), target=target,
                                        dim=dim, steps=config.steps, lr=config.lr)  # fmt: skip
    predict = jax.jit(jax.vmap(_model, in_axes=(0, 0, None)))
    return np.asarray(errors).tolist(), (lambda points: predict(params, masks, points))


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """Fits both targets for each width and records the max error against N.

    Writes one history record per (dimension, width) and ``fits.png``.

    Args:
      config: ``widths`` (the hidden widths N, smallest first), ``points``,
        ``steps``, ``lr`` and ``seed``.
      run_dir: where the history and the figure go.

    Returns:
      Metrics: ``max_error_{1,2}d_nN`` for each width N, and
      ``error_ratio_1d``/``error_ratio_2d``, the first width's max error over
      the last's (large: more sigmoids fit better).
    """
    widths = list(config.widths)
    records, fits = [], {}
    for dim, target in ((1, target_1d), (2, target_2d)):
        errors, fits[dim] = fit(widths, target, dim, config)
        for width, error in zip(widths, errors, strict=True):
            records.append({"dim": dim, "width": width, "max_error": error})
            print(f"{dim}-D  N={width:<4} max |G^N - f| = {error:.4f}")
    run_dir.append_history(records)
    curve = _grid(400, 1)
    curves = np.asarray(fits[1](curve))
    run_dir.save_figure(
        plots.universal_approximation(
            np.asarray(curve[:, 0]), np.asarray(target_1d(curve)), {w: curves[i] for i, w in enumerate(widths)}, records
        ),  # fmt: skip
        "fits.png",
    )
    errors = {f"max_error_{r['dim']}d_n{r['width']}": r["max_error"] for r in records}
    first, last = widths[0], widths[-1]
    return {
        **errors,
        "error_ratio_1d": errors[f"max_error_1d_n{first}"] / errors[f"max_error_1d_n{last}"],
        "error_ratio_2d": errors[f"max_error_2d_n{first}"] / errors[f"max_error_2d_n{last}"],
    }


EXPERIMENT = Experiment(
    name="universal-approximation",
    description="tutorial 0: one hidden layer of N sigmoids fitting 1-D and 2-D functions; max error against N",
    config=Config,
    run=run,
    smallest=("widths=1,16", "steps=1500", "points=40"),
    claims=(
        Run(name="universal-approximation", quick=("steps=1000",), claims=(
            Claim(source="tutorial 0", statement="one hidden layer of N sigmoids approximates a continuous function: "
                  "max error at N = 1 over N = 64 (1-D)", tutorial="error -> 0 as N grows", metric="error_ratio_1d",
                  fmt="{:.3g}x", target=at_least(10.0, ">= 10x")),
        )),
    ),
)  # fmt: skip
