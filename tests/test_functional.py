"""The functional core: values against references, gradients by check_grads in float64."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from jaxdl import functional as F

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)


def _rand(key, shape, scale=1.0):
    return scale * jax.random.normal(jax.random.key(key), shape, dtype=jnp.float64)


# ---------------------------------------------------------------- activations

ELEMENTWISE = [F.sigmoid, F.tanh, F.relu, F.leaky_relu, F.elu, F.softplus]


@pytest.mark.parametrize("fn", ELEMENTWISE, ids=lambda f: f.__name__)
def test_activation_gradients(fn, x64):
    # Points away from 0 so the kinks of relu / leaky relu / elu are not straddled.
    x = jnp.array([-3.0, -1.2, -0.4, 0.3, 0.9, 2.5], dtype=jnp.float64)
    check_grads(fn, (x,), order=2, modes=("fwd", "rev"))


def test_maxout_gradients_and_values(x64):
    x = _rand(0, (4, 6))
    check_grads(lambda v: F.maxout(v, 3), (x,), order=2, modes=("fwd", "rev"))
    np.testing.assert_array_equal(F.maxout(x, 3), np.max(np.asarray(x).reshape(4, 2, 3), axis=-1))
    with pytest.raises(ValueError, match="divide by num_pieces"):
        F.maxout(x, 4)


def test_activations_match_jax_nn():
    x = jnp.linspace(-30.0, 30.0, 101)
    np.testing.assert_allclose(F.leaky_relu(x), jax.nn.leaky_relu(x, 0.01), rtol=1e-6)
    np.testing.assert_allclose(F.elu(x), jax.nn.elu(x), rtol=1e-6)
    np.testing.assert_allclose(F.softplus(x), jax.nn.softplus(x), rtol=1e-6)
    np.testing.assert_allclose(F.sigmoid(x), 1 / (1 + np.exp(-np.asarray(x, np.float64))), rtol=1e-6)


def test_elu_gradient_is_finite_for_large_inputs():
    # expm1 of a large unselected input would be inf, and 0 * inf = NaN.
    g = jax.grad(lambda v: F.elu(v).sum())(jnp.array([1000.0, -1000.0]))
    np.testing.assert_array_equal(g, [1.0, 0.0])


# --------------------------------------------------------------------- losses

LABELS = (0.0, 1.0, 1.0, 0.0, 0.3)  # soft labels are allowed too

LOSS_CASES = {
    # name: (loss as a function of its differentiable inputs, input builder)
    "bce_with_logits": (
        lambda z: F.binary_cross_entropy_with_logits(z, jnp.array(LABELS)),
        lambda: (_rand(1, (5,), 3.0),),
    ),
    "bce": (
        # Probabilities away from 0 and 1, where the clamp is inactive.
        lambda p: F.binary_cross_entropy(p, jnp.array(LABELS)),
        lambda: (jax.nn.sigmoid(_rand(1, (5,))),),
    ),
    "softmax_cross_entropy": (
        lambda z: F.softmax_cross_entropy(z, jnp.array([0, 6, 3, 3])),
        lambda: (_rand(2, (4, 7)),),
    ),
    "mse": (lambda p: F.mse(p, _rand(3, (4, 3))), lambda: (_rand(4, (4, 3)),)),
    "gaussian_kl": (F.gaussian_kl, lambda: (_rand(5, (3, 2)), _rand(6, (3, 2), 0.5))),
}


@pytest.mark.parametrize("name", LOSS_CASES)
def test_loss_gradients(name, x64):
    loss, make_args = LOSS_CASES[name]
    check_grads(jax.jit(loss), make_args(), order=2, modes=("fwd", "rev"))


def test_bce_logits_equals_bce_on_probabilities(x64):
    z = jnp.linspace(-8.0, 8.0, 33, dtype=jnp.float64)
    y = (jnp.arange(33) % 2).astype(jnp.float64)
    np.testing.assert_allclose(
        F.binary_cross_entropy_with_logits(z, y, "none"),
        F.binary_cross_entropy(jax.nn.sigmoid(z), y, "none"),
        rtol=1e-10,
    )


def test_bce_logits_derivative_rule_matches_autodiff_of_its_formula(x64):
    # The loss carries its own JVP rule (sigmoid(z) - y); every derivative must
    # still be the formula's, in both arguments, and integer labels must work.
    def formula(z, y):
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z)

    z = jnp.array([-40.0, -3.0, -0.5, 0.0, 0.7, 4.0, 35.0], dtype=jnp.float64)
    y = jnp.array([1.0, 0.0, 0.3, 1.0, 0.0, 1.0, 0.0], dtype=jnp.float64)
    loss = F.binary_cross_entropy_with_logits
    for derivative in (jax.grad, jax.hessian, jax.jacfwd):
        for argnums in (0, 1, (0, 1)):
            np.testing.assert_allclose(  # jitted: one program each, not one per operation
                jax.tree.leaves(jax.jit(derivative(loss, argnums))(z, y)),
                jax.tree.leaves(jax.jit(derivative(formula, argnums))(z, y)),
                rtol=1e-12,
                atol=1e-15,
            )
    check_grads(loss, (z, y), order=2, modes=("fwd", "rev"))
    labels = jnp.array([1, 0, 0, 1, 0, 1, 0])
    np.testing.assert_allclose(jax.grad(loss)(z, labels), jax.grad(formula)(z, labels.astype(z.dtype)), rtol=1e-12)


def test_bce_logits_is_exact_where_probabilities_saturate():
    z = jnp.array([100.0, -100.0, 40.0])
    y = jnp.array([0.0, 1.0, 0.0])
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(z, y, "none"), [100, 100, 40])
    # The probability form saturates: sigmoid(40) rounds to 1 in float32, the log is clamped.
    assert float(F.binary_cross_entropy(jax.nn.sigmoid(z[2:]), y[2:])) == pytest.approx(100.0)


def test_bce_clamps_like_pytorch():
    # nn.BCELoss(torch.tensor([0.]), torch.tensor([1.])) == 100.
    assert float(F.binary_cross_entropy(jnp.array([0.0]), jnp.array([1.0]))) == 100.0


def test_softmax_cross_entropy_matches_optax():
    logits = jax.random.normal(jax.random.key(0), (6, 10))
    labels = jnp.arange(6)
    np.testing.assert_allclose(
        F.softmax_cross_entropy(logits, labels, "none"),
        optax.softmax_cross_entropy_with_integer_labels(logits, labels),
        rtol=1e-6,
    )


def test_reductions():
    p, t = jnp.array([1.0, 2.0, 4.0]), jnp.array([0.0, 0.0, 0.0])
    assert float(F.mse(p, t)) == pytest.approx(7.0)
    assert float(F.mse(p, t, "sum")) == pytest.approx(21.0)
    np.testing.assert_allclose(F.mse(p, t, "none"), [1, 4, 16])
    with pytest.raises(ValueError, match="reduction"):
        F.mse(p, t, "avg")


def test_gaussian_kl_closed_form():
    assert float(F.gaussian_kl(jnp.zeros(3), jnp.zeros(3))) == 0.0
    # KL(N(1, e^2) || N(0, 1)) = 0.5 * (e^2 + 1 - 1 - 2) per dimension.
    value = F.gaussian_kl(jnp.array([1.0]), jnp.array([2.0]))
    assert float(value) == pytest.approx(0.5 * (math.e**2 - 2.0), rel=1e-6)


# ------------------------------------------------------------- initialisers


def test_he_normal_statistics():
    w = F.he_normal(jax.random.key(0), (400, 300))
    assert float(jnp.std(w)) == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    assert abs(float(jnp.mean(w))) < 0.002
    assert float(jnp.max(jnp.abs(w))) > 3 * math.sqrt(2 / 400)  # not truncated


def test_uniform_initialisers_respect_their_bounds():
    key = jax.random.key(1)
    w = F.torch_linear_kernel(key, (50, 7))
    assert float(jnp.max(jnp.abs(w))) <= 1 / math.sqrt(50)
    assert float(jnp.max(jnp.abs(w))) > 0.9 / math.sqrt(50)
    b = F.torch_linear_bias(50)(key, (7,))
    assert float(jnp.max(jnp.abs(b))) <= 1 / math.sqrt(50)
    g = F.glorot_uniform(key, (60, 40))
    assert float(jnp.max(jnp.abs(g))) <= math.sqrt(6 / 100)
    assert float(jnp.std(F.glorot_normal(key, (300, 300)))) == pytest.approx(math.sqrt(2 / 600), rel=0.03)


def test_conv_kernel_fans():
    w = F.he_normal(jax.random.key(2), (3, 3, 64, 128))
    assert float(jnp.std(w)) == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.02)


def test_unknown_initialiser_names_the_choices():
    with pytest.raises(ValueError, match="unknown initialiser 'kaiming'.*he"):
        F.kernel_init("kaiming")


# ------------------------------------------------------------------------ MLP


def test_mlp_shapes_names_and_parameter_count():
    params = F.mlp_init(jax.random.key(0), [784, 128, 10])
    assert list(params) == ["dense0", "dense1"]
    assert params["dense0"]["w"].shape == (784, 128)
    assert sum(p.size for p in jax.tree.leaves(params)) == 784 * 128 + 128 + 128 * 10 + 10
    assert F.mlp_apply(params, jnp.ones((5, 784))).shape == (5, 10)


def test_mlp_apply_matches_explicit_computation():
    params = F.mlp_init(jax.random.key(3), [3, 4, 2], init="glorot")
    x = jax.random.normal(jax.random.key(4), (6, 3))
    d0, d1 = params["dense0"], params["dense1"]
    expected = jax.nn.sigmoid(jnp.tanh(x @ d0["w"] + d0["b"][None]) @ d1["w"] + d1["b"][None])
    got = F.mlp_apply(params, x, activation=F.tanh, final_activation=F.sigmoid)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_mlp_loss_gradients(x64):
    params = F.mlp_init(jax.random.key(5), [3, 8, 8, 1], dtype=jnp.float64)
    x = _rand(6, (10, 3))
    y = (jnp.arange(10) % 2).astype(jnp.float64)

    def loss(p):
        logits = F.mlp_apply(p, x, activation=F.tanh)[:, 0]
        return F.binary_cross_entropy_with_logits(logits, y)

    check_grads(jax.jit(loss), (params,), order=1, modes=("fwd", "rev"))


@pytest.mark.parametrize("sizes", [[3], [3, 0, 1], []])
def test_mlp_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError, match="at least two positive widths"):
        F.mlp_init(jax.random.key(0), sizes)


class LossesWithAndWithoutJit(chex.TestCase):
    """The losses and the pytree MLP give the same values traced by jit as run eagerly."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_losses_and_mlp(self):
        logits = jax.random.normal(jax.random.key(0), (6, 10))
        labels = jnp.arange(6)
        probabilities = jax.nn.sigmoid(logits[:, 0])
        targets = (labels % 2).astype(jnp.float32)
        expected = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        np.testing.assert_allclose(self.variant(F.softmax_cross_entropy)(logits, labels), expected, rtol=1e-6)
        np.testing.assert_allclose(
            self.variant(F.binary_cross_entropy)(probabilities, targets),
            self.variant(F.binary_cross_entropy_with_logits)(logits[:, 0], targets),
            rtol=1e-5,
        )
        params = F.mlp_init(jax.random.key(1), [10, 8, 3])
        out = self.variant(F.mlp_apply)(params, logits)
        chex.assert_shape(out, (6, 3))
        chex.assert_tree_all_finite(out)
