"""Pure pytree SGD and momentum: equal to optax step for step, on scalars, tuples and dicts."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl.functional import optim

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)

PARAMS = [
    jnp.float32(1.5),
    (jnp.ones(3), (jnp.arange(2.0), jnp.float32(-1.0))),
    {"w": jnp.ones((2, 2)), "b": {"inner": jnp.zeros(2)}},
]


def loss(params):
    return sum(jnp.sum(jnp.sin(leaf) + 0.5 * leaf**2) for leaf in jax.tree.leaves(params))


@pytest.mark.parametrize("params", PARAMS, ids=["scalar", "nested_tuple", "dict"])
@pytest.mark.parametrize(
    "ours, theirs",
    [(optim.sgd(0.1), optax.sgd(0.1)), (optim.momentum(0.1, 0.9), optax.sgd(0.1, momentum=0.9))],
    ids=["sgd", "momentum"],
)
def test_pure_updates_equal_optax(params, ours, theirs):
    p1, p2 = params, params
    s1, s2 = ours.init(p1), theirs.init(p2)
    for _ in range(5):
        u1, s1 = ours.update(jax.grad(loss)(p1), s1, p1)
        u2, s2 = theirs.update(jax.grad(loss)(p2), s2, p2)
        p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
    chex.assert_trees_all_close(p1, p2, rtol=1e-6)


def test_seed_003_update_and_convergence_on_a_quadratic():
    params = {"x": jnp.array([3.0, -2.0])}
    for _ in range(200):
        updates, _ = optim.sgd(0.1).update(jax.grad(lambda p: jnp.sum(p["x"] ** 2))(params), optim.SGDState())
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params["x"], 0.0, atol=1e-6)
