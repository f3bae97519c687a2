"""Forward-gradient estimators against jax.grad: unbiased where they should be, with the predicted variance and cosine.

Each tolerance comes from the statistic's own spread: a mean of N draws is held within 4.5 of its
standard errors (estimated from the same draws) of the theory, and a per-coordinate z-score, whose
variance is known exactly, within the bound that as many standard normals pass with probability 0.1%.
"""

import statistics

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxdl import forward_learning as fl
from jaxdl.functional import mlp_apply, mlp_init, softmax_cross_entropy

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)

Z = 4.5  # standard errors a sample mean may stray from its expectation (a two-sided p of 7e-6)


def backprop(params, x, y):
    """The exact local gradients, in one program (eagerly, each operation compiles on its own)."""
    exact = jax.jit(lambda params, x, y: fl.local_gradients(params, x, y, jax.random.key(0), estimator="backprop"))
    return exact(params, x, y)


def assert_mean_near(samples, expected, what):
    samples = np.asarray(samples, np.float64)
    error = samples.std(ddof=1) / np.sqrt(len(samples))
    assert abs(samples.mean() - expected) < Z * error, f"{what}: {samples.mean():.5g} vs {expected:.5g} +- {error:.2g}"


def assert_unbiased(estimates, true, variances, draws):
    """Every coordinate's mean of ``draws`` estimates within the Bonferroni bound of its exact standard error."""
    z = (estimates.mean(0) - true) / np.sqrt(variances / draws)
    bound = statistics.NormalDist().inv_cdf(1 - 0.0005 / true.size)
    assert np.max(np.abs(z)) < bound, (np.max(np.abs(z)), bound)


def mlp_problem(sizes, batch, seed=0):
    params = mlp_init(jax.random.key(seed), sizes, init="glorot", dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(seed + 1), (batch, sizes[0]), jnp.float64)
    y = jax.random.randint(jax.random.key(seed + 2), (batch,), 0, sizes[-1])
    return params, lambda p: softmax_cross_entropy(mlp_apply(p, x), y)


@pytest.mark.parametrize("k", [1, 4])
def test_weight_perturbed_mean_of_k_tangents_is_unbiased_with_variance_n_plus_1_over_k(k, x64):
    params, loss = mlp_problem([5, 4, 3], batch=6)
    true, _ = ravel_pytree(jax.grad(loss)(params))
    n, draws = true.size, 4000
    keys = jax.random.split(jax.random.key(7), draws)
    estimates = np.asarray(
        jax.jit(jax.vmap(lambda key: ravel_pytree(fl.weight_perturbed_mean(loss, params, key, k)[1])[0]))(keys)
    )
    true = np.asarray(true)
    # Cov[(g.v) v] = |g|^2 I + g g^T for v ~ N(0, I); k independent tangents divide it by k
    g2 = float(true @ true)
    assert_unbiased(estimates, true, (g2 + true**2) / k, draws)
    assert_mean_near(np.sum((estimates - true) ** 2, 1), (n + 1) * g2 / k, "total variance")


@pytest.mark.parametrize("n, k", [(10, 1), (10, 8), (60, 1), (60, 8)])
def test_the_squared_cosine_of_k_tangents_averages_k_over_k_plus_n_minus_1(n, k, x64):
    # cos^2 is Beta(k/2, (n-1)/2): the component of sum_j (e.v_j) v_j along e is chi2_k, the rest chi2_{n-1}
    true = jax.random.normal(jax.random.key(n), (n,), jnp.float64)

    def loss(w):
        return w @ true

    cos = jax.jit(jax.vmap(lambda key: fl.cosine(fl.weight_perturbed_mean(loss, jnp.zeros(n), key, k)[1], true)))(
        jax.random.split(jax.random.key(1), 3000)
    )
    assert_mean_near(cos**2, k / (k + n - 1), f"E[cos^2], n={n}, k={k}")


def dense_problem(batch, fan_in, width, classes=3, seed=0, groups=1):
    """A dense layer, ReLU and linear heads: x -> z = x W + b -> per-example cross-entropy of each head."""
    params = fl.blocked_mlp_init(jax.random.key(seed), [fan_in, width], classes, groups=groups, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(seed + 1), (batch, fan_in), jnp.float64)
    y = jax.random.randint(jax.random.key(seed + 2), (batch,), 0, classes)
    return params, x, y


