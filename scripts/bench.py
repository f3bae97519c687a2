"""Benchmark of the training engine on each tutorial network, optionally beside PyTorch.

    python scripts/bench.py [--steps 30] [--repeats 3] [--json out.json] [--torch-python PY]

For each model: compile time of the epoch function, steady-state training
examples/s (median of repeats of a compiled ``lax.scan`` over --steps
batches, blocked), FLOPs per step from XLA's cost analysis and the FLOP/s
achieved against a float32 matmul peak measured here, and the compiled
function's memory (arguments + temporaries). Data are random uint8 images of
the tutorial's shapes already on the device; loading is not timed. With
--torch-python it also runs scripts/torch_baselines.py (the tutorials'
PyTorch networks and steps) in the same invocation and prints the speed-ups.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl.experiments import cifar10, common, mnist_vae
from jaxdl.models.classifiers import MLP, SmallMLP
from jaxdl.train.state import TrainState
from jaxdl.train.steps import make_epoch_fns
from jaxdl.train.task import Task, classification_loss
from jaxdl.train.timing import compile_ahead, median_seconds


def workloads():
    cnn_task, cnn_tx = cifar10.cnn_task_and_optimizer(cifar10.CNNConfig(recipe="tutorial"), 500)
    return {
        # name: (task, optimizer, image shape, batch size, examples per epoch)
        "cifar10-mlp": (Task(MLP(), classification_loss, cifar10.normalise_batch), optax.adam(1e-3),
                        (32, 32, 3), 100, 50000),
        "cifar10-cnn": (cnn_task, cnn_tx, (32, 32, 3), 100, 50000),
        "mnist-vae": (mnist_vae.make_task(mnist_vae.Config()), optax.adam(1e-3), (28, 28, 1), 32, 60000),
        "mnist-mlp": (Task(SmallMLP(), classification_loss, common.unit_pixels), optax.sgd(1e-2),
                      (28, 28, 1), 64, 4096),
    }  # fmt: skip


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """float32 GFLOP/s of an n x n matmul under jit: the machine's practical peak."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    matmul, _ = compile_ahead(jax.jit(lambda a: a @ a), a)
    jax.block_until_ready(matmul(a))
    return 2 * n**3 / median_seconds(matmul, a, repeats=repeats) / 1e9


def bench(name, task, tx, shape, batch, per_epoch, steps, repeats) -> dict:
    n = steps * batch
    rng = np.random.default_rng(0)
    data = {
        "inputs": jnp.asarray(rng.integers(0, 256, (n, *shape), dtype=np.uint8)),
        "labels": jnp.asarray(rng.integers(0, 10, n).astype(np.int32)),
    }
    sample = {k: v[:batch] for k, v in data.items()} | {"mask": jnp.ones(batch, bool)}
    state = TrainState.create(task.init(jax.random.PRNGKey(0), sample), tx, jax.random.PRNGKey(1))
    fns = make_epoch_fns(task, batch, n)
    data, state = fns.place_train(data), fns.place(state)
    keys = [fns.place(jax.random.PRNGKey(2 + i)) for i in range(repeats + 1)]
    start = time.perf_counter()
    compiled = fns.train.lower(state, data, keys[0]).compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis() or {}
    memory = compiled.memory_analysis()
    state, _ = compiled(state, data, keys[0])
    jax.block_until_ready(state)
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        state, _ = compiled(state, data, keys[1 + i])
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
    seconds = statistics.median(times)
    flops_per_step = cost.get("flops")  # XLA counts a loop body once: one step
    return {
        "model": name,
        "compile_s": compile_s,
        "examples_per_second": n / seconds,
        "seconds_per_epoch": per_epoch * seconds / n,
        "gflop_per_step": flops_per_step / 1e9 if flops_per_step else None,
        "achieved_gflops": flops_per_step * steps / seconds / 1e9 if flops_per_step else None,
        "memory_mb": (memory.argument_size_in_bytes + memory.temp_size_in_bytes) / 2**20 if memory else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="batches per timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="model names (default: all)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--torch-python", help="python with torch, for the tutorials' PyTorch code")
    args = parser.parse_args()

    peak = matmul_peak()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
        f"({jax.devices()[0].device_kind}), XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    print(f"float32 matmul peak (2048^3, jit): {peak:.1f} GFLOP/s\n")
    rows = []
    for name, spec in workloads().items():
        if args.only and name not in args.only:
            continue
        rows.append(bench(name, *spec, args.steps, args.repeats))
    torch_rows = {}
    if args.torch_python:
        script = Path(__file__).with_name("torch_baselines.py")
        out = subprocess.run([args.torch_python, str(script), "--steps", str(args.steps),
                              "--only", *[r["model"] for r in rows]],
                             capture_output=True, text=True, check=True)  # fmt: skip
        torch_rows = {r["model"]: r for r in map(json.loads, out.stdout.strip().splitlines())}

    header = f"{'model':<12}{'compile s':>10}{'ex/s':>10}{'s/epoch':>9}{'GFLOP/step':>11}"
    header += f"{'GFLOP/s':>9}{'% peak':>8}{'MB':>8}"
    if torch_rows:
        header += f"{'torch ex/s':>12}{'speed-up':>10}"
    print(header)
    for r in rows:
        achieved = r["achieved_gflops"] or 0
        line = (f"{r['model']:<12}{r['compile_s']:>10.2f}{r['examples_per_second']:>10.0f}"
                f"{r['seconds_per_epoch']:>9.2f}{r['gflop_per_step'] or 0:>11.3f}{achieved:>9.1f}"
                f"{100 * achieved / peak:>7.0f}%{r['memory_mb'] or 0:>8.0f}")  # fmt: skip
        if r["model"] in torch_rows:
            t = torch_rows[r["model"]]
            r["torch_examples_per_second"] = t["examples_per_second"]
            r["speedup_over_torch"] = r["examples_per_second"] / t["examples_per_second"]
            line += f"{t['examples_per_second']:>12.0f}{r['speedup_over_torch']:>9.2f}x"
        print(line)
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {usage:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"matmul_peak_gflops": peak, "rows": rows}, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
