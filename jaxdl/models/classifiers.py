"""Tutorial 1's CIFAR-10 MLP and CNN, and tutorial 4's small MNIST MLP, as Flax modules.

Every dense and convolution layer is initialised as PyTorch initialises it by
default (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases), and
batch norm uses PyTorch's defaults (momentum 0.1, i.e. Flax's 0.9; epsilon
1e-5), so the networks start where the tutorials' networks start.
"""

from __future__ import annotations

import math
from typing import Literal

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.functional import normalization
from jaxdl.functional.activations import leaky_relu, relu
from jaxdl.functional.init import torch_linear_bias, torch_linear_kernel


def dense(features: int, fan_in: int, name: str | None = None) -> nn.Dense:
    """``nn.Linear``: a dense layer with PyTorch's default initialisation.

    Args:
      features: the output width.
      fan_in: the input width, which sets the bias's bound (Flax's initialisers do not see it).
      name: the layer's name in the parameter dict, or None for Flax's automatic one.

    Returns:
      An ``nn.Dense`` with kernel and bias drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    return nn.Dense(features, kernel_init=torch_linear_kernel, bias_init=torch_linear_bias(fan_in), name=name)


class BatchNorm(nn.Module):
    """``flax.linen.BatchNorm`` over the last axis, with the same variables and values, differentiated by
    :func:`jaxdl.functional.normalization.batch_normalize`'s rule (one backward pass fewer than Flax's).

    Attributes:
      use_running_average: normalise by the running statistics (evaluation) instead of the batch's
        (training, which also updates them in the ``batch_stats`` collection).
      momentum: Flax's convention: the running average keeps this much of its old value each step
        (PyTorch's momentum 0.1 is 0.9 here).
      epsilon: added to the variance before the square root.
    """

    use_running_average: bool = False
    momentum: float = 0.9
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x):
        """Normalises ``x`` over every axis but the last.

        Args:
          x: ``(..., features)`` activations, or a list of arrays that are groups of one batch,
            normalised together (see :class:`CNN`).

        Returns:
          The normalised activations, shaped like ``x`` (a list for a list).
        """
        shape = (normalization.feature_count(x),)
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, shape, jnp.float32)
        running_var = self.variable("batch_stats", "var", jnp.ones, shape, jnp.float32)
        scale = self.param("scale", nn.initializers.ones, shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, shape, jnp.float32)
        if self.use_running_average:
            statistics = running_mean.value, running_var.value
            return normalization.map_groups(
                x, lambda g: normalization.normalize(g, *statistics, scale, bias, self.epsilon)
            )
        if not self.is_initializing():
            mean, var = jax.lax.stop_gradient(normalization.batch_statistics(x))  # XLA computes them once
            running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
            running_var.value = self.momentum * running_var.value + (1 - self.momentum) * var
        return normalization.batch_normalize(x, scale, bias, self.epsilon)


def batch_norm(train: bool, name: str | None = None) -> BatchNorm:
    """``nn.BatchNorm1d/2d`` with PyTorch's defaults.

    Args:
      train: normalise by the batch's statistics and update the running ones; False uses the running ones.
      name: the layer's name, or None.

    Returns:
      A :class:`BatchNorm` with momentum 0.9 (PyTorch's 0.1) and epsilon 1e-5.
    """
    return BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


def _flatten(x: jax.Array) -> jax.Array:
    return x.reshape(x.shape[0], -1)


class MLP(nn.Module):
    """Tutorial 1's CIFAR-10 MLP: flatten -> Linear(3072, hidden) -> ReLU -> Linear(hidden, 10).

    Attributes:
      hidden: the hidden layer's width.
      num_classes: the number of output logits.
    """

    hidden: int = 100
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Class logits for a batch of images.

        Args:
          x: ``(B, ...)`` images, flattened to ``(B, features)``.
          train: unused (no dropout or batch norm); taken so every classifier has one signature.

        Returns:
          ``(B, num_classes)`` logits.
        """
        x = _flatten(x)
        x = relu(dense(self.hidden, x.shape[-1], "fc1")(x))
        return dense(self.num_classes, self.hidden, "fc2")(x)


class SmallMLP(MLP):
    """Tutorial 4's comparison network: flatten -> Linear(784, 128) -> ReLU -> Linear(128, 10).

    Attributes:
      hidden: the hidden layer's width (128).
      num_classes: the number of output logits.
    """

    hidden: int = 128


ConvImpl = Literal["auto", "im2col", "winograd", "xla"]


def conv3x3(
    x: jax.Array, kernel: jax.Array, stride: int = 1, impl: ConvImpl = "auto", bias: jax.Array | None = None
) -> jax.Array:
    """``nn.Conv2d(kernel_size=3, stride, padding=1)`` on NHWC inputs and an HWIO kernel.

    Args:
      x: ``(B, H, W, C)`` floats.
      kernel: ``(3, 3, C, F)``.
      stride: the same in both directions.
      impl: "winograd" (:func:`winograd_conv3x3`, stride 1 only), "im2col"
        (:func:`im2col_conv3x3`), "xla" (``lax.conv_general_dilated``: cuDNN on a
        GPU, the TPU's convolution units), or "auto": on a CPU, Winograd for
        stride 1 with at least 16 input channels, im2col otherwise (the fast
        paths on XLA's CPU backend; see :func:`winograd_conv3x3` for why not the
        first layer's 3 channels); XLA's convolution elsewhere.
      bias: ``(F,)``, added to every output pixel; None for none. im2col folds
        it into its product when the patch rows are thin (see
        :func:`im2col_conv3x3`).

    Returns:
      ``(B, ceil(H / stride), ceil(W / stride), F)``.

    Raises:
      ValueError: for an unknown ``impl``, or Winograd with a stride other than 1.

    All three are plain JAX, so every transformation applies: ``grad``, ``jvp``,
    ``linearize``, ``jacfwd``, Hessian-vector products in any order, ``vmap``.

    Example: every implementation computes the same convolution.

      >>> x, k = jnp.ones((1, 4, 4, 16)), jnp.ones((3, 3, 16, 2))
      >>> [float(conv3x3(x, k, impl=i)[0, 1, 1, 0]) for i in ("im2col", "winograd", "xla")]
      [144.0, 144.0, 144.0]
    """
    chex.assert_rank(x, 4)  # NHWC
    chex.assert_shape(kernel, (3, 3, x.shape[-1], None))
    chex.assert_type([x, kernel], float)  # a uint8 image would need casting first: Conv3x3 does it
    if bias is not None:
        chex.assert_shape(bias, (kernel.shape[-1],))  # the folded and the added bias would broadcast differently
    if impl == "auto":
        if jax.default_backend() != "cpu":
            impl = "xla"
        else:
            impl = "winograd" if stride == 1 and x.shape[-1] >= WINOGRAD_MIN_CHANNELS else "im2col"
    if impl == "im2col":
        return im2col_conv3x3(x, kernel, stride, bias)
    if impl == "xla":
        y = jax.lax.conv_general_dilated(
            x, kernel, (stride, stride), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
    elif impl == "winograd":
        if stride != 1:
            raise ValueError(f"the Winograd convolution has stride 1, got stride {stride}")
        y = winograd_conv3x3(x, kernel)
    else:
        raise ValueError(f"impl must be auto, im2col, winograd or xla, got {impl!r}")
    return y if bias is None else y + bias.reshape(1, 1, 1, -1)


WINOGRAD_MIN_CHANNELS = 16  # below, its 16 products are too thin to pay for the transforms

# Winograd F(2x2, 3x3) (Lavin & Gray 2016): a 2x2 output tile is A^T [(G g G^T) * (B^T d B)] A
# for the 4x4 input tile d around it and the 3x3 kernel g.
_WINOGRAD_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def _winograd_bt(d0, d1, d2, d3):  # B^T d: the input transform along one axis (additions only)
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


def _winograd_at(m0, m1, m2, m3):  # A^T m: the output transform along one axis
    return m0 + m1 + m2, m1 - m2 - m3


def winograd_conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A stride-1 3x3 convolution with padding 1 by Winograd's F(2x2, 3x3): 16 products instead of 36.

    The output is cut into 2x2 tiles, each computed from the 4x4 input tile
    around it. Transformed, the convolution becomes 16 independent matrix
    products, one per position of the 4x4 transformed tile,
    ``V[k] (P, C) @ U[k] (C, F)`` over the ``P = B H W / 4`` tiles, where ``V =
    B^T d B`` (sums and differences of input pixels) and ``U = G g G^T`` (the
    kernel, transformed once per call); the output tile is ``A^T M A`` (sums
    again). That is 16 multiplications per 2x2 outputs and input channel
    against im2col's 36: 2.25x fewer. The tiles' rows come from the stride
    phases of the padded input (as in :func:`im2col_conv3x3`), so every slice
    is unit-stride and static.

    No custom derivative rule: autodiff transposes the same linear maps, so the
    input gradient is 16 products ``dM[k] @ U[k].T`` and the kernel gradient 16
    products ``V[k].T @ dM[k]``, each with the same 2.25x fewer multiplications,
    and forward mode (``jvp``, ``jacfwd``) and higher derivatives work as for any
    JAX function. The transforms' coefficients are 0, +-1 and +-1/2, so the
    result differs from the direct sum by float32 rounding only (tested
    against ``lax.conv`` in float64).

    Faster than :func:`im2col_conv3x3` on XLA's CPU backend for the CNN's wider layers; F(4x4, 3x3), the
    first layer's 3 channels and one batched ``einsum`` were slower (the measurements, with
    ``scripts/bench_conv.py``, are in ``docs/performance.md``).

    Args:
      x: ``(B, H, W, C)`` floats; odd H or W are fine.
      kernel: ``(3, 3, C, F)``.

    Returns:
      ``(B, H, W, F)``, the convolution with padding 1 (no bias).
    """
    b, h, w, c = x.shape
    th, tw = (h + 1) // 2, (w + 1) // 2  # tiles; an odd size gets a padded last tile, cut off at the end
    padded = jnp.pad(x, ((0, 0), (1, 2 * th + 1 - h), (1, 2 * tw + 1 - w), (0, 0)))
    phases = padded.reshape(b, th + 1, 2, tw + 1, 2, c)  # [:, m, a, n, a2] is padded pixel (2 m + a, 2 n + a2)
    offsets = ((0, 0), (0, 1), (1, 0), (1, 1))  # rows 0-3 of tile m: (first phase row, phase)
    rows = _winograd_bt(*(phases[:, m : m + th, a] for m, a in offsets))
    tiles = [t for r in rows for t in _winograd_bt(*(r[:, :, n : n + tw, a] for n, a in offsets))]
    g = jnp.asarray(_WINOGRAD_G, kernel.dtype)
    u = jnp.einsum("ik,klcf,jl->ijcf", g, kernel, g).reshape(16, c, -1)
    m = [(t.reshape(-1, c) @ u[k]).reshape(b, th, tw, -1) for k, t in enumerate(tiles)]
    # A^T M A: along the tile's rows for each of its 4 columns, then along the columns
    by_column = [_winograd_at(*m[j::4]) for j in range(4)]
    out = [_winograd_at(*(column[a] for column in by_column)) for a in range(2)]  # [a][a2]: pixel (2m + a, 2n + a2)
    y = jnp.stack([jnp.stack(row, axis=3) for row in out], axis=2)  # (B, th, 2, tw, 2, F)
    return y.reshape(b, 2 * th, 2 * tw, -1)[:, :h, :w]


def im2col_conv3x3(x: jax.Array, kernel: jax.Array, stride: int = 1, bias: jax.Array | None = None) -> jax.Array:
    """A 3x3 convolution with padding 1 as one matrix product, every slice of it unit-stride and static.

    The nine taps' views of the input are stacked on two new axes before the
    channels, giving ``(B, H', W', 3, 3, C)``, i.e. ``(B, H', W', 9 C)``
    patches ordered like the kernel, so the convolution is
    ``patches @ kernel.reshape(9 C, F)``. Tap ``ky`` of output row ``i`` reads
    input row ``stride * i + ky - 1``: writing that as ``stride * (i + d) + a``,
    it is row ``i + d`` of the input's phase ``a`` (rows ``a, a + stride, ...``).
    The phases come from a reshape of the padded input, so each view is a plain
    slice of one phase: no strided slice anywhere. That matters for the
    gradient, which is autodiff's: the transpose of a unit-stride slice is a
    plain pad, and the input gradient becomes sums of shifted slices of
    ``dL/dy @ kernel.T`` per phase, interleaved by a reshape (a strided slice
    would transpose to an interior pad, which XLA's CPU backend fused into
    batch norm's backward pass at a fifth of memory speed). No custom
    derivative rule: forward mode and derivatives of any order come with it.
    It replaced a custom-VJP version (strided views, a hand-written input gradient) at the same speed
    and 5% less temporary memory (``docs/performance.md``).

    The two-level stack replaced one concatenate of the nine views on the
    channel axis, which XLA's CPU backend does not fuse (a concatenate on the
    minor axis, or of more than 8 operands, is left to memcpy): it copied each
    view out, then concatenated the copies. Now one loop writes the patches.
    That made the patches and the layers' passes faster in XLA's profile (``docs/performance.md``).

    A ``bias`` is folded into the product when the input has fewer than
    ``FOLD_BIAS_MAX_CHANNELS`` channels: the patches get a column of ones and
    the kernel the bias as one more row, so no pass over the output adds it and
    its gradient is one more row of the kernel gradient's product, not a
    reduction. The first layer's 3 -> 32 output is the CNN's largest (13 MB at
    batch 100), and its 27-wide patches are cheap to widen by one; for wider
    patches the extra column cost more than it saved, so they get the bias
    added afterwards (``docs/performance.md``).

    On XLA's CPU backend this is faster than ``lax.conv_general_dilated``, above
    all inside ``lax.scan``, where XLA's own convolution runs tens of times
    slower (jax-ml/jax#12868).

    Other ways to build the patches, other splits of the work and XLA's CPU flags were measured and
    not kept (``docs/performance.md``).

    Args:
      x: ``(B, H, W, C)`` floats.
      kernel: ``(3, 3, C, F)``.
      stride: the same in both directions.
      bias: ``(F,)`` or None.

    Returns:
      ``(B, ceil(H / stride), ceil(W / stride), F)``.
    """
    b, h, w, c = x.shape
    s = stride
    ho, wo = (h - 1) // s + 1, (w - 1) // s + 1
    # Pad s rows (columns) on top (left), so that d = -1 reads phase row 0, and enough below for d = +1.
    rows, cols = s * (ho + 2), s * (wo + 2)
    padded = jnp.pad(x, ((0, 0), (s, rows - h - s), (s, cols - w - s), (0, 0)))
    phases = padded.reshape(b, ho + 2, s, wo + 2, s, c)  # [:, m, a, n, a2] is input pixel (s m + a - s, s n + a2 - s)

    def tap(k: int) -> tuple[int, int]:  # (phase, first row of the view) of kernel row k
        a = (k - 1) % s
        return a, 1 + (k - 1 - a) // s

    # (B, H', W', 3, 3, C), stacked three by three so that XLA fuses it into one loop (see the docstring)
    rows = [
        jnp.stack([phases[:, y : y + ho, a, x0 : x0 + wo, a2, :] for a2, x0 in map(tap, range(3))], axis=-2)
        for a, y in map(tap, range(3))
    ]
    patches = jnp.stack(rows, axis=-3).reshape(-1, 9 * c)
    kernel = kernel.reshape(9 * c, -1)
    if bias is not None and c < FOLD_BIAS_MAX_CHANNELS:
        # The bias as one more row of the kernel, against a column of ones: see the docstring.
        patches = jnp.concatenate([patches, jnp.ones((patches.shape[0], 1), patches.dtype)], axis=1)
        kernel = jnp.concatenate([kernel, bias.reshape(1, -1)])
        bias = None
    y = (patches @ kernel).reshape(b, ho, wo, -1)
    return y if bias is None else y + bias.reshape(1, 1, 1, -1)


FOLD_BIAS_MAX_CHANNELS = 16  # see im2col_conv3x3: a first layer's 3 channels, not the 32->32 layer


class Conv3x3(nn.Module):
    """``nn.Conv2d(in, out, kernel_size=3, stride, padding=1)`` on NHWC inputs, via :func:`conv3x3`.

    Attributes:
      features: output channels F.
      stride: the same in both directions.
      impl: the implementation, as :func:`conv3x3`'s ``impl``.
    """

    features: int
    stride: int = 1
    impl: ConvImpl = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """The convolution with this layer's kernel and bias (PyTorch's initialisation, fan_in = 9 C).

        Args:
          x: ``(B, H, W, C)``; integer images are cast to the kernel's dtype first.

        Returns:
          ``(B, ceil(H / stride), ceil(W / stride), features)``.
        """
        fan_in = 9 * x.shape[-1]
        kernel = self.param("kernel", torch_linear_kernel, (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", torch_linear_bias(fan_in), (self.features,))
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(kernel.dtype)  # uint8 images as they load: a kernel cast to uint8 would be zeros
        return conv3x3(x, kernel.astype(x.dtype), self.stride, self.impl, bias.astype(x.dtype))


class CNN(nn.Module):
    """Tutorial 1's CIFAR-10 CNN (591,914 parameters, as PyTorch counts them).

    Four 3x3 convolutions (3->32 s1, 32->32 s2, 32->64 s1, 64->64 s2), each
    followed by batch norm and leaky ReLU; flatten; Linear(4096, 128), batch
    norm, leaky ReLU, dropout 0.5; Linear(128, 10).

    Attributes:
      num_classes: the number of output logits.
      drop_rate: the probability that dropout zeroes a unit of the 128-wide layer.
      conv: the convolutions' implementation, as :func:`conv3x3`'s ``impl``.
      batch_groups: how many groups the convolutions see the batch in; 0 chooses (see :meth:`groups`).
    """

    num_classes: int = 10
    drop_rate: float = 0.5
    conv: ConvImpl = "auto"
    batch_groups: int = 0

    def groups(self) -> int:
        """On a CPU (with auto) the convolutional layers carry the batch as two independent groups.

        Each convolution then runs once per group, and XLA's CPU runtime executes independent operations
        concurrently, so both cores of a small machine stay busy; batch norm still normalises by the
        statistics of the whole batch, so the network computes the same function (up to the float
        rounding of the statistics' sums). Why: XLA's profiler showed one of the two threads idle for
        most of the one-group training step (the measurements: ``docs/performance.md``). On a GPU or TPU
        one operation already fills the device.

        Returns:
          ``batch_groups`` if set, else 2 on a CPU and 1 elsewhere.

        Raises:
          ValueError: for a negative ``batch_groups``.
        """
        if self.batch_groups < 0:
            raise ValueError(f"batch_groups must be at least 1 (or 0 for auto), got {self.batch_groups}")
        if self.batch_groups:
            return self.batch_groups
        return 2 if jax.default_backend() == "cpu" else 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Class logits for a batch of images.

        Args:
          x: ``(B, 32, 32, 3)`` images (NHWC), floats or uint8.
          train: batch statistics and dropout (needs a ``"dropout"`` RNG) when True; running statistics
            and no dropout when False.

        Returns:
          ``(B, num_classes)`` logits.
        """
        groups = jnp.array_split(x, max(1, min(self.groups(), x.shape[0])))  # no empty group
        for i, (features, stride) in enumerate(((32, 1), (32, 2), (64, 1), (64, 2)), start=1):
            conv = Conv3x3(features, stride, self.conv, name=f"conv{i}")  # called once per group: one kernel
            groups = [leaky_relu(g) for g in batch_norm(train, f"bn{i}")([conv(g) for g in groups])]
        x = jnp.concatenate([_flatten(g) for g in groups])
        x = dense(128, x.shape[-1], "fc1")(x)
        x = leaky_relu(batch_norm(train, "bn5")(x))
        x = nn.Dropout(self.drop_rate, deterministic=not train)(x)
        return dense(self.num_classes, 128, "fc2")(x)


def count_params(params) -> int:
    """Number of trainable parameters (batch-norm running statistics are not parameters).

    Args:
      params: the ``"params"`` collection (a pytree of arrays).

    Returns:
      The total number of entries.

    Example:
      >>> params = MLP(hidden=4).init(jax.random.key(0), jnp.zeros((1, 8)))["params"]
      >>> count_params(params)  # 8 * 4 + 4 + 4 * 10 + 10
      86
    """
    return sum(math.prod(a.shape) for a in jax.tree.leaves(params))
