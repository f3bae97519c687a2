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
# # A multilayer perceptron from scratch: hand-written backprop in NumPy, checked by JAX
#
# This notebook follows tutorial 3 ("Deep learning fundamentals"): the model as
# matrices with examples in columns, He initialisation, forward propagation
# with caches, binary cross-entropy, backpropagation layer by layer, SGD on
# mini-batches. The tutorial's functions are in `jaxdl.functional.scratch`,
# written as it writes them; beside them, JAX's `jax.grad` of the same cost
# checks every hand-derived gradient, and the same training runs in JAX.
#
# The data: two digit classes (3 and 8) of scikit-learn's 8x8 handwritten
# digits, which ship with scikit-learn (no download). `JAXDL_QUICK=1` trains
# for fewer epochs.

# %%
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jaxdl
from jaxdl import plots
from jaxdl.autodiff import check_gradients
from jaxdl.functional import scratch as S

plots.save_shown_figures(globals().get("__file__"))  # run as a script: figures saved beside it

QUICK = os.environ.get("JAXDL_QUICK") == "1"
EPOCHS = 10 if QUICK else 40
LR, BATCH = 0.1, 64

# %% [markdown]
# ## Model representation
# $X$ holds one example per *column*: $n_x = 64$ features by $m$ examples; $Y$ is
# $1 \times m$, here 1 for an eight and 0 for a three.


# %%
def binary_digits(split, a=3, b=8):
    ds = jaxdl.load("digits", split)
    keep = (ds.labels == a) | (ds.labels == b)
    X = ds.inputs[keep].reshape(int(keep.sum()), -1).T.astype(np.float64) / 255.0
    return X, (ds.labels[keep] == b).astype(np.float64)[None, :]


X, Y = binary_digits("train")
X_test, Y_test = binary_digits("test")
print("X", X.shape, "Y", Y.shape, "test", X_test.shape)
plt.imshow(np.hstack([X[:, i].reshape(8, 8) for i in range(8)]), cmap="gray")
plt.title("the first eight training digits: " + " ".join("8" if v else "3" for v in Y[0, :8]))
plt.axis("off")
plt.show()

# %% [markdown]
# ## Initialisation
# All-zero weights would make every unit of a layer learn the same thing; He
# initialisation, $W^{[l]} \sim \mathcal{N}(0, 2 / n_{l-1})$, breaks the symmetry
# and keeps ReLU activations at a steady scale.

# %%
sizes = [64, 16, 8, 1]
params = S.initialize_parameters(sizes, seed=0)
print({k: v.shape for k, v in params.items()})

# %% [markdown]
# ## Forward propagation, the cost and backpropagation
# Each layer computes $Z^{[l]} = W^{[l]} A^{[l-1]} + b^{[l]}$ and
# $A^{[l]} = \mathrm{ReLU}(Z^{[l]})$ (sigmoid at the output), caching what the
# backward pass needs. The cost is the mean binary cross-entropy. Backpropagation
# starts from $dZ^{[L]} = A^{[L]} - Y$ and walks back:
# $dW^{[l]} = \frac{1}{m} dZ^{[l]} A^{[l-1]T}$, $db^{[l]}$ the row means,
# $dA^{[l-1]} = W^{[l]T} dZ^{[l]}$, $dZ^{[l-1]} = dA^{[l-1]} \odot \mathrm{ReLU}'(Z^{[l-1]})$.

# %%
AL, caches = S.forward_propagation(X, params)
print("cost at initialisation:", S.compute_error(AL, Y))
by_hand = S.backward_propagation(AL, Y, caches)
print({k: v.shape for k, v in by_hand.items()})

# %% [markdown]
# ## Checking the hand-written gradients
# `jax.grad` of the same cost (`jaxdl.functional.scratch.jax_loss`) gives the
# gradient by automatic differentiation; central finite differences give a
# third opinion. All three agree to float64 rounding.

# %%
with jax.enable_x64(True):
    by_jax = jax.grad(S.jax_loss)(params, X, Y)
    worst = max(float(np.max(np.abs(by_hand[f"d{k}"] - np.asarray(by_jax[k])))) for k in params)
    print(f"largest difference, hand-written vs jax.grad: {worst:.1e}")
    print(check_gradients(lambda p: S.jax_loss(p, X, Y), params, grad={k: by_hand[f"d{k}"] for k in params}))

# %% [markdown]
# ## Training on mini-batches
# `generate_mini_batches` shuffles the columns (the tutorial's
# `np.random.seed(seed)` permutation) and cuts batches of 64. The NumPy loop
# and the JAX loop (the tutorial's backward pass written over a pytree in
# `jax.numpy`, one jitted step per batch) start from the same parameters and
# see the same batches, in float64; their loss curves should coincide.

# %%
with jax.enable_x64(True):

    @jax.jit
    def jax_step(p, Xb, Yb):
        loss, grads = S.jax_backward(p, Xb, Yb)
        return jax.tree.map(lambda a, g: a - LR * g, p, grads), loss

    np_params, jax_params = dict(params), {k: jnp.asarray(v) for k, v in params.items()}
    jax_step = jax_step.lower(jax_params, X[:, :BATCH], Y[:, :BATCH]).compile()  # compiled before timing
    curves = {"NumPy": [], "JAX": []}
    seconds = {"NumPy": 0.0, "JAX": 0.0}
    for epoch in range(1, EPOCHS + 1):
        batches = jaxdl.data.generate_mini_batches(X, Y, BATCH, seed=epoch)
        start, losses = time.perf_counter(), []
        for Xb, Yb in batches:
            AL, caches = S.forward_propagation(Xb, np_params)
            losses.append(S.compute_error(AL, Yb))
            np_params = S.update_parameters(np_params, S.backward_propagation(AL, Yb, caches), LR)
        seconds["NumPy"] += time.perf_counter() - start
        curves["NumPy"].append(np.mean(losses))
        start, losses = time.perf_counter(), []
        for Xb, Yb in batches:
            jax_params, loss = jax_step(jax_params, Xb, Yb)
            losses.append(loss)
        curves["JAX"].append(float(np.mean(jax.block_until_ready(losses))))
        seconds["JAX"] += time.perf_counter() - start
gap = max(abs(a - b) for a, b in zip(curves["NumPy"], curves["JAX"], strict=True))
print(f"largest gap between the curves {gap:.1e}; seconds per epoch: "
      + ", ".join(f"{k} {v / EPOCHS * 1e3:.2f} ms" for k, v in seconds.items()))  # fmt: skip
for name, style in (("NumPy", "-"), ("JAX", "--")):
    plt.plot(range(1, EPOCHS + 1), curves[name], style, label=name)
plt.xlabel("epoch")
plt.ylabel("mean binary cross-entropy")
plt.title("hand-written backprop: NumPy and JAX, same batches")
plt.legend()
plt.show()

# %% [markdown]
# ## Testing
# Unseen digits, classified by thresholding the output at 0.5:

# %%
test_out, _ = S.forward_propagation(X_test, np_params)
print(f"test accuracy {100 * np.mean((test_out > 0.5) == (Y_test > 0.5)):.2f}% on {X_test.shape[1]} digits")
