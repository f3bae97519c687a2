"""Losses, each written once per element and then reduced.

``reduction`` follows PyTorch: ``"mean"`` (the default, as in ``nn.BCELoss``),
``"sum"`` (the VAE's BCE) or ``"none"`` (per element, for ``jax.vmap`` and
per-example gradients).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

Reduction = Literal["mean", "sum", "none"]

# PyTorch's BCELoss clamps each log term at -100 so that p = 0 or 1 gives a
# large finite loss instead of inf; matching it reproduces the tutorial's log.
_LOG_CLAMP = -100.0


def _reduce(values: jax.Array, reduction: Reduction) -> jax.Array:
    if reduction == "mean":
        return jnp.mean(values)
    if reduction == "sum":
        return jnp.sum(values)
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def binary_cross_entropy(probs: jax.Array, labels: jax.Array, reduction: Reduction = "mean") -> jax.Array:
    """BCE on probabilities: -[y log p + (1 - y) log(1 - p)], logs clamped at -100.

    Args:
      probs: predicted P(y = 1), in [0, 1].
      labels: targets in [0, 1], same shape.
      reduction: "mean", "sum" or "none".

    Returns:
      The reduced loss, a scalar, or one loss per element with ``reduction="none"``.

    Prefer :func:`binary_cross_entropy_with_logits` when the logits are at
    hand: it stays exact where ``sigmoid`` rounds to 0 or 1.

    Example: a certain wrong answer costs 100, not infinity (PyTorch's clamp).

      >>> binary_cross_entropy(jnp.array([0.0]), jnp.array([1.0]))
      Array(100., dtype=float32)
    """
    log_p = jnp.maximum(jnp.log(probs), _LOG_CLAMP)
    log_not_p = jnp.maximum(jnp.log1p(-probs), _LOG_CLAMP)
    return _reduce(-(labels * log_p + (1 - labels) * log_not_p), reduction)


def binary_cross_entropy_with_logits(logits: jax.Array, labels: jax.Array, reduction: Reduction = "mean") -> jax.Array:
    """BCE on logits z, with p = sigmoid(z): softplus(z) - y z.

    Equal to ``binary_cross_entropy(sigmoid(z), y)`` in exact arithmetic, but
    never takes the log of a rounded probability, so it is finite and accurate
    for any z.

    Args:
      logits: the scores z, any shape.
      labels: targets in [0, 1], shaped like ``logits`` (floats or integers).
      reduction: "mean", "sum" or "none".

    Returns:
      The reduced loss, or one loss per element with ``reduction="none"``.

    Example:
      >>> binary_cross_entropy_with_logits(jnp.array([0.0]), jnp.array([1.0]))  # log 2
      Array(0.6931472, dtype=float32)
    """
    return _reduce(_softplus_minus_product(logits, labels), reduction)


@jax.custom_jvp
def _softplus_minus_product(z: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.logaddexp(0.0, z) - y * z


def _softplus_minus_product_jvp(primals, tangents):
    # d/dz = sigmoid(z) - y: one logistic, where differentiating logaddexp
    # costs an exp, a log1p, another exp and the selects that guard infinities
    # (the 64-seed blob study trains faster with it: docs/performance.md). Labels are
    # rarely differentiated, and integer ones cannot be: their zero tangent is skipped.
    z, y = primals
    dz, dy = tangents
    value = _softplus_minus_product(z, y)
    terms = []
    if not isinstance(dz, SymbolicZero):
        terms.append((jax.nn.sigmoid(z) - y) * dz)
    if not isinstance(dy, SymbolicZero):
        terms.append(-z * dy)
    return value, sum(terms[1:], terms[0]) if terms else jnp.zeros_like(value)


_softplus_minus_product.defjvp(_softplus_minus_product_jvp, symbolic_zeros=True)


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, reduction: Reduction = "mean") -> jax.Array:
    """Categorical cross-entropy with integer labels: logsumexp(z) - z[label].

    Args:
      logits: (..., num_classes) unnormalised scores.
      labels: (...) integer class indices.
      reduction: "mean", "sum" or "none" (then one value per example).

    Returns:
      The reduced loss, or ``(...)`` per-example losses with ``reduction="none"``.

    Example: equal logits over 4 classes cost log 4 whatever the label.

      >>> float(softmax_cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]))).__round__(4)
      1.3863
    """
    label_logits = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return _reduce(jax.nn.logsumexp(logits, axis=-1) - label_logits, reduction)


def mse(predictions: jax.Array, targets: jax.Array, reduction: Reduction = "mean") -> jax.Array:
    """Squared error (p - t)^2 per element; the mean of it by default (``nn.MSELoss``).

    Args:
      predictions: the model's outputs, any shape.
      targets: the values wanted, same shape.
      reduction: "mean", "sum" or "none".

    Returns:
      The reduced loss, or the squared errors with ``reduction="none"``.

    Example:
      >>> mse(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0]))
      Array(5., dtype=float32)
    """
    return _reduce(jnp.square(predictions - targets), reduction)


def gaussian_kl(mean: jax.Array, logvar: jax.Array, reduction: Reduction = "sum") -> jax.Array:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per dimension, summed by default.

    0.5 * (exp(logvar) + mean^2 - 1 - logvar): the VAE's analytic KL term
    (Kingma & Welling 2014, appendix B).

    Args:
      mean: the encoder's means, ``(..., latents)``.
      logvar: the encoder's log-variances, same shape.
      reduction: "sum" (the default, as in the VAE's loss), "mean" or "none".

    Returns:
      The reduced divergence, or one term per dimension with ``reduction="none"``.

    Example: the prior itself is at distance 0.

      >>> gaussian_kl(jnp.zeros(3), jnp.zeros(3))
      Array(0., dtype=float32)
    """
    return _reduce(0.5 * (jnp.exp(logvar) + jnp.square(mean) - 1.0 - logvar), reduction)
