# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The CNN in Flax Linen and in Flax NNX, side by side
#
# jaxdl's networks are Flax **Linen** modules; Flax's own documentation now
# starts new users with **NNX**. This notebook is the bridge: tutorial 1's CNN
# (four 3x3 convolutions with batch norm, dropout, 591,914 parameters) in both
# APIs, `nnx.split` turning the NNX object back into a pure function over a
# `State` pytree, a few training steps with the same jitted Optax step in each
# API, and the two runs compared number for number.
#
# It needs CIFAR-10 (set `JAXDL_DATA_DIR`, as for notebook 02). `JAXDL_QUICK=1`
# trains for a few steps on a few hundred images.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx

import jaxdl
from jaxdl import plots
from jaxdl.models import CNN, nnx_models

plots.save_shown_figures(globals().get("__file__"))  # run as a script: figures saved beside it

QUICK = os.environ.get("JAXDL_QUICK") == "1"
STEPS, BATCH = (12, 32) if QUICK else (300, 64)


def sample(split, count, seed):
    """``count`` images of ``split`` drawn at random (an image folder lists them class by class),
    normalised to [-1, 1] as the tutorial's ``Normalize((0.5,) * 3, (0.5,) * 3)``, and their labels."""
    dataset = jaxdl.load("cifar10", split)
    chosen = np.random.default_rng(seed).permutation(len(dataset.labels))[:count]
    return (np.asarray(dataset.inputs[chosen], np.float32) / 255 - 0.5) / 0.5, np.asarray(dataset.labels[chosen])


images, labels = sample("train", STEPS * BATCH, seed=0)
batches = [(images[i : i + BATCH], labels[i : i + BATCH]) for i in range(0, len(images) - BATCH + 1, BATCH)]
print(f"{len(batches)} batches of {BATCH} images {images.shape[1:]}, classes of the first: {batches[0][1][:10]}")

# %% [markdown]
# ## One network, two APIs
# A Linen module is a *description*: `init` draws the variables (a nested dict
# of arrays) and `apply(variables, x)` is a pure function of them. An NNX module
# is a Python *object* that owns its arrays, as a PyTorch `nn.Module` does:
# constructing it draws them. jaxdl's twin, `nnx_models.CNN`, has the Linen
# module's layers under the same names, so the two hold the same arrays in the
# same tree. Here the twin draws the initialisation and `to_linen` hands the
# same arrays to Linen; `from_linen` goes the other way (the engine's
# `--set api=nnx` starts the twin from Linen's `init`). Either way, both start
# from one set of numbers.

# %%
# conv="xla": XLA's own convolution, the quickest to compile; `conv` picks only how the same
# convolution is computed (notebook 02 uses the default, an im2col product on a CPU)
linen_cnn = CNN(conv="xla")  # dropout 0.5, batch norm after every layer but the last
twin = nnx_models.CNN(conv="xla", rngs=nnx.Rngs(0))  # the NNX object, its arrays drawn
variables = nnx_models.to_linen(twin)  # {"params": ..., "batch_stats": ...}, Linen's variables

x0 = jnp.asarray(batches[0][0])
linen_shapes = jax.eval_shape(linen_cnn.init, {"params": jax.random.key(0), "dropout": jax.random.key(1)}, x0)
assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, linen_shapes)  # the tree Linen's init draws
print("Linen variables:", list(variables), "| conv1:", jax.tree.map(jnp.shape, variables["params"]["conv1"]))
print("NNX object:     ", type(twin).__name__, "| conv1.kernel:", twin.conv1.kernel.shape)

# %% [markdown]
# ## `nnx.split`: the pure function over the `State` pytree
# `nnx.split(model, nnx.Param, nnx.BatchStat, ...)` takes the object apart
# into a static `GraphDef` (the structure, hashable, no arrays) and `State`
# pytrees: the parameters, the batch-norm running statistics, and the rest
# (the dropout stream's key and counter). `nnx.merge` puts an object back
# together. Merged *inside* a jitted function, the model is again a pure
# function of arrays, which is what `jax.grad`, `jax.jit` and `jax.vmap` need;
# this is how jaxdl's engine trains a twin (`--set api=nnx`).

# %%
graphdef, params, stats, rest = nnx.split(twin, nnx.Param, nnx.BatchStat, ...)
print("State leaves:", len(jax.tree.leaves(params)), "parameter arrays,", len(jax.tree.leaves(stats)), "statistics")
print("parameters:", sum(p.size for p in jax.tree.leaves(params)))
# the same tree as Linen's, leaf for leaf
assert jax.tree.map(jnp.shape, nnx.to_pure_dict(params)) == jax.tree.map(jnp.shape, variables["params"])


@jax.jit
def nnx_logits(params, stats, rest, x):  # a pure function of the State
    return nnx.merge(graphdef, params, stats, rest)(x)  # evaluation mode: running statistics, no dropout


linen_out = jax.jit(linen_cnn.apply)(variables, x0)
nnx_out = nnx_logits(params, stats, rest, x0)
print("largest difference of the logits:", float(jnp.max(jnp.abs(linen_out - nnx_out))))
np.testing.assert_array_equal(nnx_out, linen_out)

