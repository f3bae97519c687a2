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
# # A scalar autodiff engine, and the same network in JAX
#
# This notebook follows tutorial 4 ("Deep Learning: handwriting recognition"):
# a `Scalar` class that remembers how it was computed, operations as
# `Function`s with a forward and a backward rule, reverse-mode `backward()`
# over a topological order, a `Neuron`/`Layer`/`MLP` built from scalars, and
# the manual training loop on MNIST. jaxdl's engine
# (`jaxdl.autodiff.scalar`) has the tutorial's shape; beside it, `jax.grad`
# computes the same gradients, forward mode with dual numbers gives them one
# input at a time, and `jax.jit` trains the same network thousands of times faster.
#
# It needs MNIST (`JAXDL_DATA_DIR` holding `mnist-png.tar.gz`, or TFDS).
# `JAXDL_QUICK=1` trains on fewer images.

# %%
import inspect
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import SVG, display

import jaxdl
from jaxdl import plots
from jaxdl.autodiff import Scalar, draw_graph, reverse_gradient
from jaxdl.autodiff.scalar import MLP, gradient_by_duals
from jaxdl.experiments.scalar_engine import jax_epoch_fn, scalar_epoch, weights_of

plots.save_shown_figures(globals().get("__file__"))  # run as a script: figures saved beside it

QUICK = os.environ.get("JAXDL_QUICK") == "1"
SCALAR_SAMPLES = 2 if QUICK else 20  # the scalar engine takes a second or more per image
JAX_SAMPLES = 512  # the tutorial's subset
EPOCHS = 5  # the tutorial's

# %% [markdown]
# ## The engine on one expression
# Each operation (`+`, `*`, `relu`, `**`) builds a node holding its value, its
# inputs and a closure that adds its inputs' gradients from its own;
# `backward()` runs those closures from the output back. The graph, with each
# node's value and gradient (Graphviz draws it when it is installed):

# %%
a, b = Scalar(2.0), Scalar(-3.0)
c = a * b + a.relu()
d = c**2
d.backward()
print(f"d = {d.data}, dd/da = {a.grad}, dd/db = {b.grad}")
try:
    display(SVG(draw_graph(d, labels={id(a): "a", id(b): "b", id(c): "c", id(d): "d"})))
except jaxdl.JaxdlError as e:
    print(e)

# %% [markdown]
# The same derivative three ways: the scalar engine (reverse mode), dual numbers
# (forward mode: one pass per input, so two passes here) and `jax.grad`.


# %%
def expression(a, b):  # Scalars and Duals both have relu()
    return (a * b + a.relu()) ** 2


print("scalar engine, reverse:", reverse_gradient(expression, [2.0, -3.0]))
print("dual numbers, forward: ", gradient_by_duals(expression, [2.0, -3.0]))
grads = jax.grad(lambda a, b: (a * b + jax.nn.relu(a)) ** 2, argnums=(0, 1))(2.0, -3.0)
print("jax.grad:              ", [float(g) for g in grads])


# %% [markdown]
# ## The network
# `MLP(784, [64, 32, 10])`: every weight a `Scalar`, ReLU between layers, the
# loss the squared error against a one-hot target, SGD on one image at a time
# (lr 0.05), as the tutorial's `_manual_step`; jaxdl's loop is printed below.

# %%
train_set, test_set = jaxdl.load("mnist", "train"), jaxdl.load("mnist", "test")
images = train_set.inputs[:JAX_SAMPLES].reshape(-1, 784).astype(np.float64) / 255.0
labels = train_set.labels[:JAX_SAMPLES]
print(inspect.getsource(scalar_epoch))  # the loop, as jaxdl runs it


# %% [markdown]
# With the tutorial's initialisation (every weight uniform in [-1, 1] on 784
# inputs) the outputs start in the tens, the squared error in the thousands, and
# lr 0.05 makes the loss explode within a few images: the tutorial's run never
# printed a result. PyTorch's default initialisation ($U(\pm 1/\sqrt{n_{in}})$) learns.

# %%
few = images[:SCALAR_SAMPLES], labels[:SCALAR_SAMPLES]
tutorial_init = scalar_epoch(MLP(784, [64, 32, 10], seed=42, init="tutorial"), *few, lr=0.05)
start = time.perf_counter()
torch_init = scalar_epoch(MLP(784, [64, 32, 10], seed=42, init="torch"), *few, lr=0.05)
scalar_seconds = (time.perf_counter() - start) / len(torch_init)
print("tutorial init, loss per image:", [f"{v:.3g}" for v in tutorial_init])
print("torch init, loss per image:   ", [f"{v:.3g}" for v in torch_init])
print(f"scalar engine: {scalar_seconds:.2f} s per image")

# %% [markdown]
# ## The same network in JAX
# The same model and per-image SGD, as one `lax.scan` over the images under
# `jax.jit`, from PyTorch's initialisation. Five epochs over the tutorial's
# 512 images take well under a second; the scalar engine would take minutes
# per epoch.

# %%
print(inspect.getsource(jax_epoch_fn))
initial = weights_of(MLP(784, [64, 32, 10], seed=42, init="torch"))  # (W, b) per layer, as arrays
weights = [(jnp.asarray(W, jnp.float32), jnp.asarray(b, jnp.float32)) for W, b in initial]
epoch = jax_epoch_fn(0.05)
x32, y32 = jnp.asarray(images, jnp.float32), jnp.asarray(labels)
jax.block_until_ready(epoch(weights, x32, y32))  # compile once
start, curve = time.perf_counter(), []
for _ in range(EPOCHS):
    weights, losses = epoch(weights, x32, y32)
    curve.append(float(losses.mean()))
jax_seconds = (time.perf_counter() - start) / (EPOCHS * JAX_SAMPLES)
print(f"jax.jit: {jax_seconds * 1e6:.1f} µs per image, {scalar_seconds / jax_seconds:,.0f}x the scalar engine's speed")

test_x = jnp.asarray(test_set.inputs[:1000].reshape(-1, 784), jnp.float32) / 255.0
scores = test_x
for i, (W, bias) in enumerate(weights):
    scores = scores @ W.T + bias
    scores = jnp.maximum(scores, 0) if i < len(weights) - 1 else scores
accuracy = float(jnp.mean(scores.argmax(-1) == test_set.labels[:1000]))
print(f"test accuracy on 1,000 test images after {EPOCHS} epochs on {JAX_SAMPLES} images: {100 * accuracy:.1f}%")

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].semilogy(range(1, len(tutorial_init) + 1), tutorial_init, "o-", label="tutorial init")
axes[0].semilogy(range(1, len(torch_init) + 1), torch_init, "o-", label="PyTorch init")
axes[0].set(xlabel="image", ylabel="squared error", title="scalar engine, first images")
axes[0].legend()
axes[1].plot(range(1, EPOCHS + 1), curve, "o-")
axes[1].set(xlabel="epoch", ylabel="mean squared error", title=f"jax.jit, {JAX_SAMPLES} images")
fig.tight_layout()
plt.show()
