"""Tutorial 0's blob classifier: the tutorial's log, the default run, the model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.data import make_blobs_dataset
from jaxdl.experiments.blobs import Config, check_tutorial_log, initial_params, make_trainer
from jaxdl.models.blobs import BlobClassifier, tutorial_log, tutorial_params


def _train(config):
    x, y = make_blobs_dataset(config.n_samples, config.cluster_std, config.data_seed)
    batch = (jnp.asarray(x), jnp.asarray(y))
    model, loss_fn, train = make_trainer(config)
    final, history = jax.jit(train)(initial_params(config, model, batch[0])[0], batch)
    return final, {k: np.asarray(v) for k, v in history.items()}, loss_fn, batch


def _records(history):
    return [
        {"epoch": i + 1, "loss": float(history["loss"][i]), "accuracy": float(history["accuracy"][i])}
        for i in range(len(history["loss"]))
    ]


def test_tutorial_init_reproduces_the_tutorial_log():
    _, history, _, _ = _train(Config(init="tutorial"))
    assert check_tutorial_log(_records(history)) == []
    # The first lines, spelled out as the tutorial prints them.
    lines = [
        "Epoch {} loss {:.4f} acc {:.2f}%".format(i, history["loss"][i - 1], 100 * history["accuracy"][i - 1])
        for i in (100, 200, 300)
    ]
    assert lines == [
        "Epoch 100 loss 0.6060 acc 62.00%",
        "Epoch 200 loss 0.4755 acc 69.70%",
        "Epoch 300 loss 0.3889 acc 78.20%",
    ]


def test_tutorial_log_resource_holds_the_tutorials_numbers():
    log = tutorial_log()
    assert [r["epoch"] for r in log] == list(range(100, 1001, 100))
    assert (log[0]["loss"], log[0]["acc"], log[-1]["loss"], log[-1]["acc"]) == (0.606, 62.0, 0.2125, 92.9)


def test_default_seed_reaches_92_percent():
    final, _, loss_fn, batch = _train(Config())
    _, metrics = loss_fn(final, batch)
    assert float(metrics["accuracy"]) >= 0.92


def test_model_has_the_tutorials_21_parameters_in_the_tutorials_shapes():
    model = BlobClassifier()
    params = model.init(jax.random.key(0), jnp.ones((1, 2)))["params"]
    shapes = jax.tree.map(lambda a: a.shape, params)
    assert shapes == {"hidden": {"kernel": (2, 5), "bias": (5,)}, "output": {"kernel": (5, 1), "bias": (1,)}}
    assert jax.tree.map(lambda a: a.shape, tutorial_params()) == shapes
    assert sum(a.size for a in jax.tree.leaves(params)) == 21
    assert model.apply({"params": params}, jnp.ones((7, 2))).shape == (7,)


@pytest.mark.parametrize("init_scheme", ["torch", "glorot"])
def test_model_draws_and_computes_what_two_flax_dense_layers_do(init_scheme):
    # ColumnDense lays the points out as columns for speed; nothing else may differ.
    import flax.linen as nn

    from jaxdl.functional.init import kernel_init, torch_linear_bias, zeros

    class Reference(nn.Module):
        @nn.compact
        def __call__(self, x):
            def dense(features, fan_in, name):
                bias = torch_linear_bias(fan_in) if init_scheme == "torch" else zeros
                return nn.Dense(features, kernel_init=kernel_init(init_scheme), bias_init=bias, name=name)

            return dense(1, 5, "output")(dense(5, 2, "hidden")(x))[..., 0]

    model = BlobClassifier(init_scheme=init_scheme)
    x = jax.random.normal(jax.random.key(1), (3, 11, 2))
    params = model.init(jax.random.key(7), x)["params"]
    reference = Reference().init(jax.random.key(7), x)["params"]
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), params, reference))
    np.testing.assert_allclose(model.apply({"params": params}, x), Reference().apply({"params": params}, x), rtol=1e-6)


def test_torch_init_bounds():
    params = BlobClassifier().init(jax.random.key(3), jnp.ones((1, 2)))["params"]
    assert float(jnp.max(jnp.abs(params["hidden"]["kernel"]))) <= 1 / np.sqrt(2)
    assert float(jnp.max(jnp.abs(params["output"]["bias"]))) <= 1 / np.sqrt(5)


def test_blobs_data_matches_the_tutorial():
    x, y = make_blobs_dataset()
    assert x.shape == (1000, 2) and x.dtype == np.float32
    assert set(np.unique(y)) == {0, 1} and int(y.sum()) == 500


@pytest.mark.parametrize("n_samples, std, seed", [(1000, 3.0, 1), (7, 0.5, 0), (1, 1.0, 42)])
def test_blobs_are_scikit_learns_points_drawn_without_it(n_samples, std, seed):
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=n_samples, n_features=2, centers=2, cluster_std=std, random_state=seed)
    ours = make_blobs_dataset(n_samples, std, seed)
    np.testing.assert_array_equal(ours[0], x.astype(np.float32))
    np.testing.assert_array_equal(ours[1], y)


@pytest.mark.parametrize("init", ["glorot", "he"])
def test_other_initialisers_train(init):
    final, history, loss_fn, batch = _train(Config(init=init, epochs=200))
    assert history["loss"][-1] < history["loss"][0]
