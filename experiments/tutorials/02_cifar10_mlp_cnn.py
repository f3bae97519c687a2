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
# # An MLP and a CNN on CIFAR-10, in JAX
#
# This notebook follows tutorial 1 ("Deep Learning Basics"): an MLP on CIFAR-10
# (the tutorial: 49.96% test accuracy after 5 epochs), then a CNN with batch
# norm and dropout (75.52%), and then the same networks on a folder of your
# own images. It uses jaxdl's engine: a `Task` ties a Flax module to its loss
# and preprocessing, `fit` trains it in compiled chunks of steps.
#
# It needs CIFAR-10: set `JAXDL_DATA_DIR` to a folder holding `cifar10-jpg.tar.gz`
# (or a `cifar10/` image folder), or let TFDS download it. `JAXDL_QUICK=1` trains
# on a few thousand images for one epoch.

# %%
import os
import tempfile

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxdl
from jaxdl import plots
from jaxdl.experiments.image_classifier import image_task, misclassified
from jaxdl.models import count_params
from jaxdl.train.instruments import Instruments

plots.save_shown_figures(globals().get("__file__"))  # run as a script: figures saved beside it

QUICK = os.environ.get("JAXDL_QUICK") == "1"
TRAIN_LIMIT = 2000 if QUICK else None  # examples used for training (None: all 50,000)
TEST_LIMIT = 1000 if QUICK else None  # examples tested on (None: all 10,000)
MLP_EPOCHS = 1 if QUICK else 5
CNN_EPOCHS = 1 if QUICK else 10
quiet = (lambda line: None) if QUICK else print  # fit's per-epoch line

# %% [markdown]
# ## The data
# `jaxdl.load` returns uint8 images in NHWC layout and int32 labels. The
# tutorial's `Normalize((0.5,) * 3, (0.5,) * 3)` to [-1, 1] happens on the device,
# inside each compiled step (the task's `preprocess`), so the data set stays uint8.

# %%
train_set, test_set = jaxdl.load("cifar10", "train"), jaxdl.load("cifar10", "test")


def random_subset(ds, limit, seed=0):  # the copy may be ordered by class: draw at random, not the first ones
    return (
        ds.arrays() if limit is None else ds.subset(np.random.default_rng(seed).permutation(len(ds))[:limit]).arrays()
    )


train, test = random_subset(train_set, TRAIN_LIMIT), random_subset(test_set, TEST_LIMIT)
print(train_set.inputs.shape, train_set.inputs.dtype, "->", len(train["labels"]), "used for training")
pick = np.random.default_rng(0).choice(len(train_set), 16, replace=False)
plots.image_grid(train_set.inputs[pick], [train_set.class_names[c] for c in train_set.labels[pick]])
plt.show()


def symmetric(batch, key, train):  # uint8 -> [-1, 1], on the device
    return {**batch, "inputs": jaxdl.data.normalize(batch["inputs"], "symmetric")}


# %% [markdown]
# ## The MLP: flatten -> Linear(3072, 100) -> ReLU -> Linear(100, 10)
# PyTorch's loop calls `optimizer.zero_grad()`, `loss.backward()` and
# `optimizer.step()`. In JAX a gradient is a value that a function returns, so
# nothing accumulates and nothing needs zeroing; one training step is a pure
# function `(state, batch) -> (new state, metrics)`:

# %%
mlp_task = jaxdl.Task(jaxdl.MLP(hidden=100), jaxdl.classification_loss, symmetric)
state, shuffle_key = jaxdl.init_state(mlp_task, optax.adam(1e-3), train, jax.random.key(0))
step = jaxdl.make_train_step(mlp_task)
batch = {"inputs": train["inputs"][:100], "labels": train["labels"][:100], "mask": np.ones(100, bool)}
for _ in range(3):
    state, sums = step(state, batch)  # loss, gradients and the Adam update in one compiled call
    print(f"loss on one batch: {float(sums['loss'] / sums['count']):.4f}")

# %% [markdown]
# `fit` runs that step over shuffled batches of data already on the device
# (Adam 1e-3, batch 100, 5 epochs as the tutorial), and evaluates exactly:
# `train=False` is `model.eval()`, and not asking for a gradient is `torch.no_grad()`.

# %%
state, shuffle_key = jaxdl.init_state(mlp_task, optax.adam(1e-3), train, jax.random.key(0))
mlp = jaxdl.fit(mlp_task, state, train, epochs=MLP_EPOCHS, batch_size=100, key=shuffle_key, log=quiet)
mlp_accuracy = mlp.evaluate(test)["accuracy"]
print(f"MLP test accuracy {100 * mlp_accuracy:.2f}% (tutorial 49.96%); {mlp.examples_per_second:,.0f} examples/s")

# %% [markdown]
# ## The CNN
# Four 3x3 convolutions (3->32, 32->32 stride 2, 32->64, 64->64 stride 2), each
# followed by batch norm and leaky ReLU, then Linear(4096, 128), batch norm,
# dropout 0.5 and Linear(128, 10). A stride-2 convolution halves the image;
# the shapes as an image flows through (`jax.eval_shape` traces without computing):

