"""Every network under every transformation: grad, vjp, jvp, linearize, jacfwd, jacrev, the four
Hessian-vector products and vmap of them, with respect to parameters and to inputs, in float64; the
Flax NNX twins too ("nnx:" names), as pure functions of their ``State``, equal to the Linen networks."""

import chex
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.test_util import check_grads

from jaxdl.functional import mlp_apply, mlp_init
from jaxdl.models import CNN, MLP, VAE, BlobClassifier, Conv3x3, SmallMLP, vae_loss
from jaxdl.models import nnx_models as twins

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)

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

    # jitted: the dozen transformations below transform one traced program instead of tracing the Python
    # loss a dozen times (for the NNX twin's merge, 13 s of the CNN's 22 s before compiling)
    return jax.jit(loss), variables["params"]


def _nnx(model, twin, inputs, loss_of_outputs, train=False):
    """(loss(state, inputs), state) for the NNX twin of the Flax module ``model``, loaded with the Linen
    initialisation ``_flax`` draws: split once, merged inside the loss, a pure function of the ``Param``
    state. Batch norm's running statistics are held fixed, and dropout and sampling draw the keys the
    Linen module draws from ``RNGS``."""
    variables = jax.jit(model.init)(RNGS, inputs)
    variables = jax.tree.map(lambda a: a.astype(jnp.float64), variables)
    graphdef, params, rest = nnx.split(twins.from_linen(twin(nnx.Rngs(0)), variables), nnx.Param, ...)
    keys = {"dropout_key": twins.linen_key("dropout", "Dropout_0", RNGS["dropout"])} if train else {}
    if isinstance(model, VAE):
        keys = {"key": twins.linen_key("sample", None, RNGS["sample"])}

    def loss(params, x):
        net = nnx.merge(graphdef, params, rest, copy=True)  # a fresh copy: its batch-norm updates are dropped
        return loss_of_outputs(net(x, train=train, **keys) if train else net(x, **keys), x)

    return jax.jit(loss), params  # jitted, as in _flax


def _squares(out, x):
    return jnp.mean(jnp.tanh(out) ** 2)


def _vae(out, x):
    return jnp.mean(vae_loss(out, {"inputs": x})[0])


def networks():
    """Each network's (loss(params, inputs), params, inputs), built when first asked for (building the CNN
    compiles its initialisation): a test of one network pays for that one only. Each Flax module's NNX
    twin ("nnx:" and its name) starts from the module's initialisation."""
    key = jax.random.key(7)
    images = jax.random.uniform(key, (8, 4, 4, 3), jnp.float64)  # batch norm over 8 examples: a smooth loss
    gray = jax.random.uniform(key, (3, 6, 6, 1), jnp.float64)
    points = jax.random.normal(key, (5, 2), jnp.float64)
    flat = jax.random.uniform(key, (3, 12), jnp.float64)
    pytree = mlp_init(jax.random.key(3), [4, 6, 3])
    pytree = jax.tree.map(lambda a: a.astype(jnp.float64), pytree)
    flax_modules = {  # name: (Linen module, its twin given nnx.Rngs, inputs, loss of outputs, training pass)
        "BlobClassifier": (BlobClassifier(), lambda r: twins.BlobClassifier(rngs=r), points, _squares, False),
        "MLP": (MLP(hidden=5), lambda r: twins.MLP(48, 5, rngs=r), images, _squares, False),
        "SmallMLP": (SmallMLP(hidden=4), lambda r: twins.SmallMLP(36, 4, rngs=r), gray, _squares, False),
        # The CNN in one batch group (test_models checks that the CPU's two compute what one does), its
        # convolutions by im2col: on a CPU its third runs Winograd's, which is plain JAX (no derivative rule
        # of its own) and checked as a layer below; under second derivatives it made the CNN's compile 1.7x longer.
        "CNN-train": (CNN(drop_rate=0.5, conv="im2col", batch_groups=1),
                      lambda r: twins.CNN(drop_rate=0.5, conv="im2col", batch_groups=1, image_size=4, rngs=r), images,
                      _squares, True),
        "CNN-eval": (CNN(conv="im2col", batch_groups=1),
                     lambda r: twins.CNN(conv="im2col", batch_groups=1, image_size=4, rngs=r), images, _squares, False),
        "VAE": (VAE(latents=2, hidden=5, features=12), lambda r: twins.VAE(2, 5, 12, rngs=r), flat, _vae, False),
        "Conv3x3-stride2": (Conv3x3(4, stride=2), lambda r: twins.Conv3x3(3, 4, 2, rngs=r), images, _squares, False),
        "Conv3x3-winograd": (Conv3x3(4, impl="winograd"), lambda r: twins.Conv3x3(3, 4, 1, "winograd", rngs=r), images,
                             _squares, False),
    }  # fmt: skip

    def linen(model, twin, inputs, loss, train):
        return lambda: (*_flax(model, inputs, loss, train), inputs)

    def nnx_twin(model, twin, inputs, loss, train):
        return lambda: (*_nnx(model, twin, inputs, loss, train), inputs)

    return _Lazy(
        {name: linen(*spec) for name, spec in flax_modules.items()}
        | {"mlp_apply": lambda: (lambda p, x: _squares(mlp_apply(p, x), x), pytree, flat[:, :4])}
        | {f"nnx:{name}": nnx_twin(*spec) for name, spec in flax_modules.items()}
    )


