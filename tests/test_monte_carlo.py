"""Monte Carlo estimators: unbiased means (statistical tests with fixed keys) and the experiment."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl import monte_carlo as mc

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)


def _many(estimator, n=2000, seed=0):
    return np.asarray(jax.jit(jax.vmap(estimator))(jax.random.split(jax.random.key(seed), n)), np.float64)


def _z(values, truth):
    return (values.mean() - truth) / (values.std(ddof=1) / math.sqrt(len(values)))


def test_expectation_estimator_is_unbiased_and_its_spread_shrinks_like_one_over_sqrt_s():
    truth = math.cos(0.3) * math.exp(-0.5 * 0.8**2)
    sampler = mc.gaussian_sampler(0.3, 0.8)
    small = _many(lambda k: mc.mc_estimate(k, jnp.cos, sampler, 10))
    large = _many(lambda k: mc.mc_estimate(k, jnp.cos, sampler, 1000))
    assert abs(_z(small, truth)) < 4 and abs(_z(large, truth)) < 4
    assert small.std() / large.std() == pytest.approx(10.0, rel=0.15)


@pytest.mark.parametrize("name", ["score", "baseline", "pathwise"])
def test_gradient_estimators_are_unbiased(name):
    theta, sigma = jnp.float32(0.7), 1.2
    exact = -math.sin(0.7) * math.exp(-0.5 * sigma**2)

    def f(x):
        return 2.0 + jnp.cos(x)

    estimator = {
        "score": lambda k: mc.score_function_gradient(k, f, theta, sigma, 50),
        "baseline": lambda k: mc.score_function_gradient(k, f, theta, sigma, 50, baseline=True),
        "pathwise": lambda k: mc.pathwise_gradient(k, f, theta, sigma, 50),
    }[name]
    assert abs(_z(_many(estimator, seed=1), exact)) < 4