# %% [markdown]
# ## The same training step in each API
# Both steps are `jax.jit` of a pure function: the state in, the new state
# out, an Optax Adam update in between. Training mode needs two things beyond
# the parameters: the batch statistics come back updated, and dropout draws a
# mask. Linen returns the statistics through `mutable=["batch_stats"]`; the NNX
# twin updates its `BatchStat` variables in place, and `nnx.state(model,
# nnx.BatchStat)` reads them out of the merged model. For the masks to match,
# the twin gets the very key the Linen module derives for its `Dropout` layer
# (`nnx_models.linen_key`); left to itself it would draw from its own `Rngs`.

# %%
tx = optax.adam(1e-3)


def cross_entropy(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@jax.jit
def linen_step(params, batch_stats, opt_state, x, y, key):
    def loss(params):
        logits, updates = linen_cnn.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                          rngs={"dropout": key}, mutable=["batch_stats"])  # fmt: skip
        return cross_entropy(logits, y), updates["batch_stats"]

    (value, batch_stats), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, value


@jax.jit
def nnx_step(params, stats, opt_state, x, y, key):
    def loss(params):
        model = nnx.merge(graphdef, params, stats, rest, copy=True)
        logits = model(x, train=True, dropout_key=nnx_models.linen_key("dropout", "Dropout_0", key))
        return cross_entropy(logits, y), nnx.state(model, nnx.BatchStat)

    (value, stats), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state, value


linen_state = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))
nnx_state = (params, stats, tx.init(params))
linen_losses, nnx_losses = [], []
for step, (x, y) in enumerate(batches):
    key = jax.random.fold_in(jax.random.key(2), step)  # one dropout key per step, for both
    *linen_state, value = linen_step(*linen_state, x, y, key)
    linen_losses.append(float(value))
    *nnx_state, value = nnx_step(*nnx_state, x, y, key)
    nnx_losses.append(float(value))
print(f"after {len(batches)} steps: Linen loss {linen_losses[-1]:.6f}, NNX loss {nnx_losses[-1]:.6f}")

plt.plot(linen_losses, lw=3, alpha=0.5, label="Linen")
plt.plot(nnx_losses, "k--", label="NNX twin")
plt.xlabel("step")
plt.ylabel("training loss (batch)")
plt.title("one CNN, two APIs: the same losses step by step")
plt.legend()
plt.show()

# %% [markdown]
# ## The equality
# The losses and the trained parameters agree bit for bit: both APIs trace
# the same operations in the same order, so XLA compiles the same arithmetic.
# The running batch-norm statistics are checked to within a float32 rounding
# step only: XLA may fuse `momentum * old + (1 - momentum) * new` into one
# multiply-add in one program and not in the other (`tests/test_nnx.py` has
# seen it). They feed only evaluation, where every test image below gets the
# same prediction from both.

# %%
np.testing.assert_array_equal(nnx_losses, linen_losses)
trained_twin = nnx.merge(graphdef, *nnx_state[:2], rest)
trained = nnx_models.to_linen(trained_twin)  # back to Linen's variables
for a, b in zip(jax.tree.leaves(trained["params"]), jax.tree.leaves(linen_state[0]), strict=True):
    np.testing.assert_array_equal(a, b)
for a, b in zip(jax.tree.leaves(trained["batch_stats"]), jax.tree.leaves(linen_state[1]), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

x_test, y_test = sample("test", 16 * BATCH, seed=1)
linen_eval = jax.jit(linen_cnn.apply)  # compiled above for batches of BATCH images, as nnx_logits was
linen_predictions = np.concatenate([
    np.argmax(linen_eval({"params": linen_state[0], "batch_stats": linen_state[1]}, x), -1)
    for x in np.split(x_test, 16)
])  # fmt: skip
nnx_predictions = np.concatenate([np.argmax(nnx_logits(*nnx_state[:2], rest, x), -1) for x in np.split(x_test, 16)])
print(f"test accuracy on {len(y_test)} images: Linen {np.mean(linen_predictions == y_test):.2%}, "
      f"NNX {np.mean(nnx_predictions == y_test):.2%}")  # fmt: skip
np.testing.assert_array_equal(nnx_predictions, linen_predictions)  # the same prediction for every image

# %% [markdown]
# ## Which API to choose
# - **Linen** when the function is the point: `apply(variables, x)` *is* the
#   pure function that `jax.grad`, `jax.vmap` (64 initialisations at once, in
#   notebook 01) and `jax.jvp` transform, with nothing to take apart first.
#   jaxdl's engine, its tests and its derivations are written this way.
# - **NNX** when your next stop is Flax's own examples or the JAX AI stack's
#   tutorials, which are written in it, or when you think in PyTorch's terms: a
#   model object that owns its weights and updates its statistics in place.
#   `nnx.jit`, `nnx.grad` and `nnx.Optimizer` accept the objects directly;
#   `nnx.split` / `nnx.merge`, as above, give back the pure-function view
#   whenever you need plain JAX.
#
# The choice does not change the numbers: from one initialisation the two
# train alike, and `jaxdl run cifar10-cnn --set api=nnx` trains the twin with
# the same engine and prints the Linen run's figures.