class _Lazy(dict):
    """A dict of builders whose values are built on first access, in float64; and each network's
    transformations (:func:`_transformations`), computed once for the tests that read them."""

    def transformations(self, name):
        results = self.setdefault("_results", {})
        if name not in results:
            loss, params, inputs = self[name]
            results[name] = jax.jit(_transformations, static_argnums=0)(loss, params, inputs, *_tangents(params))
        return results[name]

    def __getitem__(self, name):
        value = super().__getitem__(name)
        if callable(value) and not isinstance(value, tuple):
            with jax.enable_x64(True):
                value = value()
            self[name] = value
        return value


FLAX_MODULES = [
    "BlobClassifier",
    "MLP",
    "SmallMLP",
    "CNN-train",
    "CNN-eval",
    "VAE",
    "Conv3x3-stride2",
    "Conv3x3-winograd",
]
# slow: the CNN (its second-order programs compile for tens of seconds) and the VAE (over the slow mark)
NAMES = [
    pytest.param(name, marks=[pytest.mark.slow] if "CNN" in name or "VAE" in name else [])
    for name in [*FLAX_MODULES, "mlp_apply", *(f"nnx:{name}" for name in FLAX_MODULES)]
]


@pytest.fixture(scope="module")
def nets():
    with jax.enable_x64(True):
        yield networks()


@pytest.mark.slow
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


def _tangents(params):
    """A direction v in parameter space, and three multiples of it for vmap."""
    v = jax.tree.map(lambda a: jax.random.normal(jax.random.key(1), a.shape, a.dtype), params)
    return v, jax.tree.map(lambda a: jnp.stack([a, 2 * a, -a]), v)


@pytest.mark.parametrize("name", NAMES)
def test_every_transformation_agrees(name, nets, x64):
    loss, params, inputs = nets[name]
    v, vs = _tangents(params)
    r = nets.transformations(name)
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


@pytest.mark.parametrize("name", [p for p in NAMES if p.values[0].startswith("nnx:")])
def test_the_twins_transformations_equal_the_linen_networks(name, nets, x64):
    """From one initialisation, every transformation of the NNX twin gives the Linen network's values."""
    theirs, ours = nets.transformations(name.removeprefix("nnx:")), nets.transformations(name)
    ours = {k: nnx.to_pure_dict(r) if isinstance(r, nnx.State) else r for k, r in ours.items()}
    chex.assert_trees_all_equal(ours, theirs)


@pytest.mark.parametrize("name", ["BlobClassifier", "nnx:BlobClassifier"])
def test_fwd_over_fwd_gives_the_full_hvp_on_a_small_network(name, nets, x64):
    """On the 21-parameter blob classifier, forward mode alone builds H v from one pass per parameter."""
    loss, params, inputs = nets[name]
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    v = jax.random.normal(jax.random.key(2), flat.shape, flat.dtype)
    hessian = jax.jacfwd(jax.jacfwd(lambda q: loss(unravel(q), inputs)))(flat)
    expected = jax.jvp(jax.grad(lambda q: loss(unravel(q), inputs)), (flat,), (v,))[1]
    np.testing.assert_allclose(hessian @ v, expected, rtol=1e-10, atol=1e-12)
