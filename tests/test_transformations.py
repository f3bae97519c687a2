"""Every network under every transformation: grad, vjp, jvp, linearize, jacfwd, jacrev, the four
Hessian-vector products and vmap of them, with respect to parameters and to inputs, in float64."""

import chex
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxdl.functional import mlp_apply, mlp_init
from jaxdl.models import CNN, MLP, VAE, BlobClassifier, Conv3x3, SmallMLP, vae_loss

RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1), "sample": jax.random.key(2)}


def _flax(model, inputs, loss_of_outputs, train=False):
    """(loss(params, inputs), params) for a Flax module; batch norm's statistics and dropout keys fixed."""
    variables = jax.jit(model.init)(RNGS, inputs)
    variables = jax.tree.map(lambda a: a.astype(jnp.float64), variables)
    rest = {k: v for k, v in variables.items() if k != "params"}

    def loss(params, x):
        if train and "batch_stats" in rest:  # batch statistics of this batch, as in training
            out, _ = model.apply({"params": params, **rest}, x, train=True, rngs=RNGS, mutable=["batch_stats"])
        else:
            out = model.apply({"params": params, **rest}, x, **({"train": train} if train else {}), rngs=RNGS)
        return loss_of_outputs(out, x)

    return loss, variables["params"]


def _squares(out, x):
    return jnp.mean(jnp.tanh(out) ** 2)


def _vae(out, x):
    return jnp.mean(vae_loss(out, {"inputs": x})[0])


def networks():
    """Each network's (loss(params, inputs), params, inputs), built when first asked for (building the CNN
    compiles its initialisation): a test of one network pays for that one only."""
    key = jax.random.key(7)
    images = jax.random.uniform(key, (8, 4, 4, 3), jnp.float64)  # batch norm over 8 examples: a smooth loss
    gray = jax.random.uniform(key, (3, 6, 6, 1), jnp.float64)
    points = jax.random.normal(key, (5, 2), jnp.float64)
    flat = jax.random.uniform(key, (3, 12), jnp.float64)
    pytree = mlp_init(jax.random.key(3), [4, 6, 3])
    pytree = jax.tree.map(lambda a: a.astype(jnp.float64), pytree)
    return _Lazy(
        {
            "BlobClassifier": lambda: (*_flax(BlobClassifier(), points, _squares), points),
            "MLP": lambda: (*_flax(MLP(hidden=5), images, _squares), images),
            "SmallMLP": lambda: (*_flax(SmallMLP(hidden=4), gray, _squares), gray),
            "CNN-train": lambda: (*_flax(CNN(drop_rate=0.5, batch_groups=1), images, _squares, train=True), images),
            # evaluation in one batch group (the training pass above has the CPU's two): the groups only split and
            # join the batch there, and test_models checks that two groups compute what one does
            "CNN-eval": lambda: (*_flax(CNN(batch_groups=1), images, _squares), images),
            "VAE": lambda: (*_flax(VAE(latents=2, hidden=5, features=12), flat, _vae), flat),
            "Conv3x3-stride2": lambda: (*_flax(Conv3x3(4, stride=2), images, _squares), images),
            "mlp_apply": lambda: (lambda p, x: _squares(mlp_apply(p, x), x), pytree, flat[:, :4]),
        }
    )


class _Lazy(dict):
    """A dict of builders whose values are built on first access, in float64."""

    def __getitem__(self, name):
        value = super().__getitem__(name)
        if callable(value) and not isinstance(value, tuple):
            with jax.enable_x64(True):
                value = value()
            self[name] = value
        return value


NAMES = [
    pytest.param(name, marks=[pytest.mark.slow] if name.startswith("CNN") else [])
    for name in ["BlobClassifier", "MLP", "SmallMLP", "CNN-train", "CNN-eval", "VAE", "Conv3x3-stride2", "mlp_apply"]
]


@pytest.fixture(scope="module")
def nets():
    with jax.enable_x64(True):
        yield networks()


