"""Seed 001's CIFAR-10 MLP and CNN, and seed 004's small MNIST MLP, as Flax modules.

Every dense and convolution layer is initialised as PyTorch initialises it by
default (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases), and
batch norm uses PyTorch's defaults (momentum 0.1, i.e. Flax's 0.9; epsilon
1e-5), so the networks start where the tutorials' networks start.
"""

from __future__ import annotations

import functools
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.functional.activations import leaky_relu, relu
from jaxdl.functional.init import torch_linear_bias, torch_linear_kernel


def dense(features: int, fan_in: int, name: str | None = None) -> nn.Dense:
    """``nn.Linear``: a dense layer with PyTorch's default initialisation."""
    return nn.Dense(features, kernel_init=torch_linear_kernel, bias_init=torch_linear_bias(fan_in), name=name)


def batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
    """``nn.BatchNorm1d/2d`` with PyTorch's defaults."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


def _flatten(x: jax.Array) -> jax.Array:
    return x.reshape(x.shape[0], -1)


class MLP(nn.Module):
    """Seed 001's CIFAR-10 MLP: flatten -> Linear(3072, hidden) -> ReLU -> Linear(hidden, 10)."""

    hidden: int = 100
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = _flatten(x)
        x = relu(dense(self.hidden, x.shape[-1], "fc1")(x))
        return dense(self.num_classes, self.hidden, "fc2")(x)


class SmallMLP(MLP):
    """Seed 004's comparison network: flatten -> Linear(784, 128) -> ReLU -> Linear(128, 10)."""

    hidden: int = 128


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


def conv3x3(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
    """A 3x3 convolution with padding 1 as one matrix product (im2col), with a hand-written input gradient.

    The nine shifted (and strided) views of the zero-padded input are stacked
    on the channel axis, giving (B, H', W', 9 C) patches ordered like the
    (3, 3, C, F) kernel, so the convolution is ``patches @ kernel.reshape(9 C, F)``.
    Same maths as ``lax.conv_general_dilated``; on XLA's CPU backend it is
    faster, above all inside ``lax.scan``, where XLA's own convolution runs
    tens of times slower (jax-ml/jax#12868). The kernel gradient is
    ``patches.T @ dL/dy``, as autodiff gives it; the input gradient is
    :func:`_conv3x3_input_grad`, with which the CNN trains 12% faster (paired
    median of 10 rounds, 1.08-1.13x) than with autodiff's: XLA fused autodiff's
    masked sums of padded slices into batch norm's backward pass, where they
    ran at a fifth of memory speed. A custom VJP has no forward mode:
    ``jax.jvp`` and ``jax.jacfwd`` through it raise (``lax.conv_general_dilated``
    computes the same function in both modes); the gradient itself is plain JAX,
    so forward-over-reverse Hessian-vector products work.

    Measured on a 2-core CPU (jax 0.10.2) and not kept, as the four layers'
    forward and backward passes inside ``lax.scan`` against the plain
    (autodiff) im2col version, or (marked *) as the CNN's compiled training
    epoch against this version:

    - other ways to build the patches (padding materialised first, two-stage
      concatenation, stacking, a sum of channel-padded views, an even/odd split
      for stride 2, row-offset views of the flattened image): within noise or
      slower; a gather: +50%; ``lax.conv_general_dilated_patches``: +190%;
    - patches along the width only, one product for the three row taps,
      rows summed afterwards: +33% on the 32->64 layer;
    - YNNPACK's convolution for the forward pass and input gradient: +45%;
    - patches as a chain of selects on the tap index*: 0.73x; stacked*: 0.94x;
    - the input gradient in batch chunks of 2-8 MB with ``lax.map``, to keep
      the nine taps in cache*: 0.88-0.92x;
    - the batch split into 2-10 chunks with ``lax.map``; XLA CPU flags
      (fusion emitters off, XNN graph fusion, 512-bit vectors, the
      concurrency-optimised scheduler*, YNNPACK fusion types dot, eltwise and
      reduce*): no gain, or slower.

    ``lax.conv`` itself trains the CNN at 41 examples/s inside ``lax.scan``,
    against about 2,300 with this.
    """
    chex.assert_rank(x, 4)  # NHWC
    chex.assert_shape(kernel, (3, 3, x.shape[-1], None))
    chex.assert_type([x, kernel], float)  # a uint8 image would need casting first: Conv3x3 does it
    return _conv3x3(x, kernel, stride, x.shape[1:3])


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


class Conv3x3(nn.Module):
    """``nn.Conv2d(in, out, kernel_size=3, stride, padding=1)`` on NHWC inputs, via :func:`conv3x3`."""

    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = 9 * x.shape[-1]
        kernel = self.param("kernel", torch_linear_kernel, (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", torch_linear_bias(fan_in), (self.features,))
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(kernel.dtype)  # uint8 images as they load: a kernel cast to uint8 would be zeros
        y = conv3x3(x, kernel.astype(x.dtype), self.stride)
        return y + bias.astype(y.dtype).reshape(1, 1, 1, -1)


class CNN(nn.Module):
    """Seed 001's CIFAR-10 CNN (591,914 parameters, as PyTorch counts them).

    Four 3x3 convolutions (3->32 s1, 32->32 s2, 32->64 s1, 64->64 s2), each
    followed by batch norm and leaky ReLU; flatten; Linear(4096, 128), batch
    norm, leaky ReLU, dropout 0.5; Linear(128, 10).
    """

    num_classes: int = 10
    drop_rate: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for i, (features, stride) in enumerate(((32, 1), (32, 2), (64, 1), (64, 2)), start=1):
            x = Conv3x3(features, stride, name=f"conv{i}")(x)
            x = leaky_relu(batch_norm(train, f"bn{i}")(x))
        x = _flatten(x)
        x = dense(128, x.shape[-1], "fc1")(x)
        x = leaky_relu(batch_norm(train, "bn5")(x))
        x = nn.Dropout(self.drop_rate, deterministic=not train)(x)
        return dense(self.num_classes, 128, "fc2")(x)


def count_params(params) -> int:
    """Number of trainable parameters (batch-norm running statistics are not parameters)."""
    return sum(math.prod(a.shape) for a in jax.tree.leaves(params))
