"""A CIFAR-10 network for time to accuracy, in the spirit of Keller Jordan's airbench (arXiv 2404.00498).

What it keeps from airbench94: a first layer that is not learned but computed from the data (PCA
whitening of 2x2 patches, each filter with its negation, then GELU and a learned bias), three blocks
of conv -> max-pool -> batch norm -> GELU -> conv -> batch norm -> GELU with identity ("dirac")
initialised kernels, batch norm with a fixed scale and fast running statistics, a global max-pool
and a bias-free linear head scaled by 1/9, and flipped-image test-time augmentation.

What it changes for a CPU, by default: the whitening patches are taken with stride 2, so every later
layer sees a 16x16 image instead of 31x31 (a quarter of the work), and the blocks are narrower (64,
128, 128 instead of 64, 256, 256); ``stride=1, widths=(64, 256, 256)`` is airbench94's network.
Why each piece helps: ``docs/guides/speedrun.md``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.functional.init import torch_linear_kernel
from jaxdl.models.classifiers import ConvImpl, conv3x3

PATCH = 2  # the whitening layer's patch size: 2x2 pixels of 3 channels, 12 numbers
WHITENED = 2 * PATCH * PATCH * 3  # its channels: each of the 12 whitening filters and its negation


def patches(images: np.ndarray | jax.Array, stride: int) -> jax.Array:
    """Every 2x2 patch of each image, flattened in (row, column, channel) order.

    Args:
      images: ``(B, H, W, C)`` floats.
      stride: the step between patches, in both directions.

    Returns:
      ``(B, (H - 2) // stride + 1, (W - 2) // stride + 1, 4 C)``.
    """
    _, h, w, _ = images.shape
    rows, cols = (h - PATCH) // stride + 1, (w - PATCH) // stride + 1
    return jnp.concatenate(
        [images[:, i : i + stride * (rows - 1) + 1 : stride, j : j + stride * (cols - 1) + 1 : stride]
         for i in range(PATCH) for j in range(PATCH)], axis=-1)  # fmt: skip


def whitening_filters(images: np.ndarray, eps: float = 5e-4) -> tuple[float, ...]:
    """The whitening layer's filters, from the covariance of the images' 2x2 patches.

    The 12 eigenvectors of the patches' covariance, each divided by the square root of its eigenvalue
    (plus ``eps``), map a patch to 12 uncorrelated numbers of unit variance; each filter comes with its
    negation, so that the GELU after it keeps both signs. Computed in float64 on the host.

    Args:
      images: normalised training images ``(N, H, W, 3)``; a few thousand are plenty.
      eps: added to each eigenvalue, so that the flattest directions are not blown up.

    Returns:
      The ``(12, 24)`` filter matrix, flattened into a tuple (a module attribute must be hashable).
    """
    flat = np.asarray(patches(jnp.asarray(images, jnp.float32), 1), np.float64).reshape(-1, PATCH * PATCH * 3)
    eigenvalues, eigenvectors = np.linalg.eigh(flat.T @ flat / len(flat))
    filters = eigenvectors[:, ::-1] / np.sqrt(eigenvalues[::-1] + eps)  # columns, largest variance first
    return tuple(np.concatenate([filters, -filters], axis=1).ravel().tolist())


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max-pooling with stride 2 (a trailing odd row or column is dropped), as a reshape and a max.

    The same values as ``nn.max_pool(x, (2, 2), (2, 2))``; its gradient is a compare and a select,
    where the windowed version's backward pass is a scatter that XLA runs slowly on a CPU.

    Args:
      x: ``(B, H, W, C)``.

    Returns:
      ``(B, H // 2, W // 2, C)``.
    """
    b, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max((2, 4))


def dirac_kernel(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """PyTorch's default 3x3 kernel, with its first ``min(C, F)`` filters replaced by the identity.

    Each of those output channels starts as a copy of its input channel: the block starts close to
    the identity, a residual connection without the addition (airbench's initialisation).

    Args:
      key: a ``jax.random`` key.
      shape: ``(3, 3, C, F)``.
      dtype: the kernel's dtype.

    Returns:
      The kernel.
    """
    kernel = torch_linear_kernel(key, shape, dtype)
    n = min(shape[2], shape[3])
    return kernel.at[:, :, :, :n].set(0).at[1, 1, jnp.arange(n), jnp.arange(n)].set(1)


class SpeedrunNet(nn.Module):
    """The speedrun's network: a whitening layer and three conv blocks; 568,728 parameters by default.

    Attributes:
      whitening: the ``(12, 24)`` filters of :func:`whitening_filters`, flattened; empty: a learned
        2x2 convolution takes their place (the ablation without whitening).
      stride: the whitening patches' stride: 2 halves the image (16x16 after), 1 keeps it (31x31).
      widths: each block's channels.
      bn_momentum: the running statistics' decay (PyTorch's momentum is ``1 - bn_momentum``).
      tta: in evaluation, average the logits of each image and of its mirror image.
      conv: the 3x3 convolutions' implementation, as :func:`jaxdl.models.conv3x3`'s ``impl``.
      num_classes: the number of output logits.
    """

    whitening: tuple[float, ...] = ()
    stride: int = 2
    widths: tuple[int, ...] = (64, 128, 128)
    bn_momentum: float = 0.6
    tta: bool = True
    conv: ConvImpl = "auto"
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Class logits for a batch of normalised images.

        Args:
          x: ``(B, 32, 32, 3)`` floats.
          train: batch statistics (and no test-time augmentation) when True.

        Returns:
          ``(B, num_classes)`` logits.
        """
        flipped = self.tta and not train
        if flipped:  # the mirror images ride in the same batch: batch norm uses running statistics here
            x = jnp.concatenate([x, x[:, :, ::-1]])
        x = patches(x, self.stride)
        if self.whitening:
            filters = jnp.asarray(self.whitening, x.dtype).reshape(x.shape[-1], WHITENED)
        else:
            filters = self.param("whitening", torch_linear_kernel, (x.shape[-1], WHITENED))
        x = nn.gelu(x @ filters + self.param("whitening_bias", nn.initializers.zeros, (1, 1, 1, WHITENED)))
        for i, width in enumerate(self.widths, start=1):
            x = self._conv(x, width, f"conv{i}a")
            x = max_pool_2x2(x)
            x = nn.gelu(self._norm(x, train, f"norm{i}a"))
            x = nn.gelu(self._norm(self._conv(x, width, f"conv{i}b"), train, f"norm{i}b"))
        x = nn.Dense(self.num_classes, use_bias=False, kernel_init=torch_linear_kernel, name="head")(x.max((1, 2)))
        x = x / 9  # airbench's scaling: small logits at the start
        if flipped:
            x = (x[: len(x) // 2] + x[len(x) // 2 :]) / 2
        return x

    def _conv(self, x: jax.Array, features: int, name: str) -> jax.Array:
        kernel = self.param(name, dirac_kernel, (3, 3, x.shape[-1], features))
        return conv3x3(x, kernel.astype(x.dtype), 1, self.conv, None)

    def _norm(self, x: jax.Array, train: bool, name: str) -> jax.Array:
        return nn.BatchNorm(not train, momentum=self.bn_momentum, epsilon=1e-12, use_scale=False, name=name)(x)
