"""Batches on device: shuffled index matrices, fixed shapes, exact masks; normalisation; splits.

A train step sees batches of one fixed shape, so it compiles once. An epoch's
batches are an ``(num_batches, batch_size)`` matrix of indices drawn with
``jax.random.permutation``; with ``drop_remainder=False`` the last row is
padded and a boolean mask marks the real examples, so masked means count each
example exactly once.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.data.dataset import Dataset


def num_batches(num_examples: int, batch_size: int, drop_remainder: bool) -> int:
    """How many batches an epoch of ``num_examples`` has.

    Args:
      num_examples: the data set's size.
      batch_size: examples per batch, at least 1.
      drop_remainder: leave out the last partial batch instead of counting it.

    Returns:
      ``num_examples // batch_size``, plus one for a partial batch that is kept.

    Raises:
      ValueError: for a batch size below 1.

    Example:
      >>> num_batches(10, 4, drop_remainder=False), num_batches(10, 4, drop_remainder=True)
      (3, 2)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    full, rest = divmod(num_examples, batch_size)
    return full + (0 if drop_remainder or rest == 0 else 1)


@functools.partial(jax.jit, static_argnames=("num_examples", "batch_size", "shuffle", "drop_remainder"))
def epoch_indices(
    key: jax.Array,
    num_examples: int,
    batch_size: int,
    *,
    shuffle: bool = True,
    drop_remainder: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """One epoch's batches as indices and a validity mask.

    Args:
      key: PRNG key of this epoch (e.g. ``jax.random.fold_in(key, epoch)``).
      num_examples: data set size.
      batch_size: examples per batch.
      shuffle: permute the examples; otherwise keep their order.
      drop_remainder: drop the last partial batch; otherwise pad it and mask the padding.

    Returns:
      ``indices``: int32 ``(num_batches, batch_size)``; ``mask``: bool, same shape,
      False only on padding.
    """
    order = jax.random.permutation(key, num_examples) if shuffle else jnp.arange(num_examples)
    n = num_batches(num_examples, batch_size, drop_remainder)
    total = n * batch_size
    if total <= num_examples:
        indices, mask = order[:total], jnp.ones(total, bool)
    else:  # pad by repeating the examples (a batch may exceed the whole set); the mask hides the repeats
        indices = jnp.tile(order, -(-total // num_examples))[:total]
        mask = jnp.arange(total) < num_examples
    return indices.reshape(n, batch_size).astype(jnp.int32), mask.reshape(n, batch_size)


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``values`` over entries where ``mask`` is True (0 if none).

    Args:
      values: per-example values, e.g. ``(batch_size,)`` losses.
      mask: booleans of the same shape, False on padding (from :func:`epoch_indices`).

    Returns:
      A scalar in ``values``' dtype.

    Example:
      >>> masked_mean(jnp.array([1.0, 3.0, 100.0]), jnp.array([True, True, False]))
      Array(2., dtype=float32)
    """
    mask = mask.astype(values.dtype)
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1)


def normalize(images: jax.Array | np.ndarray, scheme: str) -> jax.Array:
    """uint8 pixels to float32: "unit" -> [0, 1] (``ToTensor``, tutorial 2), "symmetric" -> [-1, 1].

    "symmetric" is tutorial 1's ``Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))``
    after ``ToTensor``: (x / 255 - 0.5) / 0.5 on every channel.

    Args:
      images: uint8 images, any shape.
      scheme: "unit" or "symmetric".

    Returns:
      float32 images, shaped like ``images``.

    Raises:
      ValueError: for an unknown scheme.
    """
    x = jnp.asarray(images, jnp.float32) / 255.0
    if scheme == "unit":
        return x
    if scheme == "symmetric":
        return (x - 0.5) / 0.5
    raise ValueError(f"unknown normalization {scheme!r}; use 'unit' or 'symmetric'")


def train_val_split(dataset: Dataset, val_size: int | float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Splits off a random validation set.

    Args:
      dataset: the training split.
      val_size: number of validation examples, or a fraction in (0, 1).
      seed: seed of the split's permutation (independent of training keys).

    Returns:
      ``(train, val)`` with splits named "train" and "val".
    """
    n = len(dataset)
    size = int(round(val_size * n)) if isinstance(val_size, float) else int(val_size)
    if not 0 < size < n:
        raise ValueError(f"val_size must leave both parts non-empty; got {val_size} of {n} examples")
    order = np.random.default_rng(seed).permutation(n)
    return dataset.subset(np.sort(order[size:]), "train"), dataset.subset(np.sort(order[:size]), "val")


def generate_mini_batches(
    X: np.ndarray, Y: np.ndarray, batch_size: int = 64, seed: int = 0, drop_remainder: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tutorial 3's NumPy mini-batches: examples are *columns*, X (features, m), Y (1, m).

    Shuffles with the permutation ``np.random.seed(seed); np.random.permutation(m)``
    draws (through a local ``RandomState``, leaving the global RNG alone) and
    slices consecutive column blocks. The tutorial keeps complete batches only;
    ``drop_remainder=False`` adds the last, smaller one.

    Args:
      X: (features, m) inputs, one column per example.
      Y: (1, m) labels (or (m,), reshaped).
      batch_size: columns per batch.
      seed: the permutation's seed.
      drop_remainder: leave out the last partial batch, as the tutorial does.

    Returns:
      A list of ``(X_batch, Y_batch)`` pairs, ``(features, batch_size)`` and ``(1, batch_size)``.
    """
    m = X.shape[1]
    permutation = np.random.RandomState(seed).permutation(m)
    shuffled_X, shuffled_Y = X[:, permutation], Y[:, permutation].reshape((1, m))
    starts = range(0, m if not drop_remainder else m - m % batch_size, batch_size)
    return [(shuffled_X[:, k : k + batch_size], shuffled_Y[:, k : k + batch_size]) for k in starts]


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images (N, H, W, C), in [0, 1] units (float64 sums).

    Args:
      images: uint8 ``(N, H, W, C)``, e.g. a training split.
      chunk: images converted to float at a time, which bounds the memory used.

    Returns:
      ``(mean, std)``, each ``(C,)`` float32, for :func:`standardize`.
    """
    total = np.zeros(images.shape[-1])
    total_sq = np.zeros(images.shape[-1])
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk].reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
        total += part.sum(axis=0)
        total_sq += np.square(part).sum(axis=0)
    count = images.size // images.shape[-1]
    mean = total / count
    return mean.astype(np.float32), np.sqrt(np.maximum(total_sq / count - mean**2, 1e-12)).astype(np.float32)


def standardize(mean: np.ndarray, std: np.ndarray):
    """A Task ``preprocess``: uint8 images to ``(x / 255 - mean) / std`` per channel (see :func:`channel_stats`).

    Args:
      mean: ``(C,)`` per-channel means in [0, 1] units.
      std: ``(C,)`` per-channel standard deviations in [0, 1] units.

    Returns:
      ``preprocess(batch, key, train)``, which returns the batch with its ``"inputs"`` standardised
      (the key and ``train`` are unused: no augmentation).
    """
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def preprocess(batch, key, train):
        x = batch["inputs"].astype(jnp.float32) / 255.0
        shape = (1,) * (x.ndim - 1) + (-1,)  # per channel, the last axis
        return {**batch, "inputs": (x - mean.reshape(shape)) / std.reshape(shape)}

    return preprocess
