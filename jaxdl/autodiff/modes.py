"""Forward versus reverse mode, written out (tutorial 0's (F1) and (R1)).

For f = f_u o ... o f_1 the Jacobian is the product J_u ... J_1. Forward mode
(F1) multiplies from the input side, J_u (... (J_2 J_1)): every partial
product has n columns, one per input, so its cost grows with n. Reverse mode
(R1) multiplies from the output side, ((J_u J_{u-1}) ...) J_1: every partial
product has m rows, one per output, so for a scalar loss (m = 1) each step is
a vector-matrix product. JAX's ``jvp`` pushes one column through, ``vjp`` one
row; ``jacfwd`` and ``jacrev`` vmap them over all columns or rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


def jacobian_by_columns(f: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """J (m, n) built column by column: column j is jvp(f, x, e_j), one forward pass each.

    Args:
      f: a function of one array with n = ``x.size`` entries to an array with m entries.
      x: the point, any shape.

    Returns:
      The Jacobian flattened to (m, n): ``J[i, j] = d f(x).ravel()[i] / d x.ravel()[j]``.

    Example:
      >>> jacobian_by_columns(lambda x: jnp.array([x[0] * x[1], x[1]]), jnp.array([2.0, 3.0])).tolist()
      [[3.0, 2.0], [0.0, 1.0]]
    """
    basis = jnp.eye(x.size, dtype=x.dtype).reshape(x.size, *x.shape)
    columns = jax.vmap(lambda v: jax.jvp(f, (x,), (v,))[1])(basis)  # (n, m)
    return columns.reshape(x.size, -1).T


def jacobian_by_rows(f: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """J (m, n) built row by row: row i is vjp(f, x)(e_i), one backward pass each.

    Args:
      f: a function of one array with n = ``x.size`` entries to an array with m entries.
      x: the point, any shape.

    Returns:
      The same (m, n) Jacobian as :func:`jacobian_by_columns`.
    """
    y, pullback = jax.vjp(f, x)
    basis = jnp.eye(y.size, dtype=y.dtype).reshape(y.size, *y.shape)
    (rows,) = jax.vmap(pullback)(basis)  # (m, n)
    return rows.reshape(y.size, -1)


def dense_layers(params: Sequence[dict], x: jax.Array, activation=jnp.tanh) -> list[jax.Array]:
    """The Jacobians J_i (n_i, n_{i-1}) of each layer h -> activation(h @ W + b) at the point x.

    ``params`` is a sequence of {"w": (n_{i-1}, n_i), "b": (n_i,)}; the last
    layer is linear (no activation).

    Args:
      params: the layers, input side first.
      x: (n_0,) one input vector (not a batch).
      activation: an elementwise nonlinearity after every layer but the last.

    Returns:
      ``[J_1, ..., J_u]``, input side first, so that the network's Jacobian is their product
      ``J_u ... J_1`` (see :func:`chain_forward` and :func:`chain_reverse`).
    """
    jacobians, h = [], x
    for i, layer in enumerate(params):
        z = h @ layer["w"] + layer["b"]
        if i < len(params) - 1:
            slope = jax.vmap(jax.grad(activation))(z)
            jacobians.append(slope[:, None] * layer["w"].T)
            h = activation(z)
        else:
            jacobians.append(layer["w"].T)
            h = z
    return jacobians


def chain_forward(jacobians: Sequence[jax.Array]) -> jax.Array:
    """(F1): J_u (... (J_3 (J_2 J_1))), matrix-matrix products carrying n columns.

    Args:
      jacobians: ``[J_1, ..., J_u]``, input side first, J_i of shape (n_i, n_{i-1}).

    Returns:
      The product J_u ... J_1, (n_u, n_0).
    """
    product = jacobians[0]
    for jac in jacobians[1:]:
        product = jac @ product
    return product


def chain_reverse(jacobians: Sequence[jax.Array]) -> jax.Array:
    """(R1): (((J_u J_{u-1}) J_{u-2}) ...) J_1, products carrying m rows (a vector when m = 1).

    Args:
      jacobians: ``[J_1, ..., J_u]``, input side first, J_i of shape (n_i, n_{i-1}).

    Returns:
      The same product as :func:`chain_forward`, associated from the output side.

    Example:
      >>> js = [jnp.ones((3, 2)), jnp.ones((1, 3))]
      >>> bool((chain_reverse(js) == chain_forward(js)).all())
      True
    """
    product = jacobians[-1]
    for jac in reversed(jacobians[:-1]):
        product = product @ jac
    return product


def chain_flops(sizes: Sequence[int]) -> tuple[int, int]:
    """Multiply-adds x 2 of (F1) and (R1) for layer widths [n, n_1, ..., m].

    Each order starts from one Jacobian (J_1 forward, J_u in reverse) and counts the products after it.

    Args:
      sizes: the widths ``[n, n_1, ..., m]``, input first.

    Returns:
      ``(forward, reverse)`` floating-point operation counts.

    Example: with one output, reverse mode is cheaper by about the input width.

      >>> chain_flops([100, 50, 50, 1])
      (510000, 15000)
    """
    n, m = sizes[0], sizes[-1]
    forward = sum(2 * sizes[i + 1] * sizes[i] * n for i in range(1, len(sizes) - 1))
    reverse = sum(2 * m * sizes[i + 1] * sizes[i] for i in range(0, len(sizes) - 2))
    return forward, reverse


def hvp_forward_over_reverse(f: Callable, x: jax.Array, v: jax.Array) -> jax.Array:
    """H v as the directional derivative of the gradient: jvp(grad f).

    Args:
      f: a scalar function of one array.
      x: the point where the Hessian H is taken.
      v: the direction, shaped like ``x``.

    Returns:
      H v, shaped like ``x``, without forming H.

    Example: f(x) = x0^2 x1 has Hessian [[2 x1, 2 x0], [2 x0, 0]].

      >>> f = lambda x: x[0] ** 2 * x[1]
      >>> hvp_forward_over_reverse(f, jnp.array([1.0, 2.0]), jnp.array([1.0, 0.0])).tolist()
      [4.0, 2.0]
    """
    return jax.jvp(jax.grad(f), (x,), (v,))[1]


def hvp_reverse_over_reverse(f: Callable, x: jax.Array, v: jax.Array) -> jax.Array:
    """H v as the gradient of <grad f(x), v>: grad of grad.

    Same value as :func:`hvp_forward_over_reverse`, but a second backward pass keeps the first
    one's activations alive, so it costs more memory.

    Args:
      f: a scalar function of one array.
      x: the point where the Hessian H is taken.
      v: the direction, shaped like ``x``.

    Returns:
      H v, shaped like ``x``.
    """
    return jax.grad(lambda y: jnp.vdot(jax.grad(f)(y), v))(x)


def gradient_by_jvp(loss: Callable, params) -> object:
    """The gradient of a scalar loss by forward mode: one jvp per parameter (batched with vmap).

    Args:
      loss: a scalar function of the pytree ``params``.
      params: any pytree of arrays.

    Returns:
      The gradient, a pytree shaped like ``params``.

    Example: the same gradient as reverse mode's one vjp, for any pytree of parameters.

      >>> loss = lambda p: jnp.sum(p["w"] ** 2) + p["b"]
      >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
      >>> jax.tree.map(lambda g: g.tolist(), gradient_by_jvp(loss, params))
      {'b': 1.0, 'w': [2.0, -4.0]}
      >>> jax.tree.map(lambda g: g.tolist(), gradient_by_vjp(loss, params))
      {'b': 1.0, 'w': [2.0, -4.0]}
    """
    flat, unravel = ravel_pytree(params)

    def directional(v):
        return jax.jvp(lambda p: loss(unravel(p)), (flat,), (v,))[1]

    return unravel(jax.vmap(directional)(jnp.eye(flat.size, dtype=flat.dtype)))


def gradient_by_vjp(loss: Callable, params) -> object:
    """The gradient of a scalar loss by reverse mode: one vjp, seeded with 1.

    Args:
      loss: a scalar function of the pytree ``params``.
      params: any pytree of arrays.

    Returns:
      The gradient, a pytree shaped like ``params`` (what ``jax.grad(loss)(params)`` returns).
    """
    value, pullback = jax.vjp(loss, params)
    return pullback(jnp.ones_like(value))[0]


def forward_gradient(loss: Callable, params, key: jax.Array) -> tuple[jax.Array, object]:
    """Baydin et al. (2022), "Gradients without backpropagation": one jvp along a random direction.

    With ``v ~ N(0, I)`` (a pytree shaped like ``params``), ``(grad f . v) v`` is
    an unbiased estimate of ``grad f``: ``E[v v'] = I``. Its variance is
    ``(n + 1) |grad f|^2`` summed over the n parameters, so it grows with the
    network. One forward pass carries the tangent along: no activations are kept
    for a backward pass.

    Args:
      loss: a scalar function of the pytree ``params``.
      params: any pytree of floating-point arrays.
      key: a ``jax.random`` key for the direction v.

    Returns:
      ``(loss value, gradient estimate)``, the estimate shaped like ``params``.

    Example: the estimate is the direction v scaled by the directional derivative.

      >>> value, g = forward_gradient(lambda p: jnp.sum(p), jnp.ones(3), jax.random.key(0))
      >>> float(value), g.shape
      (3.0, (3,))
    """
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    v = treedef.unflatten([jax.random.normal(k, leaf.shape, leaf.dtype) for k, leaf in zip(keys, leaves, strict=True)])
    value, directional = jax.jvp(loss, (params,), (v,))
    return value, jax.tree.map(lambda t: directional * t, v)
