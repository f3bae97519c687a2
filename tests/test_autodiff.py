"""Autodiff: Jacobians by columns and rows, (F1) and (R1), HVPs, gradient checks, hand-written backprop."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import autodiff as A
from jaxdl.functional import mlp_apply, mlp_init
from jaxdl.functional import scratch as S

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)


def _mlp(sizes, seed=0):
    params = mlp_init(jax.random.key(seed), sizes, init="glorot", dtype=jnp.float64)
    layers = [params[f"dense{i}"] for i in range(len(sizes) - 1)]
    return params, layers, (lambda x: mlp_apply(params, x, activation=jnp.tanh))


@pytest.mark.parametrize("n, m", [(7, 3), (3, 7), (5, 1)])
def test_jacobians_by_columns_and_rows_match_jacfwd_and_jacrev(n, m, x64):
    _, _, f = _mlp([n, 6, m])
    x = jax.random.normal(jax.random.key(1), (n,), jnp.float64)
    expected = jax.jacfwd(f)(x)
    np.testing.assert_allclose(A.jacobian_by_columns(f, x), expected, rtol=1e-12)
    np.testing.assert_allclose(A.jacobian_by_rows(f, x), jax.jacrev(f)(x), rtol=1e-12)


def test_chain_products_f1_and_r1_equal_the_jacobian(x64):
    sizes = [6, 5, 4, 3]
    _, layers, f = _mlp(sizes)
    x = jax.random.normal(jax.random.key(2), (6,), jnp.float64)
    jacobians = A.dense_layers(layers, x, jnp.tanh)
    assert [j.shape for j in jacobians] == [(5, 6), (4, 5), (3, 4)]
    np.testing.assert_allclose(A.chain_forward(jacobians), jax.jacfwd(f)(x), rtol=1e-12)
    np.testing.assert_allclose(A.chain_reverse(jacobians), jax.jacrev(f)(x), rtol=1e-12)
    # n = 1000 inputs, m = 1 output: (F1) carries 1000 columns, (R1) one row.
    assert A.chain_flops([1000, 64, 64, 1]) == (
        2 * 64 * 64 * 1000 + 2 * 64 * 1000,
        2 * 64 * 1000 + 2 * 64 * 64,
    )


def test_hessian_vector_products_agree_with_the_full_hessian(x64):
    def f(x):
        return jnp.sum(jnp.tanh(x) ** 3) + jnp.prod(jnp.cos(x[:3]))

    x = jax.random.normal(jax.random.key(3), (6,), jnp.float64)
    v = jax.random.normal(jax.random.key(4), (6,), jnp.float64)
    expected = jax.hessian(f)(x) @ v
    np.testing.assert_allclose(A.hvp_forward_over_reverse(f, x, v), expected, rtol=1e-12)
    np.testing.assert_allclose(A.hvp_reverse_over_reverse(f, x, v), expected, rtol=1e-12)


def test_gradient_by_n_jvps_equals_one_vjp(x64):
    params, _, _ = _mlp([4, 8, 1])
    x = jax.random.normal(jax.random.key(5), (10, 4), jnp.float64)

    def loss(p):
        return jnp.mean(mlp_apply(p, x, activation=jnp.tanh) ** 2)

    by_jvp, by_vjp, by_grad = (
        A.gradient_by_jvp(loss, params),
        A.gradient_by_vjp(loss, params),
        jax.grad(loss)(params),
    )
    chex.assert_trees_all_close(by_jvp, by_grad, rtol=1e-12, atol=1e-15)
    chex.assert_trees_all_close(by_vjp, by_grad, rtol=1e-12, atol=1e-15)


def test_gradient_checker_passes_true_gradients_and_names_a_wrong_leaf(x64):
    params, _, _ = _mlp([3, 4, 1])
    x = jax.random.normal(jax.random.key(6), (5, 3), jnp.float64)

    def loss(p):
        return jnp.mean(jnp.sin(mlp_apply(p, x, activation=jnp.tanh)))

    report = A.check_gradients(loss, params)
    assert report.ok, str(report)
    wrong = jax.grad(loss)(params)
    wrong["dense1"]["w"] = wrong["dense1"]["w"].at[2, 0].multiply(1.01)
    bad = A.check_gradients(loss, params, wrong)
    assert not bad.ok
    assert bad.worst[0] == "['dense1']['w']" and "FAILED: worst leaf ['dense1']['w']" in str(bad).replace("check ", "")


def test_gradient_checker_requires_float64():
    with pytest.raises(RuntimeError, match="float64"):
        A.check_gradients(lambda p: jnp.sum(p**2), jnp.ones(3))


@pytest.mark.parametrize("sizes", [[4, 1], [5, 6, 1], [6, 5, 4, 1], [3, 8, 8, 8, 1]])
def test_numpy_and_jax_backprop_match_jax_grad_leaf_by_leaf(sizes, x64):
    params = S.initialize_parameters(sizes, seed=len(sizes))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((sizes[0], 12))
    Y = (rng.random((1, 12)) > 0.5).astype(np.float64)
    AL, caches = S.forward_propagation(X, params)
    numpy_grads = S.backward_propagation(AL, Y, caches)
    loss, jax_grads = S.jax_backward(params, X, Y)
    auto = jax.grad(S.jax_loss)(params, X, Y)
    assert float(loss) == pytest.approx(S.compute_error(AL, Y), rel=1e-12)
    for name, g in auto.items():
        scale = np.max(np.abs(g)) + 1e-30
        assert np.max(np.abs(numpy_grads[f"d{name}"] - g)) / scale < 1e-6, name
        assert np.max(np.abs(jax_grads[name] - g)) / scale < 1e-6, name
    assert A.check_gradients(lambda p: S.jax_loss(p, X, Y), params, jax_grads).ok
