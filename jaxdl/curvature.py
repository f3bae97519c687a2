"""The loss's curvature from Hessian-vector products: four ways to form one, Lanczos, the spectral density, slices.

A Hessian-vector product never forms the Hessian: it is a derivative of a
derivative, in any order of the two modes (:func:`hvp`). Lanczos iteration
(:func:`lanczos`) turns k of them into a k x k tridiagonal matrix whose
extreme eigenvalues converge to the Hessian's first; stochastic Lanczos
quadrature (:func:`spectral_density`; Ghorbani, Krishnan and Xiao, 2019)
turns a few such runs from random starts into an estimate of the whole
eigenvalue density. :func:`loss_slice` draws the loss along filter-normalised
random directions (Li et al., 2018).

The loss is a function ``loss(params, *data)`` and the data its arguments: every program here takes
them as arguments, so none is compiled with a batch of images baked in.

Example:
    >>> top = top_eigenvalues(loss, params, images, labels, k=5, key=jax.random.key(0))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

HvpOrder = Literal["fwd-over-rev", "rev-over-fwd", "rev-over-rev", "fwd-over-fwd"]
HVP_ORDERS: tuple[str, ...] = ("fwd-over-rev", "rev-over-fwd", "rev-over-rev", "fwd-over-fwd")


def _vdot(a: Any, b: Any) -> jax.Array:
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def hvp(loss: Callable[[Any], jax.Array], params: Any, v: Any, order: HvpOrder = "fwd-over-rev") -> Any:
    """The Hessian of ``loss`` at ``params`` times ``v`` (a pytree like ``params``).

    - fwd-over-rev: ``jvp(grad loss)``: one forward pass carrying a tangent through the gradient;
    - rev-over-fwd: ``grad(jvp loss)``: the gradient of the directional derivative;
    - rev-over-rev: ``grad(<grad loss, v>)``: backprop through backprop;
    - fwd-over-fwd: forward mode alone gives one number per pass, ``v' H u`` =
      ``jvp(jvp loss along u) along v``; H v needs it for every unit vector u,
      n passes, so this order is only for networks small enough (see
      :func:`second_directional_derivative` for the one-pass scalar).

    Args:
      loss: a scalar function of the parameter pytree.
      params: where the Hessian is taken.
      v: the direction, a pytree shaped like ``params``.
      order: which composition of the two modes; all four give the same H v up to rounding.

    Returns:
      H v, a pytree shaped like ``params``.

    Raises:
      ValueError: for an unknown ``order``.

    Example:
      >>> loss = lambda p: jnp.sum(p["w"] ** 3)
      >>> hvp(loss, {"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([1.0, 1.0])})["w"].tolist()
      [6.0, 12.0]
    """
    if order == "fwd-over-rev":
        return jax.jvp(jax.grad(loss), (params,), (v,))[1]
    if order == "rev-over-fwd":
        return jax.grad(lambda p: jax.jvp(loss, (p,), (v,))[1])(params)
    if order == "rev-over-rev":
        return jax.grad(lambda p: _vdot(jax.grad(loss)(p), v))(params)
    if order == "fwd-over-fwd":
        flat, unravel = ravel_pytree(params)
        flat_v = ravel_pytree(v)[0]

        def second(u):  # u' H v by two jvps
            return jax.jvp(lambda q: jax.jvp(lambda r: loss(unravel(r)), (q,), (flat_v,))[1], (flat,), (u,))[1]

        return unravel(jax.vmap(second)(jnp.eye(flat.size, dtype=flat.dtype)))
    raise ValueError(f"order must be one of {', '.join(HVP_ORDERS)}, got {order!r}")


def second_directional_derivative(loss: Callable[[Any], jax.Array], params: Any, v: Any) -> jax.Array:
    """``v' H v`` by forward mode alone: a jvp of a jvp, one pass.

    Args:
      loss: a scalar function of the parameter pytree.
      params: where the Hessian is taken.
      v: the direction, a pytree shaped like ``params``.

    Returns:
      The curvature along ``v`` (not normalised by ``|v|^2``), a scalar.
    """
    return jax.jvp(lambda p: jax.jvp(loss, (p,), (v,))[1], (params,), (v,))[1]


def lanczos(matvec: Callable[[jax.Array], jax.Array], v0: jax.Array, iterations: int) -> tuple[jax.Array, jax.Array]:
    """``iterations`` steps of Lanczos with full reorthogonalisation from the start ``v0``.

    Args:
      matvec: ``v -> A v`` for a symmetric operator A on flat vectors (a Hessian-vector product).
      v0: (n,) the start; normalised here, and random in practice so it overlaps every eigenvector.
      iterations: the number of steps, capped at n.

    Returns:
      The tridiagonal matrix T (``iterations x iterations``) and the Lanczos
      vectors (``iterations x n``). T's eigenvalues (Ritz values) approximate the
      symmetric operator's extreme eigenvalues first.

    Example: the Ritz values of a diagonal matrix after n steps are its diagonal.

      >>> t, _ = lanczos(lambda v: jnp.array([3.0, 1.0, 2.0]) * v, jnp.ones(3), 3)
      >>> sorted(round(float(e), 4) for e in jnp.linalg.eigvalsh(t))
      [1.0, 2.0, 3.0]
    """
    n = v0.size
    iterations = min(iterations, n)
    vectors = jnp.zeros((iterations, n), v0.dtype).at[0].set(v0 / jnp.linalg.norm(v0))
    alphas = jnp.zeros(iterations, v0.dtype)
    betas = jnp.zeros(iterations, v0.dtype)

    def body(i, carry):
        vectors, alphas, betas = carry
        w = matvec(vectors[i])
        alpha = jnp.vdot(w, vectors[i])
        # Full reorthogonalisation (twice is enough): rounding would otherwise bring back converged directions.
        mask = (jnp.arange(iterations) <= i)[:, None]
        for _ in range(2):
            w = w - (mask * vectors).T @ ((mask * vectors) @ w)
        beta = jnp.linalg.norm(w)
        nxt = jnp.where(beta > 0, w / jnp.where(beta > 0, beta, 1), 0)
        vectors = jnp.where(i + 1 < iterations, vectors.at[jnp.minimum(i + 1, iterations - 1)].set(nxt), vectors)
        return vectors, alphas.at[i].set(alpha), betas.at[i].set(beta)

    vectors, alphas, betas = jax.lax.fori_loop(0, iterations, body, (vectors, alphas, betas))
    tridiagonal = jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)
    return tridiagonal, vectors


def _flat_hvp(loss: Callable[..., jax.Array], params: Any, data: tuple, v: jax.Array) -> jax.Array:
    """H v for a flat ``v``, H the Hessian of ``loss(params, *data)`` in the parameters."""
    flat, unravel = ravel_pytree(params)
    return ravel_pytree(hvp(lambda p: loss(p, *data), params, unravel(v.astype(flat.dtype))))[0]


# The parameters and the data are arguments of the compiled program, never constants in it: XLA
# would otherwise spend the compilation folding the images through the first layers (minutes for a
# CNN). ``loss`` is static: a function defined once (not a fresh closure per call) compiles once.
@functools.partial(jax.jit, static_argnames=("loss", "iterations"))
def _lanczos_on_hessian(loss, params, data, key, iterations):
    flat, _ = ravel_pytree(params)
    v0 = jax.random.normal(key, flat.shape, flat.dtype)  # a random start overlaps every eigenvector
    return lanczos(lambda v: _flat_hvp(loss, params, data, v), v0, iterations)[0]


def top_eigenvalues(
    loss: Callable[..., jax.Array], params: Any, *data: Any, k: int, key: jax.Array, iterations: int | None = None
) -> np.ndarray:
    """The ``k`` largest eigenvalues of the Hessian of ``loss(params, *data)`` in ``params``, by Lanczos.

    ``iterations`` (default ``max(3 k, 30)``) Lanczos steps from a random start, one
    Hessian-vector product each (:func:`hvp`, forward over reverse), in one compiled program.

    Args:
      loss: ``loss(params, *data)``, a scalar; define it once at module level so it compiles once.
      params: the parameter pytree.
      *data: the loss's other arguments (a batch's images and labels), passed to the compiled program.
      k: how many eigenvalues.
      key: a ``jax.random`` key for the start vector.
      iterations: Lanczos steps; more make the top ``k`` more accurate.

    Returns:
      ``(k,)`` float64 NumPy array, largest first.

    Example:
        >>> top = top_eigenvalues(loss, params, x, y, k=5, key=jax.random.key(0))  # doctest: +SKIP
    """
    t = _lanczos_on_hessian(loss, params, data, key, iterations or max(3 * k, 30))
    return np.sort(np.linalg.eigvalsh(np.asarray(t, np.float64)))[::-1][:k]


def spectral_density(
    loss: Callable[..., jax.Array],
    params: Any,
    *data: Any,
    key: jax.Array,
    vectors: int = 4,
    iterations: int = 40,
    grid: np.ndarray | None = None,
    width: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The eigenvalue density of the Hessian of ``loss(params, *data)`` by stochastic Lanczos quadrature
    (Ghorbani et al., 2019).

    Each of ``vectors`` Lanczos runs from a random unit start gives nodes (Ritz
    values) and weights (squared first components of T's eigenvectors): a
    quadrature of the density seen from that start; their average, each node
    widened into a Gaussian of standard deviation ``width``, estimates the
    density.

    Args:
      loss: ``loss(params, *data)``, a scalar.
      params: the parameter pytree.
      *data: the loss's other arguments.
      key: a ``jax.random`` key; run i starts from a vector drawn with ``fold_in(key, i)``.
      vectors: how many random starts to average.
      iterations: Lanczos steps per start.
      grid: eigenvalues at which to evaluate the density; by default 1,000 points spanning the nodes.
      width: the Gaussian's standard deviation; by default 1/60 of the nodes' spread.

    Returns:
      ``(grid, density, {"nodes", "weights"})``: the density integrates to about 1 over the grid.
    """
    nodes, weights = [], []
    for i in range(vectors):
        t = np.asarray(_lanczos_on_hessian(loss, params, data, jax.random.fold_in(key, i), iterations), np.float64)
        values, eigvecs = np.linalg.eigh(t)
        nodes.append(values)
        weights.append(eigvecs[0] ** 2 / vectors)
    nodes, weights = np.concatenate(nodes), np.concatenate(weights)
    spread = nodes.max() - nodes.min()
    width = width or max(spread / 60, 1e-8)
    if grid is None:
        grid = np.linspace(nodes.min() - 5 * width, nodes.max() + 5 * width, 1000)
    density = (weights[None] * np.exp(-0.5 * ((grid[:, None] - nodes[None]) / width) ** 2)).sum(1)
    density /= width * np.sqrt(2 * np.pi)
    return grid, density, {"nodes": nodes, "weights": weights}


@jax.jit  # one program, not a few small ones per parameter leaf
def filter_normalized_direction(params: Any, key: jax.Array) -> Any:
    """A random direction scaled filter by filter to the parameters' norms (Li et al., 2018).

    Each output unit's incoming weights (the last axis of a kernel is the
    unit) get the norm of the parameters' own; biases and other vectors are
    left at zero, as Li et al. do, so the slice moves what shapes the function.

    Args:
      params: the parameter pytree.
      key: a ``jax.random`` key.

    Returns:
      A direction, a pytree shaped like ``params``.
    """
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    out = []
    for k, p in zip(keys, leaves, strict=True):
        if p.ndim < 2:
            out.append(jnp.zeros_like(p))
            continue
        d = jax.random.normal(k, p.shape, p.dtype)
        axes = tuple(range(p.ndim - 1))

        def norm(a, axes=axes):
            return jnp.sqrt(jnp.sum(a * a, axis=axes, keepdims=True))

        scale = norm(p) / (norm(d) + 1e-12)
        out.append(d * scale)
    return treedef.unflatten(out)


@functools.partial(jax.jit, static_argnames="loss")
def _losses_along(loss, params, directions, points, data):
    def at(a):
        moved = jax.tree.map(lambda p, *ds: p + sum(ai * d for ai, d in zip(a, ds, strict=True)), params, *directions)
        return loss(moved, *data)

    return jax.lax.map(at, points)


def loss_slice(
    loss: Callable[..., jax.Array], params: Any, directions: list[Any], coordinates: np.ndarray, *data: Any
) -> np.ndarray:
    """``loss(params + sum_i a_i d_i, *data)`` on a grid of coefficients a.

    Args:
      loss: ``loss(params, *data)``, a scalar.
      params: the centre of the slice.
      directions: one or two directions, pytrees shaped like ``params``
        (:func:`filter_normalized_direction`).
      coordinates: the 1-D coefficients to evaluate along each direction.
      *data: the loss's other arguments.

    Returns:
      With one direction, the curve ``(len(coordinates),)``; with two, the surface
      ``(len(coordinates), len(coordinates))``, indexed ``[a_1, a_2]``.
    """
    coordinates = np.asarray(coordinates)
    if len(directions) == 1:
        return np.asarray(_losses_along(loss, params, directions, coordinates[:, None], data))
    grid_a, grid_b = np.meshgrid(coordinates, coordinates, indexing="ij")
    points = np.stack([grid_a.ravel(), grid_b.ravel()], 1)
    return np.asarray(_losses_along(loss, params, directions, points, data)).reshape(grid_a.shape)
