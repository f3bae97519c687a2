"""Activation functions (tutorial 2's list), written out so the maths is visible.

Each is elementwise except :func:`maxout`, which takes the maximum over groups
of features. Branches are arranged so that no unselected branch overflows,
which would otherwise turn gradients into NaN (``0 * inf``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sigmoid(x: jax.Array) -> jax.Array:
    """``1 / (1 + exp(-x))``, computed without overflow for large ``|x|``."""
    return jax.nn.sigmoid(x)


def tanh(x: jax.Array) -> jax.Array:
    """Hyperbolic tangent, a sigmoid rescaled to (-1, 1)."""
    return jnp.tanh(x)


def relu(x: jax.Array) -> jax.Array:
    """max(x, 0)."""
    return jnp.maximum(x, 0)


def leaky_relu(x: jax.Array, negative_slope: float = 0.01) -> jax.Array:
    """x for x > 0, else ``negative_slope * x`` (PyTorch's default slope 0.01)."""
    return jnp.where(x > 0, x, negative_slope * x)


def elu(x: jax.Array, alpha: float = 1.0) -> jax.Array:
    """x for x > 0, else alpha * (exp(x) - 1)."""
    return jnp.where(x > 0, x, alpha * jnp.expm1(jnp.minimum(x, 0)))


def softplus(x: jax.Array) -> jax.Array:
    """log(1 + exp(x)), a smooth ReLU."""
    return jnp.logaddexp(x, 0)


def maxout(x: jax.Array, num_pieces: int) -> jax.Array:
    """Maximum over ``num_pieces`` consecutive features: (..., k * p) -> (..., k).

    Goodfellow et al. 2013. The layer before a maxout produces ``num_pieces``
    linear pieces per output unit; maxout keeps the largest.
    """
    features = x.shape[-1]
    if features % num_pieces:
        raise ValueError(f"maxout needs the feature count ({features}) to divide by num_pieces ({num_pieces})")
    grouped = x.reshape(*x.shape[:-1], features // num_pieces, num_pieces)
    return jnp.max(grouped, axis=-1)
