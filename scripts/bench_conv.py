"""Paired speed of the CNN's convolutions: Winograd (conv=auto on a CPU) against im2col, per layer and per epoch.

  python scripts/bench_conv.py [--rounds 10] [--steps 20] [--impls im2col auto]
  XLA_FLAGS=--xla_cpu_max_isa=AVX2 python scripts/bench_conv.py     # as on an AVX2-only CPU

Per layer: the forward pass and the gradients the CNN needs (kernel; input
too, except for the first layer, whose input is the image) of each of the
four convolutions at batch 100, for each implementation, as compiled
functions timed alternately; the median over rounds. Each call runs the layer
LAYER_REPEATS times inside one ``lax.scan``, as the training epoch runs its
steps: XLA allocates a program's temporaries once per call, and a call of one
layer alone paid fresh pages for them each time (glibc maps allocations over
32 MB anew), which doubled the 64->64 layer's time. Per epoch: the CNN's
compiled training epoch (tutorial recipe) with each implementation, timed
alternately over the same random CIFAR-10-shaped batches; the speed-up is the
median of the rounds' paired ratios against the first implementation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

from jaxdl.experiments import cifar10  # noqa: E402
from jaxdl.models.classifiers import conv3x3  # noqa: E402

LAYERS = {  # name: (input shape at batch 100, features, stride, does the CNN need its input's gradient)
    "conv1 3->32 s1": ((100, 32, 32, 3), 32, 1, False),
    "conv2 32->32 s2": ((100, 32, 32, 32), 32, 2, True),
    "conv3 32->64 s1": ((100, 16, 16, 32), 64, 1, True),
    "conv4 64->64 s2": ((100, 16, 16, 64), 64, 2, True),
}


LAYER_REPEATS = 10  # forward passes and gradients of one layer per compiled call


def layer_step(shape, features, stride, needs_input_grad, impl):
    """One layer's forward pass and gradients, LAYER_REPEATS times in one compiled call, and its arguments."""
    x = jax.random.normal(jax.random.key(0), shape)
    kernel = jax.random.normal(jax.random.key(1), (3, 3, shape[-1], features)) * 0.1

    def loss(kernel, x):  # not linear, so the forward pass is needed for the gradients, as in the CNN
        return jnp.sum(jnp.tanh(conv3x3(x, kernel, stride, impl)))

    grad = jax.grad(loss, argnums=(0, 1) if needs_input_grad else 0)

    def repeated(kernel, x):
        def body(total, _):  # each repeat depends on the last, and every gradient is summed, so none is elided
            grads = grad(kernel + 1e-9 * total, x)
            return total + sum(g.sum() for g in jax.tree.leaves(grads)), None

        return jax.lax.scan(body, jnp.zeros((), x.dtype), None, length=LAYER_REPEATS)[0]

    args = (kernel, x)
    compiled = jax.jit(repeated).lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    return compiled, args


def blocked_seconds(compiled, args, repeats=5) -> float:
    """Median seconds of one layer's forward pass and gradients (a call runs LAYER_REPEATS of them)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append((time.perf_counter() - start) / LAYER_REPEATS)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=bench.positive_int, default=10)
    parser.add_argument("--steps", type=bench.positive_int, default=20, help="batches of 100 per timed epoch")
    parser.add_argument("--impls", nargs="+", default=["im2col", "auto"], choices=("auto", "im2col", "xla"),
                        help="conv settings; the first is the base (winograd cannot run stride 2)")  # fmt: skip
    args = parser.parse_args()
    print(f"{jax.devices()[0].device_kind}, XLA_FLAGS={bench.os.environ.get('XLA_FLAGS', '')!r}")

    print(f"\nper layer, forward + gradients, ms (median of {args.rounds}):")
    print(f"{'layer':<18}" + "".join(f"{impl:>10}" for impl in args.impls) + "   speed-up")
    for name, (shape, features, stride, needs_input_grad) in LAYERS.items():
        steps = {impl: layer_step(shape, features, stride, needs_input_grad, impl) for impl in args.impls}
        times = {impl: [] for impl in args.impls}
        for _ in range(args.rounds):
            for impl, (compiled, call_args) in steps.items():
                times[impl].append(blocked_seconds(compiled, call_args))
        ms = {impl: 1e3 * statistics.median(t) for impl, t in times.items()}
        base = ms[args.impls[0]]
        print(f"{name:<18}" + "".join(f"{ms[i]:>10.2f}" for i in args.impls)
              + "   " + ", ".join(f"{base / ms[i]:.2f}x" for i in args.impls[1:]))  # fmt: skip

    timers = {}
    for impl in args.impls:
        config = cifar10.CNNConfig(recipe="tutorial", conv=impl)
        timers[impl] = bench.EpochTimer(cifar10.cnn_task(config), cifar10.cnn_optimizer(config, 500),
                                        (32, 32, 3), 100, args.steps)  # fmt: skip
    rates = {impl: [] for impl in timers}
    for _ in range(args.rounds):
        for impl, timer in timers.items():
            rates[impl].append(timer.examples / timer.seconds(3))
    print(f"\nCNN training epoch ({args.steps} batches of 100, tutorial recipe), median of {args.rounds} rounds:")
    base = args.impls[0]
    for impl, timer in timers.items():
        memory = timer.compiled.memory_analysis()
        ratios = [r / b for r, b in zip(rates[impl], rates[base], strict=True)]
        print(f"{impl:<10} {statistics.median(rates[impl]):8.0f} examples/s, compile {timer.compile_s:.1f} s, "
              f"temporaries {memory.temp_size_in_bytes / 2**20:.0f} MiB, {impl} / {base}: "
              f"{statistics.median(ratios):.3f}x (rounds {min(ratios):.3f}-{max(ratios):.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