# %%
cnn = jaxdl.CNN()
image = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
variables = jax.eval_shape(cnn.init, jax.random.key(0), image)
print(f"{count_params(variables['params']):,} parameters (the tutorial's 591,914)")
_, shapes = jax.eval_shape(lambda v, x: cnn.apply(v, x, capture_intermediates=True), variables, image)
for name, value in shapes["intermediates"].items():
    if name.startswith("conv"):
        print(name, value["__call__"][0].shape)

# %% [markdown]
# Batch norm normalises each channel by the batch's statistics while training
# and by running averages at evaluation; dropout zeroes half the dense units
# while training only. Both follow the `train` flag, and their running
# statistics live in the state beside the parameters.
#
# We train the tutorial's recipe (Adam 1e-3, batch 100, 10 epochs) with
# instruments attached: after each epoch they measure every layer on a fixed
# batch (activation spread, dead units, gradient norms and the size of each
# update relative to the parameters, as in Karpathy's makemore lectures).

# %%
cnn_task = jaxdl.Task(jaxdl.CNN(), jaxdl.classification_loss, symmetric)
state, shuffle_key = jaxdl.init_state(cnn_task, optax.adam(1e-3), train, jax.random.key(0))
instruments = Instruments(cnn_task, {k: v[:100] for k, v in train.items()})
cnn_result = jaxdl.fit(cnn_task, state, train, epochs=CNN_EPOCHS, batch_size=100, key=shuffle_key,
                       hooks=[instruments], log=quiet)  # fmt: skip
cnn_accuracy = cnn_result.evaluate(test)["accuracy"]
print(
    f"CNN test accuracy {100 * cnn_accuracy:.2f}% (tutorial 75.52%); {cnn_result.examples_per_second:,.0f} examples/s"
)
plots.diagnostics(cnn_result.history)
plt.show()

# %% [markdown]
# The tutorial's two figures beside jaxdl's:

# %%
plt.bar(["MLP", "CNN"], [49.96, 75.52], width=-0.4, align="edge", label="tutorial")
plt.bar(["MLP", "CNN"], [100 * mlp_accuracy, 100 * cnn_accuracy], width=0.4, align="edge", label="jaxdl")
plt.ylabel("test accuracy (%)")
plt.title(f"CIFAR-10 test accuracy ({'quick settings' if QUICK else 'the tutorial settings'})")
plt.legend()
plt.show()

# %% [markdown]
# ## Forward mode through the CNN
# Every layer is plain JAX, so forward mode works through the whole network:
# a `jax.jvp` of the loss along a direction `v` in parameter space gives the
# directional derivative in one forward pass, and it equals `grad . v`.

# %%
probe = {k: jnp.asarray(v[:32]) for k, v in train.items()}
probe["mask"] = jnp.ones(32, bool)
key = jax.random.key(1)


def cnn_loss(params):
    losses, _, _ = cnn_task.forward(params, cnn_result.state.batch_stats, probe, key, train=False)
    return losses.mean()


params = cnn_result.state.params
v = jax.tree.map(lambda p: jax.random.normal(jax.random.key(2), p.shape), params)
_, directional = jax.jit(lambda p, t: jax.jvp(cnn_loss, (p,), (t,)))(params, v)
grads = jax.jit(jax.grad(cnn_loss))(params)
by_reverse = sum(jnp.vdot(g, t) for g, t in zip(jax.tree.leaves(grads), jax.tree.leaves(v), strict=True))
print(f"jvp: {float(directional):.6f}   grad . v: {float(by_reverse):.6f}")

# %% [markdown]
# ## Your own images
# Any folder laid out as `split/class/image` works: the classes and the image
# size come from the data, the normalisation from the training split, and a
# validation or test split the folder lacks is carved from `train`. Here a
# folder of 40x40 circles, squares and triangles stands in for your photos;
# replace `folder` with your own (from the command line:
# `jaxdl run image-classifier --data FOLDER`).

# %%
folder = tempfile.mkdtemp()
jaxdl.data.write_shapes_folder(folder, per_class=(40, 10) if QUICK else (150, 50))
splits = jaxdl.data.load_image_folder(folder)
own_train, own_val, own_test = splits["train"], splits["val"], splits["test"]
print(own_train.class_names, own_train.inputs.shape, len(own_val), len(own_test))
task = image_task("cnn", own_train, augment_images=True)
state, shuffle_key = jaxdl.init_state(task, optax.adam(1e-3), own_train, jax.random.key(0))
own = jaxdl.fit(task, state, own_train, epochs=2 if QUICK else 20, batch_size=32, key=shuffle_key,
                val_data=own_val, log=quiet)  # fmt: skip
predicted = own.predict(own_test).argmax(-1)
plots.confusion_matrix(own_test.labels, predicted, own_test.class_names)
plt.show()
images, captions = misclassified(own_test, predicted, limit=16)
if len(images):
    plots.image_grid(images, captions, title="misclassified: true -> predicted")
    plt.show()
