"""Tutorial 0's claim measured: forward mode (F1) costs grow with inputs n, reverse mode (R1) with outputs m.

For f: R^n -> R^m (an MLP n -> h -> h -> m with tanh), the sweep times
``jax.jacfwd`` and ``jax.jacrev`` over n and m from 1 to 1000 (compile time
apart, steady state with ``block_until_ready``), reads their FLOPs and
temporary memory from XLA, and compares the FLOP ratio with the chain-rule
count of (F1) and (R1). Then the tutorial's point: one gradient of a scalar
loss of a network with thousands of parameters by forward mode (one jvp per
parameter) versus reverse mode (one vjp). Last, what ``jax.checkpoint``
trades: the temporary memory and time of a deep network's gradient with and
without rematerialisation.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import plots
from jaxdl.autodiff.modes import chain_flops, gradient_by_jvp
from jaxdl.claims import Claim, Run, at_least, at_most
from jaxdl.experiments import Experiment
from jaxdl.experiments.settings import AutodiffModesConfig as Config
from jaxdl.functional import mlp_apply, mlp_init
from jaxdl.rundir import RunDir
from jaxdl.train.timing import compile_ahead, stable_seconds


def _measure(fn, args, repeats) -> dict[str, float]:
    compiled, compile_s = compile_ahead(jax.jit(fn), *args)
    jax.block_until_ready(compiled(*args))
    cost = compiled.cost_analysis() or {}
    memory = compiled.memory_analysis()
    seconds, low, high = stable_seconds(compiled, *args, min_samples=repeats, max_samples=max(60, repeats))
    return {
        "seconds": seconds,
        "seconds_low": low,
        "seconds_high": high,
        "compile_seconds": compile_s,
        "flops": float(cost.get("flops", math.nan)),
        "temp_bytes": float(memory.temp_size_in_bytes) if memory else math.nan,
    }


def _sweep(config: Config, run_dir: RunDir) -> list[dict[str, Any]]:
    records = []
    key = jax.random.key(config.seed)
    for n in config.sizes:
        for m in config.sizes:
            sizes = [n, config.hidden, config.hidden, m]
            params = mlp_init(jax.random.fold_in(key, n * 100_003 + m), sizes, init="glorot")
            x = jax.random.normal(jax.random.fold_in(key, n), (n,))

            def f(p, x):
                return mlp_apply(p, x, activation=jnp.tanh)

            fwd = _measure(jax.jacfwd(f, argnums=1), (params, x), config.repeats)
            rev = _measure(jax.jacrev(f, argnums=1), (params, x), config.repeats)
            theory_fwd, theory_rev = chain_flops(sizes)
            record = {
                "n": n,
                "m": m,
                **{f"jacfwd_{k}": v for k, v in fwd.items()},
                **{f"jacrev_{k}": v for k, v in rev.items()},
                "time_ratio_fwd_over_rev": fwd["seconds"] / rev["seconds"],
                # the ratio's range from the two medians' 95% intervals
                "time_ratio_low": fwd["seconds_low"] / rev["seconds_high"],
                "time_ratio_high": fwd["seconds_high"] / rev["seconds_low"],
                "flop_ratio_fwd_over_rev": fwd["flops"] / rev["flops"],
                "chain_flops_f1": theory_fwd,
                "chain_flops_r1": theory_rev,
            }
            records.append(record)
            run_dir.append_history([record])
            print(
                f"n={n:<5} m={m:<5} jacfwd {1e6 * fwd['seconds']:9.1f} us  jacrev {1e6 * rev['seconds']:9.1f} us  "
                f"fwd/rev time {record['time_ratio_fwd_over_rev']:7.2f}  FLOPs {record['flop_ratio_fwd_over_rev']:7.2f}"
            )
    return records


def _crossover(records) -> float:
    """n/m where the fitted log time ratio crosses zero (jacfwd and jacrev equally fast)."""
    x = np.log10([r["n"] / r["m"] for r in records])
    y = np.log10([r["time_ratio_fwd_over_rev"] for r in records])
    slope, intercept = np.polyfit(x, y, 1)
    return float(10 ** (-intercept / slope)) if slope else math.nan


def _gradient_modes(config: Config) -> dict[str, Any]:
    sizes = list(config.loss_sizes)
    key = jax.random.key(config.seed + 1)
    params = mlp_init(key, sizes, init="glorot")
    x = jax.random.normal(jax.random.fold_in(key, 1), (256, sizes[0]))
    y = jax.random.normal(jax.random.fold_in(key, 2), (256, sizes[-1]))
    num_params = sum(a.size for a in jax.tree.leaves(params))

    def loss(p):
        return jnp.mean((mlp_apply(p, x, activation=jnp.tanh) - y) ** 2)

    by_jvp = _measure(lambda p: gradient_by_jvp(loss, p), (params,), config.repeats)
    by_vjp = _measure(jax.grad(loss), (params,), config.repeats)
    return {
        "grad_num_params": num_params,
        "grad_jvp_seconds": by_jvp["seconds"],
        "grad_vjp_seconds": by_vjp["seconds"],
        "grad_jvp_over_vjp": by_jvp["seconds"] / by_vjp["seconds"],
        "grad_jvp_flops": by_jvp["flops"],
        "grad_vjp_flops": by_vjp["flops"],
    }


def _checkpoint_trade(config: Config) -> dict[str, Any]:
    width, batch = 256, 256
    key = jax.random.key(config.seed + 2)
    params = mlp_init(key, [width] * (config.remat_depth + 1), init="glorot")
    x = jax.random.normal(jax.random.fold_in(key, 1), (batch, width))

    def loss(p, remat):
        h = x
        for i in range(config.remat_depth):
            layer = p[f"dense{i}"]

            def block(h, layer=layer):  # two nonlinearities: intermediates worth storing or recomputing
                return jnp.tanh(1.5 * jnp.tanh(h @ layer["w"] + layer["b"][None]))

            h = jax.checkpoint(block)(h) if remat else block(h)
        return jnp.mean(h**2)

    def residual_bytes(remat):
        # What reverse mode keeps for the backward pass: the leaves of the vjp's closure.
        _, pullback = jax.vjp(lambda p: loss(p, remat), params)
        return float(sum(leaf.nbytes for leaf in jax.tree.leaves(pullback)))

    plain = _measure(jax.grad(lambda p: loss(p, False)), (params,), config.repeats)
    remat = _measure(jax.grad(lambda p: loss(p, True)), (params,), config.repeats)
    return {
        "remat_depth": config.remat_depth,
        "residual_bytes": residual_bytes(False),
        "residual_bytes_checkpointed": residual_bytes(True),
        "grad_flops": plain["flops"],
        "grad_flops_checkpointed": remat["flops"],
        "grad_seconds": plain["seconds"],
        "grad_seconds_checkpointed": remat["seconds"],
    }


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """The jacfwd/jacrev sweep, the gradient by jvps against one vjp, and the ``jax.checkpoint`` trade.

    Writes one history record per (n, m) point (times with their 95%
    intervals, compile times, FLOPs, temporary bytes, and the chain-rule
    counts ``chain_flops_f1``/``chain_flops_r1``) and ``mode_ratios.png``.

    Args:
      config: the sizes swept (``sizes``, for n and m), the hidden width, the
        timing repeats, the loss network's sizes and the remat depth.
      run_dir: where the history and the figure go.

    Returns:
      Metrics: ``points`` (the sweep's size); ``time_ratio_n_max_m_min``,
      ``time_ratio_n_min_m_max`` and the matching ``flop_ratio_*``, jacfwd over
      jacrev at the sweep's two corners (above 1: forward mode slower);
      ``crossover_n_over_m``, where the fitted time ratio is 1;
      ``grad_num_params``, ``grad_jvp_seconds``, ``grad_vjp_seconds``,
      ``grad_jvp_over_vjp``, ``grad_jvp_flops`` and ``grad_vjp_flops`` for one
      loss gradient; and, with and without ``jax.checkpoint``
      (``*_checkpointed``), ``residual_bytes`` kept for the backward pass,
      ``grad_flops`` and ``grad_seconds``, plus ``remat_depth``.
    """
    records = _sweep(config, run_dir)
    n_max, n_min = max(config.sizes), min(config.sizes)
    by_shape = {(r["n"], r["m"]): r for r in records}
    metrics: dict[str, Any] = {
        "points": len(records),
        "time_ratio_n_max_m_min": by_shape[(n_max, n_min)]["time_ratio_fwd_over_rev"],
        "time_ratio_n_min_m_max": by_shape[(n_min, n_max)]["time_ratio_fwd_over_rev"],
        "flop_ratio_n_max_m_min": by_shape[(n_max, n_min)]["flop_ratio_fwd_over_rev"],
        "flop_ratio_n_min_m_max": by_shape[(n_min, n_max)]["flop_ratio_fwd_over_rev"],
        "crossover_n_over_m": _crossover(records),
    }
    metrics.update(_gradient_modes(config))
    metrics.update(_checkpoint_trade(config))
    print(
        f"jacfwd/jacrev time: {metrics['time_ratio_n_max_m_min']:.1f}x at n={n_max}, m={n_min}; "
        f"{metrics['time_ratio_n_min_m_max']:.3f}x at n={n_min}, m={n_max}; crossover at n/m = "
        f"{metrics['crossover_n_over_m']:.2f}"
    )
    print(
        f"gradient of a {metrics['grad_num_params']}-parameter loss: forward mode "
        f"{1e3 * metrics['grad_jvp_seconds']:.2f} ms, reverse mode {1e3 * metrics['grad_vjp_seconds']:.3f} ms "
        f"({metrics['grad_jvp_over_vjp']:.0f}x)"
    )
    print(
        f"jax.checkpoint on {config.remat_depth} layers: residuals kept for the backward pass "
        f"{metrics['residual_bytes'] / 2**20:.1f} MB -> {metrics['residual_bytes_checkpointed'] / 2**20:.1f} MB, "
        f"FLOPs {metrics['grad_flops']:.3g} -> {metrics['grad_flops_checkpointed']:.3g}, "
        f"time {1e3 * metrics['grad_seconds']:.2f} ms -> {1e3 * metrics['grad_seconds_checkpointed']:.2f} ms"
    )
    run_dir.save_figure(plots.mode_ratios(records, metrics["crossover_n_over_m"]), "mode_ratios.png")
    return metrics


EXPERIMENT = Experiment(
    name="autodiff-modes",
    description="tutorial 0: jacfwd vs jacrev over n, m = 1..1000 (time, FLOPs, memory); gradient by jvp vs vjp",
    config=Config,
    run=run,
    smallest=("sizes=1,30", "hidden=8", "repeats=1", "loss_sizes=4,8,1", "remat_depth=2"),
    claims=(
        Run(name="autodiff-modes", quick=("sizes=1,1000", "repeats=3"), claims=(
            Claim(source="tutorial 0", statement="forward mode costs one pass per input, reverse one per output: "
                  "jacfwd / jacrev time for f: R^1000 -> R^1", tutorial="forward slower",
                  metric="time_ratio_n_max_m_min", fmt="{:.3g}x", target=at_least(1.0, "> 1")),
            Claim(source="tutorial 0", statement="... and for f: R^1 -> R^1000", tutorial="forward faster",
                  metric="time_ratio_n_min_m_max", fmt="{:.3g}x", target=at_most(1.0, "< 1")),
            Claim(source="tutorial 0", statement="a loss gradient: n jvps against one vjp (time ratio)",
                  tutorial="reverse mode wins", metric="grad_jvp_over_vjp", fmt="{:.3g}x",
                  target=at_least(1.0, "> 1")),
        )),
    ),
)  # fmt: skip
