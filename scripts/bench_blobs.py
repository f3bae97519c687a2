"""Benchmark: the blob classifier's full-batch training, steady state vs compile time.

    python scripts/bench_blobs.py [--repeats 11] [--torch-python /path/to/python]

Prints compile seconds, then the median over repeats of a whole 1000-epoch
run (one compiled lax.scan), as microseconds per epoch and examples/s; the
same for 64 seeds trained at once with vmap. With --torch-python (an
interpreter that has torch and scikit-learn; jaxdl's environment has no
PyTorch), it also runs the tutorial's PyTorch loop on this machine in the same
invocation and prints the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxdl.data import make_blobs_dataset
from jaxdl.experiments.blobs import Config, initial_params, make_trainer
from jaxdl.train import compile_ahead, median_seconds


def bench_jax(config: Config, repeats: int) -> dict:
    x, y = make_blobs_dataset(config.n_samples, config.cluster_std, config.data_seed)
    batch = (jnp.asarray(x), jnp.asarray(y))
    model, loss_fn, train = make_trainer(config)
    params = initial_params(config, model, batch[0])[0]
    compiled, compile_s = compile_ahead(jax.jit(train), params, batch)
    compiled(params, batch)  # the first call pays one-off allocation costs
    seconds = median_seconds(compiled, params, batch, repeats=repeats)
    flops = (compiled.cost_analysis() or {}).get("flops")

    keys = jax.random.split(jax.random.key(1), 64)
    seed_params = jax.vmap(lambda k: model.init(k, batch[0][:1])["params"])(keys)
    seeds_compiled, seeds_compile_s = compile_ahead(jax.jit(jax.vmap(train, in_axes=(0, None))), seed_params, batch)
    seeds_compiled(seed_params, batch)
    seeds_seconds = median_seconds(seeds_compiled, seed_params, batch, repeats=max(3, repeats // 3))
    return {
        "compile_s": compile_s,
        "us_per_epoch": 1e6 * seconds / config.epochs,
        "examples_per_s": config.epochs * config.n_samples / seconds,
        "xla_flops_per_epoch": flops,
        "seeds64_compile_s": seeds_compile_s,
        "seeds64_us_per_epoch_per_seed": 1e6 * seeds_seconds / config.epochs / 64,
        "seeds64_examples_per_s": 64 * config.epochs * config.n_samples / seeds_seconds,
    }


def bench_torch(python: str, repeats: int) -> dict:
    script = Path(__file__).with_name("torch_blobs_baseline.py")
    out = subprocess.run([python, str(script), "--repeats", str(repeats)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--torch-python", help="python with torch, to time the tutorial's loop")
    args = parser.parse_args()

    config = Config()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}"
    )
    print(f"workload: {config.n_samples} points, {config.epochs} full-batch epochs, median of {args.repeats} runs")
    r = bench_jax(config, args.repeats)
    print(f"jaxdl  compile            {r['compile_s']:.3f} s")
    print(f"jaxdl  steady state       {r['us_per_epoch']:.1f} us/epoch  {r['examples_per_s']:.3g} examples/s")
    if r["xla_flops_per_epoch"]:
        # XLA's cost analysis counts a while loop's body once: that is one epoch.
        gflops = r["xla_flops_per_epoch"] / r["us_per_epoch"] / 1e3
        print(
            f"jaxdl  XLA cost analysis  {r['xla_flops_per_epoch']:.3g} FLOP per epoch "
            f"(scan body), {gflops:.2f} GFLOP/s achieved"
        )
    print(
        f"jaxdl  64 seeds (vmap)    {r['seeds64_us_per_epoch_per_seed']:.2f} us/epoch/seed  "
        f"{r['seeds64_examples_per_s']:.3g} examples/s  (compile {r['seeds64_compile_s']:.3f} s)"
    )
    if args.torch_python:
        t = bench_torch(args.torch_python, max(3, args.repeats // 2))
        us = 1e6 * t["seconds_per_epoch"]
        print(
            f"torch  tutorial loop      {us:.1f} us/epoch  ({t['framework']}, "
            f"{t['threads']} threads, final loss {t['final_loss']:.4f})"
        )
        print(
            f"speed-up jaxdl over torch: {us / r['us_per_epoch']:.1f}x per epoch, "
            f"{us / r['seeds64_us_per_epoch_per_seed']:.0f}x per seed-epoch with vmap"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