@pytest.mark.parametrize("k, signs", [(1, False), (3, False), (1, True), (3, True)])
def test_activity_perturbed_weight_gradient_is_unbiased_with_variance_h_plus_1_per_example(k, signs, x64):
    params, x, y = dense_problem(batch=5, fan_in=6, width=4)
    block = params["block0"]
    true = jax.grad(lambda d: fl.end_to_end_loss({"block0": {"dense": d, "head": block["head"]}}, x, y))(block["dense"])
    # per-example gradients at z: g_i = grad l_i(z_i)
    z = x @ block["dense"]["w"] + block["dense"]["b"][None, :]

    def per_example(z):
        logits = jax.nn.relu(z) @ block["head"]["w"][0] + block["head"]["b"][0][None, :]
        return softmax_cross_entropy(logits, y, reduction="none")

    g = jax.grad(lambda z: per_example(z).sum())(z)  # row i is grad l_i: l_i reads z_i only
    draws, batch, width = 4000, 5, 4

    def estimate(key):
        return fl.dense_weight_gradient(x, fl.activity_perturbed(per_example, z, key, k, signs=signs)[1])["w"].ravel()

    estimates = np.asarray(jax.jit(jax.vmap(estimate))(jax.random.split(jax.random.key(3), draws)))
    x, g, true = np.asarray(x), np.asarray(g), np.asarray(true["w"]).ravel()
    # Var of estimate [a, b] = sum_i x_ia^2 (|g_i|^2 + s g_ib^2) / (k B^2): the tangents of the examples are
    # independent; s = 1 for normal tangents (E[(g.u)^2 u_b^2] = |g|^2 + 2 g_b^2), s = -1 for random signs
    # (u_b^2 = 1: E[(g.u)^2 u_b^2] = |g|^2), so H - 1 in place of H + 1 in the total
    s = -1 if signs else 1
    g2 = np.sum(g**2, 1)
    variances = np.einsum("ia,ib->ab", x**2, g2[:, None] + s * g**2) / (k * batch**2)
    assert_unbiased(estimates, true, variances.ravel(), draws)
    total = np.sum(np.sum(x**2, 1) * (width + s) * g2) / (k * batch**2)
    assert_mean_near(np.sum((estimates - true) ** 2, 1), total, "total variance")


@pytest.mark.parametrize("shape", [(3, 50), (64,), (1,)])
def test_random_signs_are_fair_independent_and_unpacked_32_to_a_word(shape):
    u = np.asarray(fl.random_signs(jax.random.key(0), shape))
    assert u.shape == shape and u.dtype == np.float32 and set(np.unique(u)) <= {-1.0, 1.0}
    draws = np.asarray(jax.vmap(lambda k: fl.random_signs(k, shape).ravel())(jax.random.split(jax.random.key(1), 4000)))
    # E[u u^T] = I: each entry of the mean of 4,000 products has standard error 1 / sqrt(4000)
    second = draws.T @ draws / len(draws)
    bound = statistics.NormalDist().inv_cdf(1 - 0.0005 / second.size) / np.sqrt(len(draws))
    assert np.max(np.abs(second - np.eye(second.shape[0]))) < bound
    assert np.max(np.abs(draws.mean(0))) < bound  # fair: each bit of a word is a sign of its own


@pytest.mark.slow
@pytest.mark.parametrize("width", [8, 32])
def test_activity_perturbation_of_one_example_has_the_cosine_of_h_not_of_fan_in_times_h(width, x64):
    params, x, y = dense_problem(batch=1, fan_in=20, width=width)
    _, exact = backprop(params, x, y)

    def cos2(estimator, k):
        def one(key):
            est = fl.local_gradients(params, x, y, key, estimator=estimator, num_tangents=k)[1]
            return fl.cosine(est["block0"]["dense"], exact["block0"]["dense"]) ** 2

        return jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(5), 2000))

    # the estimate [x; 1] (g_z . u) u^T has the cosine of (g_z . u) u to g_z: H directions, not (fan_in + 1) H
    for k in (1, 4):
        assert_mean_near(cos2("activity", k), k / (k + width - 1), f"activity, H={width}, k={k}")
    n = (20 + 1) * width
    assert_mean_near(cos2("weight", 1), 1 / n, f"weight, n={n}")


def test_activity_perturbation_divides_the_variance_by_about_the_fan_in(x64):
    fan_in, width = 12, 6
    params, x, y = dense_problem(batch=1, fan_in=fan_in, width=width)
    _, exact = backprop(params, x, y)
    true = ravel_pytree(exact["block0"]["dense"])[0]

    def squared_errors(estimator):
        def one(key):
            est = fl.local_gradients(params, x, y, key, estimator=estimator)[1]
            return jnp.sum((ravel_pytree(est["block0"]["dense"])[0] - true) ** 2)

        return jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(9), 2000))

    # weights and bias together: n = (fan_in + 1) H parameters against H pre-activations, |g|^2 the same
    g2 = float(true @ true)
    assert_mean_near(squared_errors("weight"), ((fan_in + 1) * width + 1) * g2, "weight-perturbed variance")
    assert_mean_near(squared_errors("activity"), (width + 1) * g2, "activity-perturbed variance")