@pytest.mark.parametrize("name", NAMES)
def test_check_grads_to_order_two_in_both_modes(name, nets, x64):
    loss, params, inputs = nets[name]
    # The CNN's thousands of leaky-ReLU units put kinks within a finite difference's reach, and a
    # difference of the derivative across one is off by the jump over eps. A step of 1e-9 (float64
    # rounding still far below the tolerance) crosses none.
    eps = 1e-9 if name.startswith("CNN") else 1e-6
    check_grads(jax.jit(loss), (params, inputs), order=2, modes=("fwd", "rev"), eps=eps)


def _transformations(loss, params, inputs, v, vs):
    """Every transformation at once (one compiled program): what the test compares."""
    f = lambda p: loss(p, inputs)  # noqa: E731
    grad = jax.grad(f)(params)
    fwd_over_rev = jax.jvp(jax.grad(f), (params,), (v,))[1]
    return {
        "grad": grad,
        "jvp": jax.jvp(f, (params,), (v,))[1],
        "linearize": jax.linearize(f, params)[1](v),
        "vjp": jax.vjp(f, params)[1](jnp.ones(()))[0],
        "jacfwd_inputs": jax.jacfwd(loss, 1)(params, inputs),
        "jacrev_inputs": jax.jacrev(loss, 1)(params, inputs),
        "fwd_over_rev": fwd_over_rev,
        "rev_over_fwd": jax.grad(lambda p: jax.jvp(f, (p,), (v,))[1])(params),
        "rev_over_rev": jax.grad(lambda p: _vdot(jax.grad(f)(p), v))(params),
        # forward mode alone gives v' H v in one pass (H v itself would take one pass per parameter)
        "fwd_over_fwd": jax.jvp(lambda p: jax.jvp(f, (p,), (v,))[1], (params,), (v,))[1],
        "vmap_jvp": jax.vmap(lambda t: jax.jvp(f, (params,), (t,))[1])(vs),
        "vmap_hvp": jax.vmap(lambda t: jax.jvp(jax.grad(f), (params,), (t,))[1])(vs),
    }


def _vdot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_every_transformation_agrees(name, nets, x64):
    loss, params, inputs = nets[name]
    v = jax.tree.map(lambda a: jax.random.normal(jax.random.key(1), a.shape, a.dtype), params)
    vs = jax.tree.map(lambda a: jnp.stack([a, 2 * a, -a]), v)
    r = jax.jit(_transformations, static_argnums=0)(loss, params, inputs, v, vs)
    dot = _vdot(r["grad"], v)
    # forward mode: one jvp along v is the directional derivative grad . v, reverse mode's gradient dotted with v
    np.testing.assert_allclose(r["jvp"], dot, rtol=1e-10)
    np.testing.assert_allclose(r["linearize"], dot, rtol=1e-10)
    chex.assert_trees_all_close(r["vjp"], r["grad"], rtol=1e-10)
    chex.assert_trees_all_close(r["jacfwd_inputs"], r["jacrev_inputs"], rtol=1e-9, atol=1e-12)
    # Hessian-vector products in all four orders
    chex.assert_trees_all_close(r["rev_over_fwd"], r["fwd_over_rev"], rtol=1e-8, atol=1e-10)
    chex.assert_trees_all_close(r["rev_over_rev"], r["fwd_over_rev"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(r["fwd_over_fwd"], _vdot(r["fwd_over_rev"], v), rtol=1e-8)
    # vmap over tangents: three at once equal three one at a time
    np.testing.assert_allclose(r["vmap_jvp"], [dot, 2 * dot, -dot], rtol=1e-10)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[1], r["vmap_hvp"]),
                                jax.tree.map(lambda a: 2 * a, r["fwd_over_rev"]), rtol=1e-8, atol=1e-10)  # fmt: skip


def test_fwd_over_fwd_gives_the_full_hvp_on_a_small_network(nets, x64):
    """On the 21-parameter blob classifier, forward mode alone builds H v from one pass per parameter."""
    loss, params, inputs = nets["BlobClassifier"]
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    v = jax.random.normal(jax.random.key(2), flat.shape, flat.dtype)
    hessian = jax.jacfwd(jax.jacfwd(lambda q: loss(unravel(q), inputs)))(flat)
    expected = jax.jvp(jax.grad(lambda q: loss(unravel(q), inputs)), (flat,), (v,))[1]
    np.testing.assert_allclose(hessian @ v, expected, rtol=1e-10, atol=1e-12)
