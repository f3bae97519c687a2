"""Batch normalisation in training mode, with a forward-mode rule whose transpose is the textbook backward pass.

``y = (x - mean) / sqrt(var + eps) * scale + bias`` over every axis but the
last (the features). Its derivative, with ``xhat = (x - mean) / sqrt(var + eps)``
and ``c = scale / sqrt(var + eps)``, is

    dy = c dx + xhat (dscale - c mean(dx xhat)) + (dbias - c mean(dx))

That is the rule below (a ``jax.custom_jvp``), so ``jvp``, ``linearize`` and
Hessian-vector products take it directly, and ``grad`` gets its transpose:
two reductions of the output's cotangent ``g`` (``sum(g)``, ``sum(g xhat)``,
which are also the bias and scale gradients) and one elementwise pass for the
input gradient. Differentiating the forward formulas instead (as
``flax.linen.BatchNorm`` does) gave XLA's CPU backend five passes over the
activations for the backward. The values are the same as Flax's, in float64
to 1e-12 (tested): the statistics are computed as Flax computes them
(``var = mean(x^2) - mean(x)^2``, clipped at 0, in at least float32).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp


def batch_statistics(x: jax.Array | Sequence[jax.Array]) -> tuple[jax.Array, jax.Array]:
    """Per-feature mean and (biased) variance over every axis but the last, in at least float32.

    ``x`` may be a list of arrays, groups of one batch (see :func:`batch_normalize`): the statistics
    are then those of the whole batch, combined from each group's sums.

    Args:
      x: ``(..., features)`` activations, or a list of such groups with the same feature count.

    Returns:
      ``(mean, var)``, each ``(features,)``; the variance is clipped at 0 against rounding.

    Example:
      >>> batch_statistics(jnp.array([[1.0], [3.0]]))
      (Array([2.], dtype=float32), Array([1.], dtype=float32))
    """
    feature_count(x)  # the groups agree
    groups = [g.astype(jnp.promote_types(g.dtype, jnp.float32)) for g in _groups(x)]
    mean = _sum_over_batch(groups) / _count(groups)
    return mean, jnp.maximum(0.0, _sum_over_batch([g * g for g in groups]) / _count(groups) - mean * mean)


def feature_count(x) -> int:
    """The size of the last axis of an array, or of a list of groups (which must agree).

    Args:
      x: an array, or a list or tuple of arrays.

    Returns:
      The feature count.

    Raises:
      ValueError: when the groups' last axes differ.
    """
    counts = {g.shape[-1] for g in _groups(x)}
    if len(counts) != 1:
        raise ValueError(f"groups of one batch must have the same number of features, got {sorted(counts)}")
    return counts.pop()


def map_groups(x, f):
    """``f`` applied to an array, or to each of a list of groups (giving a list).

    Args:
      x: an array, or a list or tuple of arrays.
      f: a function of one array.

    Returns:
      ``f(x)`` for an array; ``[f(g) for g in x]`` for groups.
    """
    return _like(x, [f(g) for g in _groups(x)])


def _groups(x) -> list[jax.Array]:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _like(x, groups: list[jax.Array]):
    """``groups`` as ``x`` came: a list, or the one array."""
    return groups if isinstance(x, (list, tuple)) else groups[0]


def _count(groups: list[jax.Array]) -> int:
    return sum(g.size // g.shape[-1] for g in groups)


def _sum_over_batch(groups: list[jax.Array]) -> jax.Array:
    """Per-feature sums over every axis but the last, of all groups together."""
    return sum(g.sum(tuple(range(g.ndim - 1))) for g in groups)


def _features(x: jax.Array, *per_feature: jax.Array) -> list[jax.Array]:
    """Per-feature vectors shaped to broadcast against ``x`` (rank promotion is explicit)."""
    return [v.reshape((1,) * (x.ndim - 1) + (-1,)) for v in per_feature]


def normalize(x: jax.Array, mean, var, scale, bias, epsilon: float) -> jax.Array:
    """``(x - mean) / sqrt(var + epsilon) * scale + bias`` with given statistics (evaluation mode).

    The result has the type of ``x``, ``scale`` and ``bias`` together (as Flax's), so bfloat16
    activations and parameters stay bfloat16 although the statistics are float32.

    Args:
      x: ``(..., features)`` activations.
      mean: ``(features,)`` means, e.g. the running averages.
      var: ``(features,)`` variances.
      scale: ``(features,)`` learned scale (gamma).
      bias: ``(features,)`` learned shift (beta).
      epsilon: added to the variance so a constant feature does not divide by zero.

    Returns:
      The normalised activations, shaped like ``x``.
    """
    dtype = jnp.result_type(x, scale, bias)
    mean, var, scale, bias = _features(x, mean, var, scale, bias)
    return ((x - mean) * (jax.lax.rsqrt(var + epsilon) * scale) + bias).astype(dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def batch_normalize(x, scale: jax.Array, bias: jax.Array, epsilon: float = 1e-5):
    """Normalises ``x`` by its own batch statistics (training mode); ``scale`` and ``bias`` are per feature.

    ``x`` is an array or a list of arrays, the groups of one batch: each is normalised by the statistics of
    all of them together and a list comes back, so that a network can carry its batch as independent
    groups between batch norms (see :class:`jaxdl.models.classifiers.CNN`).

    Args:
      x: ``(..., features)`` activations, or a list of groups of one batch.
      scale: ``(features,)`` learned scale (gamma).
      bias: ``(features,)`` learned shift (beta).
      epsilon: added to the variance; not differentiated.

    Returns:
      The normalised activations, shaped like ``x`` (a list for a list). Each feature then has mean
      ``bias`` and standard deviation about ``scale`` over the batch.

    Example:
      >>> y = batch_normalize(jnp.array([[1.0], [3.0]]), jnp.ones(1), jnp.zeros(1))
      >>> y.round(3)
      Array([[-1.],
             [ 1.]], dtype=float32)
    """
    mean, var = batch_statistics(x)
    return map_groups(x, lambda g: normalize(g, mean, var, scale, bias, epsilon))


@batch_normalize.defjvp
def _batch_normalize_jvp(epsilon, primals, tangents):
    x, scale, bias = primals
    dx, dscale, dbias = tangents
    groups, dgroups = _groups(x), _groups(dx)
    mean, var = batch_statistics(groups)
    rstd = jax.lax.rsqrt(var + epsilon)
    c = rstd * scale
    [mean_, rstd_, c_] = _features(groups[0], mean, rstd, c)  # the groups of one batch have one rank
    xhat = [(g - mean_) * rstd_ for g in groups]
    # Grouped so that the transpose needs sum(g xhat) and sum(g) once each, shared with dscale and dbias.
    u = dscale - c * _sum_over_batch([d * h for d, h in zip(dgroups, xhat, strict=True)]) / _count(groups)
    v = dbias - c * _sum_over_batch(dgroups) / _count(groups)
    [u_, v_] = _features(groups[0], u, v)
    y = [normalize(g, mean, var, scale, bias, epsilon) for g in groups]
    dy = [(c_ * d + h * u_ + v_).astype(out.dtype) for d, h, out in zip(dgroups, xhat, y, strict=True)]
    return _like(x, y), _like(x, dy)