@pytest.mark.parametrize("estimator", ["activity", "weight"])
def test_with_g_local_losses_each_group_is_estimated_without_bias_from_its_own_head(estimator, x64):
    fan_in, width, groups, draws = 5, 8, 4, 3000
    params, x, y = dense_problem(batch=1, fan_in=fan_in, width=width, groups=groups)
    _, exact = backprop(params, x, y)
    t = np.concatenate([np.asarray(exact["block0"]["dense"]["w"]), np.asarray(exact["block0"]["dense"]["b"])[None]])
    estimates = jax.jit(
        jax.vmap(
            lambda key: jnp.concatenate(
                [
                    (d := fl.local_gradients(params, x, y, key, estimator=estimator)[1]["block0"]["dense"])["w"],
                    d["b"][None],
                ]  # fmt: skip
            )
        )
    )(jax.random.split(jax.random.key(4), draws))
    estimates = np.asarray(estimates)  # (draws, fan_in + 1, H): rows are the inputs and the bias
    group_of = np.repeat(np.arange(groups), width // groups)
    if estimator == "activity":
        # [x; 1] (d_j u_j)^T: Var[a, b] = x_a^2 (|g_j|^2 + g_b^2) = x_a^2 |g_j|^2 + t_ab^2, g the z-gradient
        g = t[-1]  # the bias row is the gradient with respect to z
        g2_group = np.array([np.sum(g[group_of == j] ** 2) for j in range(groups)])
        xa = np.append(np.asarray(x[0]), 1.0)
        variances = xa[:, None] ** 2 * g2_group[group_of][None, :] + t**2
        total = np.sum(xa**2) * np.sum((width // groups + 1) * g2_group)
    else:
        # column group j moves with head j's directional derivative: (fan_in + 1) H / G directions each
        t2_group = np.array([np.sum(t[:, group_of == j] ** 2) for j in range(groups)])
        variances = t2_group[group_of][None, :] + t**2
        total = np.sum(((fan_in + 1) * width // groups + 1) * t2_group)
    assert_unbiased(estimates.reshape(draws, -1), t.ravel(), variances.ravel(), draws)
    assert_mean_near(np.sum((estimates - t) ** 2, (1, 2)), total, f"{estimator}-perturbed variance, G={groups}")


def test_local_losses_train_each_block_on_its_own_head_only(x64):
    params = fl.blocked_mlp_init(jax.random.key(0), [6, 5, 4], 3, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(1), (7, 6), jnp.float64)
    y = jnp.arange(7) % 3

    @jax.jit  # one program for every gradient below
    def everything(params):
        return (
            fl.local_gradients(params, x, y, jax.random.key(2), estimator="backprop"),
            fl.local_losses(params, x, y),
            jax.grad(lambda p: fl.local_losses(p, x, y).sum())(params),
            jax.grad(lambda p: fl.local_losses(p, x, y)[0])(params),
            jax.grad(fl.end_to_end_loss)(params, x, y),
            fl.end_to_end_loss(params, x, y),
        )

    (losses, grads), local, lg_bp, first, e2e, e2e_loss = everything(params)
    np.testing.assert_allclose(losses, local, rtol=1e-12)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(lg_bp), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    # block 0 learns from its own loss only: the second loss's gradient does not reach it
    np.testing.assert_allclose(lg_bp["block0"]["dense"]["w"], first["block0"]["dense"]["w"], rtol=1e-12)
    # ... whereas backprop end to end does reach it (and leaves the hidden head alone)
    assert not np.allclose(e2e["block0"]["dense"]["w"], first["block0"]["dense"]["w"])
    np.testing.assert_array_equal(e2e["block0"]["head"]["w"], 0)
    np.testing.assert_allclose(local[-1], e2e_loss, rtol=1e-12)


@pytest.mark.slow
def test_a_guess_gives_the_projection_of_the_gradient_on_it(x64):
    params, loss = mlp_problem([4, 5, 3], batch=4)
    true = jax.jit(jax.grad(loss))(params)
    guessed = jax.jit(lambda params, guess: fl.guessed(loss, params, guess))  # one program, not one per operation
    value, exact = guessed(params, true)
    np.testing.assert_allclose(ravel_pytree(exact)[0], ravel_pytree(true)[0], rtol=1e-10)
    np.testing.assert_allclose(value, loss(params), rtol=1e-12)
    guess = jax.tree.map(lambda t: t + 0.3 * jnp.ones_like(t), true)
    _, projected = guessed(params, guess)
    g, u = ravel_pytree(true)[0], ravel_pytree(guess)[0]
    np.testing.assert_allclose(ravel_pytree(projected)[0], (g @ u) / (u @ u) * u, rtol=1e-10)
    np.testing.assert_allclose(fl.cosine(projected, true), abs(fl.cosine(guess, true)), rtol=1e-10)


def test_bad_arguments_are_refused_in_one_line(x64):
    params, x, y = dense_problem(batch=2, fan_in=3, width=2)
    with pytest.raises(ValueError, match="num_tangents must be >= 1"):
        fl.local_gradients(params, x, y, jax.random.key(0), estimator="activity", num_tangents=0)
    with pytest.raises(ValueError, match="estimator must be"):
        fl.local_gradients(params, x, y, jax.random.key(0), estimator="sideways")
    with pytest.raises(ValueError, match=r"z must be \(batch, features\)"):
        fl.activity_perturbed(lambda z: z, jnp.ones(3), jax.random.key(0))
