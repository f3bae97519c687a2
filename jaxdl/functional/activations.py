"""Activation functions (tutorial 2's list), written out so the maths is visible.

Each is elementwise except :func:`maxout`, which takes the maximum over groups
of features. Branches are arranged so that no unselected branch overflows,
which would otherwise turn gradients into NaN (``0 * inf``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sigmoid(x: jax.Array) -> jax.Array:
    """``1 / (1 + exp(-x))``, computed without overflow for large ``|x|``.

    Args:
      x: pre-activations, any shape.

    Returns:
      Values in (0, 1), shaped like ``x``.

    Example:
      >>> sigmoid(jnp.array([-100.0, 0.0, 100.0]))
      Array([0. , 0.5, 1. ], dtype=float32)
    """
    return jax.nn.sigmoid(x)


def tanh(x: jax.Array) -> jax.Array:
    """Hyperbolic tangent, a sigmoid rescaled to (-1, 1): ``tanh(x) = 2 sigmoid(2x) - 1``.

    Args:
      x: pre-activations, any shape.

    Returns:
      Values in (-1, 1), shaped like ``x``.
    """
    return jnp.tanh(x)


def relu(x: jax.Array) -> jax.Array:
    """max(x, 0).

    Args:
      x: pre-activations, any shape.

    Returns:
      ``x`` with its negative entries set to 0.

    Example:
      >>> relu(jnp.array([-2.0, 0.5]))
      Array([0. , 0.5], dtype=float32)
    """
    return jnp.maximum(x, 0)


def leaky_relu(x: jax.Array, negative_slope: float = 0.01) -> jax.Array:
    """x for x > 0, else ``negative_slope * x`` (PyTorch's default slope 0.01).

    Args:
      x: pre-activations, any shape.
      negative_slope: the slope for x <= 0, so negative inputs keep a small gradient.

    Returns:
      An array shaped like ``x``.

    Example:
      >>> leaky_relu(jnp.array([-2.0, 3.0]), negative_slope=0.1)
      Array([-0.2,  3. ], dtype=float32)
    """
    return jnp.where(x > 0, x, negative_slope * x)


def elu(x: jax.Array, alpha: float = 1.0) -> jax.Array:
    """x for x > 0, else alpha * (exp(x) - 1).

    Args:
      x: pre-activations, any shape.
      alpha: the value the negative branch tends to is ``-alpha``.

    Returns:
      An array shaped like ``x``; smooth at 0 when ``alpha`` is 1.
    """
    return jnp.where(x > 0, x, alpha * jnp.expm1(jnp.minimum(x, 0)))


def softplus(x: jax.Array) -> jax.Array:
    """log(1 + exp(x)), a smooth ReLU.

    Args:
      x: pre-activations, any shape.

    Returns:
      Positive values shaped like ``x``; its derivative is ``sigmoid(x)``.

    Example:
      >>> softplus(jnp.array([0.0]))  # log 2
      Array([0.6931472], dtype=float32)
    """
    return jnp.logaddexp(x, 0)


def maxout(x: jax.Array, num_pieces: int) -> jax.Array:
    """Maximum over ``num_pieces`` consecutive features: (..., k * p) -> (..., k).

    Goodfellow et al. 2013. The layer before a maxout produces ``num_pieces``
    linear pieces per output unit; maxout keeps the largest.

    Args:
      x: ``(..., k * num_pieces)`` features; each run of ``num_pieces`` neighbours is one unit's pieces.
      num_pieces: pieces per output unit; must divide the last dimension.

    Returns:
      ``(..., k)``, the largest piece of each unit.

    Raises:
      ValueError: when the feature count does not divide by ``num_pieces``.

    Example:
      >>> maxout(jnp.array([[1.0, 5.0, -1.0, -3.0]]), num_pieces=2)
      Array([[ 5., -1.]], dtype=float32)
    """
    features = x.shape[-1]
    if features % num_pieces:
        raise ValueError(f"maxout needs the feature count ({features}) to divide by num_pieces ({num_pieces})")
    grouped = x.reshape(*x.shape[:-1], features // num_pieces, num_pieces)
    return jnp.max(grouped, axis=-1)
