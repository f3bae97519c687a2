"""The Flax NNX twins compute what the Linen modules compute: from one initialisation (Linen's, loaded
with from_linen), the same outputs, gradients and batch-norm updates, in training and in evaluation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxdl.models import CNN, MLP, VAE, SmallMLP
from jaxdl.models import nnx_models as twins

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)

KEY = jax.random.key(0)


def _linen_and_twin(linen, twin, x, **call):
    variables = jax.jit(linen.init)({"params": KEY, "dropout": KEY, "sample": KEY}, x, **call)
    return variables, twins.from_linen(twin, variables)


def _loss(outputs):
    return sum(jnp.sum(jnp.tanh(o)) for o in jax.tree.leaves(outputs))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["MLP", "SmallMLP"])
def test_mlps_compute_what_the_linen_ones_compute(name):
    x = jax.random.uniform(KEY, (6, 32, 32, 3) if name == "MLP" else (6, 28, 28, 1))
    linen = {"MLP": MLP(), "SmallMLP": SmallMLP()}[name]
    twin = {"MLP": twins.MLP, "SmallMLP": twins.SmallMLP}[name](rngs=nnx.Rngs(1))
    variables, twin = _linen_and_twin(linen, twin, x)
    graphdef, params, rest = nnx.split(twin, nnx.Param, ...)
    np.testing.assert_array_equal(twin(x), linen.apply(variables, x))
    linen_grad = jax.grad(lambda p: _loss(linen.apply({"params": p}, x)))(variables["params"])
    twin_grad = jax.grad(lambda p: _loss(nnx.merge(graphdef, p, rest)(x)))(params)
    chex.assert_trees_all_equal(nnx.to_pure_dict(twin_grad), linen_grad)
    chex.assert_trees_all_equal(twins.to_linen(twin), jax.device_get(variables))  # and back


@pytest.mark.slow
@pytest.mark.parametrize("conv", ["auto", "im2col", "xla"])
def test_the_cnn_computes_what_the_linen_one_computes_with_its_batch_norm_updates(conv):
    # dropout off in training: the two APIs draw their masks from their own random streams
    x = jax.random.uniform(KEY, (5, 32, 32, 3))
    linen = CNN(drop_rate=0.0, conv=conv)
    variables, twin = _linen_and_twin(linen, twins.CNN(drop_rate=0.0, conv=conv, rngs=nnx.Rngs(1)), x)
    graphdef, params, stats, rest = nnx.split(twin, nnx.Param, nnx.BatchStat, ...)  # rest: dropout's random stream

    @jax.jit
    def linen_train(params):
        out, updates = linen.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, train=True,
                                   mutable=["batch_stats"])  # fmt: skip
        return _loss(out), (out, updates["batch_stats"])

    @jax.jit
    def twin_train(params, stats, rest):  # a pure function of the state: merge inside, split the updates out
        model = nnx.merge(graphdef, params, stats, rest)
        out = model(x, train=True)
        return _loss(out), (out, nnx.state(model, nnx.BatchStat))

    (_, (linen_out, linen_stats)), linen_grad = jax.value_and_grad(linen_train, has_aux=True)(variables["params"])
    (_, (twin_out, twin_stats)), twin_grad = jax.value_and_grad(twin_train, has_aux=True)(params, stats, rest)
    np.testing.assert_array_equal(twin_out, linen_out)
    chex.assert_trees_all_equal(nnx.to_pure_dict(twin_grad), linen_grad)
    # the running averages to a float32 ulp: XLA fuses m * old + (1 - m) * new into one multiply-add in one
    # program and not in the other (seen: 1 of 64 values, 6e-8 apart)
    chex.assert_trees_all_close(nnx.to_pure_dict(twin_stats), linen_stats, rtol=2e-7, atol=0)
    # evaluation: the running statistics, no dropout
    twin_eval = jax.jit(lambda params, stats, rest, x: nnx.merge(graphdef, params, stats, rest)(x))
    np.testing.assert_array_equal(twin_eval(params, stats, rest, x), jax.jit(linen.apply)(variables, x))
    assert sum(p.size for p in jax.tree.leaves(params)) == 591_914


@pytest.mark.slow
def test_the_vae_computes_what_the_linen_one_computes_from_the_same_noise():
    x = jax.random.uniform(KEY, (4, 784))
    linen = VAE(latents=2, hidden=16)
    variables, twin = _linen_and_twin(linen, twins.VAE(latents=2, hidden=16, rngs=nnx.Rngs(1)), x)
    noise = jax.random.key(5)
    linen_out = linen.apply(variables, x, rngs={"sample": noise})
    twin_out = twin(x, key=twins.linen_key("sample", None, noise))  # the noise Linen's module drew, given to the twin
    chex.assert_trees_all_equal(twin_out, linen_out)


def test_from_linen_refuses_another_network_in_one_line():
    variables = MLP(hidden=7).init(KEY, jnp.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match="the Linen params do not fit this MLP"):
        twins.from_linen(twins.MLP(hidden=8, rngs=nnx.Rngs(0)), variables)


def test_the_blob_classifier_computes_what_the_linen_one_computes_from_the_tutorials_weights():
    from jaxdl.models import BlobClassifier, tutorial_params

    x = jax.random.normal(KEY, (7, 2))
    variables = {"params": tutorial_params()}  # the tutorial's PyTorch initialisation, seed 2024
    twin = twins.from_linen(twins.BlobClassifier(rngs=nnx.Rngs(1)), variables)
    graphdef, params = nnx.split(twin)
    linen_loss = jax.jit(lambda p: _loss(BlobClassifier().apply({"params": p}, x)))
    twin_loss = jax.jit(lambda p: _loss(nnx.merge(graphdef, p)(x)))
    np.testing.assert_array_equal(twin(x), BlobClassifier().apply(variables, x))
    assert twin(x).shape == (7,)
    chex.assert_trees_all_equal(
        nnx.to_pure_dict(jax.grad(twin_loss)(params)), jax.grad(linen_loss)(variables["params"])
    )
    chex.assert_trees_all_equal(twins.to_linen(twin), variables)
    # the twin's own initialisation draws the tree the Linen module draws, PyTorch's bounds included
    fresh = twins.to_linen(twins.BlobClassifier(rngs=nnx.Rngs(0)))
    assert jax.tree.map(jnp.shape, fresh) == jax.tree.map(jnp.shape, variables)
    assert float(jnp.max(jnp.abs(fresh["params"]["output"]["kernel"]))) <= 1 / np.sqrt(5)
    assert not jnp.any(
        twins.to_linen(twins.BlobClassifier(init_scheme="he", rngs=nnx.Rngs(0)))["params"]["hidden"]["bias"]
    )
