"""Curvature from Hessian-vector products: the four orders agree, Lanczos finds the exact top eigenvalues."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxdl import curvature
from jaxdl.functional import mlp_apply, mlp_init, softmax_cross_entropy

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)


@pytest.fixture
def small(x64):
    params = jax.tree.map(lambda a: a.astype(jnp.float64), mlp_init(jax.random.key(0), [6, 10, 3], init="glorot"))
    x = jax.random.normal(jax.random.key(1), (40, 6), jnp.float64)
    y = jax.random.randint(jax.random.key(2), (40,), 0, 3)

    def loss(p, x, y):
        return softmax_cross_entropy(mlp_apply(p, x, activation=jnp.tanh), y)

    return loss, params, (x, y)


def _hessian(loss, params, data):
    flat, unravel = ravel_pytree(params)
    return jax.jit(jax.hessian(lambda q: loss(unravel(q), *data)))(flat), unravel  # one program, not one per operation


def test_the_four_hvp_orders_agree_with_the_full_hessian(small):
    loss_of, params, data = small
    hessian, unravel = _hessian(loss_of, params, data)
    v = unravel(jax.random.normal(jax.random.key(3), (len(hessian),), hessian.dtype))

    def loss(p):
        return loss_of(p, *data)

    expected = unravel(hessian @ ravel_pytree(v)[0])
    for order in curvature.HVP_ORDERS:  # each jitted: one program, not one per operation
        hvp = jax.jit(lambda p, v, order=order: curvature.hvp(loss, p, v, order))(params, v)
        chex.assert_trees_all_close(hvp, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        jax.jit(lambda p, v: curvature.second_directional_derivative(loss, p, v))(params, v),
        ravel_pytree(v)[0] @ hessian @ ravel_pytree(v)[0], rtol=1e-10,
    )  # fmt: skip
    with pytest.raises(ValueError, match="order must be one of"):
        curvature.hvp(loss, params, v, "sideways")


def test_lanczos_top_eigenvalues_equal_the_exact_spectrum(small):
    loss, params, data = small
    exact = np.sort(np.linalg.eigvalsh(np.asarray(_hessian(loss, params, data)[0])))[::-1]
    top = curvature.top_eigenvalues(loss, params, *data, k=5, key=jax.random.key(4))
    np.testing.assert_allclose(top, exact[:5], rtol=1e-4)


def test_spectral_density_is_a_density_with_the_right_mean(small):
    loss, params, data = small
    exact = np.linalg.eigvalsh(np.asarray(_hessian(loss, params, data)[0]))
    grid, density, quadrature = curvature.spectral_density(
        loss, params, *data, key=jax.random.key(5), vectors=8, iterations=30
    )
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-3)
    # the quadrature's first moment estimates trace(H) / n (Hutchinson), within its sampling error
    mean = float(np.sum(quadrature["weights"] * quadrature["nodes"]))
    assert mean == pytest.approx(exact.mean(), abs=3 * exact.std() / np.sqrt(8))


def test_filter_normalized_directions_and_slices(small):
    loss, params, data = small
    d = curvature.filter_normalized_direction(params, jax.random.key(6))
    for p, q in zip(jax.tree.leaves(params), jax.tree.leaves(d), strict=True):
        if p.ndim == 2:  # each unit's incoming weights: the same norm as the parameters'
            np.testing.assert_allclose(np.linalg.norm(q, axis=0), np.linalg.norm(p, axis=0), rtol=1e-10)
        else:
            assert not np.any(q)
    line = curvature.loss_slice(loss, params, [d], np.linspace(-1, 1, 5), *data)
    assert line[2] == pytest.approx(float(loss(params, *data)))
    # away from the centre the slice is the loss at the moved parameters, exactly
    moved = jax.tree.map(lambda p, q: p + 0.5 * q, params, d)
    assert line[3] == pytest.approx(float(loss(moved, *data)), rel=1e-12)
    square = curvature.loss_slice(loss, params, [d, d], np.linspace(-1, 1, 3), *data)
    assert square.shape == (3, 3) and square[1, 1] == pytest.approx(float(loss(params, *data)))
    assert square[2, 2] == pytest.approx(float(loss(jax.tree.map(lambda p, q: p + 2 * q, params, d), *data)), rel=1e-12)
