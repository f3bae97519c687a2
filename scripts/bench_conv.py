"""Paired speed of the CNN's training epoch: the current conv3x3 against the custom-VJP version it replaced.

  python scripts/bench_conv.py [--rounds 10] [--steps 20]
  XLA_FLAGS=--xla_cpu_max_isa=AVX2 python scripts/bench_conv.py     # as on an AVX2-only CPU

The custom-VJP version (strided im2col views and a hand-written input gradient
that pads dL/dy before its product) trained the CNN before forward mode was
required through it; it has no jvp. Both epochs are compiled in this process
and timed alternately over the same random CIFAR-10-shaped batches; the
speed-up is the median of the rounds' paired ratios.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

from jaxdl.experiments import cifar10  # noqa: E402
from jaxdl.models import classifiers  # noqa: E402


def _im2col(x: jax.Array, stride: int) -> jax.Array:
    """(B, H', W', 9 C) patches: the nine shifted (strided) views of the padded input, ordered like the kernel."""
    _, h, w, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    views = [
        padded[:, ky : ky + stride * (ho - 1) + 1 : stride, kx : kx + stride * (wo - 1) + 1 : stride, :]
        for ky in range(3)
        for kx in range(3)
    ]
    return jnp.concatenate(views, axis=-1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv3x3(x: jax.Array, kernel: jax.Array, stride: int, size: tuple[int, int]) -> jax.Array:
    return _conv3x3_forward(x, kernel, stride, size)[0]


def _conv3x3_forward(x: jax.Array, kernel: jax.Array, stride: int, size: tuple[int, int]):
    patches = _im2col(x, stride)
    b, ho, wo, k = patches.shape
    y = (patches.reshape(-1, k) @ kernel.reshape(k, -1)).reshape(b, ho, wo, -1)
    return y, (patches, kernel)


def _conv3x3_backward(stride: int, size: tuple[int, int], residuals, g: jax.Array):
    patches, kernel = residuals
    kernel_grad = patches.reshape(-1, patches.shape[-1]).T @ g.reshape(-1, g.shape[-1])
    return _conv3x3_input_grad(g, kernel, stride, size), kernel_grad.reshape(kernel.shape)


_conv3x3.defvjp(_conv3x3_forward, _conv3x3_backward)


def _conv3x3_input_grad(g: jax.Array, kernel: jax.Array, stride: int, size: tuple[int, int]) -> jax.Array:
    """dL/dx of :func:`conv3x3` from dL/dy = g, for an input of spatial ``size``.

    One product ``g @ kernel.T`` gives every output pixel's contribution
    through each of the nine taps; each input pixel sums the ones that read it.
    Input row ``stride * m + a`` is read by kernel row ``ky`` of output row
    ``m + (a + 1 - ky) / stride`` where that is a whole number, so for each
    remainder ``a`` the sum is over static slices of the product, and the
    remainders are interleaved at the end. Padding g before the product (a
    zero row contributes zeros) keeps every slice in bounds: no masks.
    """
    b, ho, wo, f = g.shape
    c = kernel.shape[2]
    lo = 1 if stride == 1 else 0  # only stride 1 reads the output row before (ky = 2, a = 0)
    taps = jnp.pad(g, ((0, 0), (lo, 1), (lo, 1), (0, 0))) @ kernel.reshape(9 * c, f).T  # (B, ., ., 9 C)

    def reads(a: int) -> list[tuple[int, int]]:  # (kernel row, first row in taps) for input remainder a
        return [(k, lo + (a + 1 - k) // stride) for k in range(3) if (a + 1 - k) % stride == 0]

    def remainder(a: int, a2: int) -> jax.Array:  # the input pixels (stride * m + a, stride * n + a2)
        terms = [
            taps[:, y : y + ho, x : x + wo, (3 * ky + kx) * c : (3 * ky + kx + 1) * c]
            for ky, y in reads(a)
            for kx, x in reads(a2)
        ]
        return sum(terms[1:], terms[0]) if terms else jnp.zeros((b, ho, wo, c), g.dtype)

    rows = [jnp.stack([remainder(a, a2) for a2 in range(stride)], axis=3) for a in range(stride)]
    grid = jnp.stack(rows, axis=2).reshape(b, ho * stride, wo * stride, c)
    return grid[:, : size[0], : size[1]]


def custom_vjp_conv3x3(x, kernel, stride=1, impl="auto"):
    """The replaced version, for comparison only."""
    return _conv3x3(x, kernel, stride, x.shape[1:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20, help="batches of 100 per timed epoch")
    args = parser.parse_args()
    config = cifar10.CNNConfig(recipe="tutorial")
    current = classifiers.conv3x3
    timers = {}
    for name, conv in (("custom_vjp", custom_vjp_conv3x3), ("current", current)):
        classifiers.conv3x3 = conv  # Conv3x3 looks it up when the epoch is traced
        timers[name] = bench.EpochTimer(cifar10.cnn_task(config), cifar10.cnn_optimizer(config, 500),
                                        (32, 32, 3), 100, args.steps)  # fmt: skip
    classifiers.conv3x3 = current
    rates = {name: [] for name in timers}
    for _ in range(args.rounds):
        for name, timer in timers.items():
            rates[name].append(timer.examples / timer.seconds(3))
    ratios = [c / o for c, o in zip(rates["current"], rates["custom_vjp"], strict=True)]
    for name, timer in timers.items():
        memory = timer.compiled.memory_analysis()
        print(f"{name:<11} {statistics.median(rates[name]):8.0f} examples/s (median of {args.rounds}), "
              f"compile {timer.compile_s:.1f} s, temporaries {memory.temp_size_in_bytes / 2**20:.0f} MiB")  # fmt: skip
    print(f"current / custom_vjp: {statistics.median(ratios):.3f}x (rounds {min(ratios):.3f}-{max(ratios):.3f}) "
          f"on {jax.devices()[0].device_kind}")  # fmt: skip


if __name__ == "__main__":
    main()
