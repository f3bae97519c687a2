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
# # Optimisation in deep learning, ending in a VAE on MNIST
#
# This notebook follows tutorial 2 ("Introduction to deep learning, from an
# implementation view"): gradient descent as minimising a local surrogate,
# backpropagation as a vector-Jacobian product, what makes networks hard to
# optimise (ill-conditioning, saddle points, vanishing gradients) and the
# remedies (momentum, adaptive rates, better activations), then the lecture's
# example: a variational autoencoder on MNIST, trained with Adam.
#
# It needs MNIST (`JAXDL_DATA_DIR` holding `mnist-png.tar.gz`, or TFDS).
# `JAXDL_QUICK=1` trains the VAE on a few thousand images for one epoch.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxdl
from jaxdl import plots
from jaxdl.experiments.optimizers import PROBLEMS, lbfgs_trajectory, make, saddle, trajectory
from jaxdl.models.vae import VAE, vae_loss

plots.save_shown_figures(globals().get("__file__"))  # run as a script: figures saved beside it

QUICK = os.environ.get("JAXDL_QUICK") == "1"
STEPS = 100 if QUICK else 300  # steps on each toy problem
VAE_EPOCHS = 1 if QUICK else 10  # the tutorial's 10
TRAIN_LIMIT = 4000 if QUICK else None  # MNIST training images used (None: all 60,000)

# %% [markdown]
# ## Gradient descent minimises a surrogate
# Near $\theta_t$, $J(\theta_t + v) \approx J(\theta_t) + \nabla J(\theta_t)^T v + \frac{1}{2\alpha}\|v\|^2$,
# whose minimiser is $v^* = -\alpha \nabla J(\theta_t)$: one step of gradient
# descent. On an ill-conditioned quadratic (curvatures 1 and 50) plain gradient
# descent zig-zags; momentum and adaptive rates (Adagrad, RMSProp, Adam) were
# made for this, and L-BFGS uses curvature. On Rosenbrock's banana valley the
# first-order methods crawl.

# %%
paths = {}
for problem, (f, start, rates) in PROBLEMS.items():
    paths[problem] = {name: trajectory(f, start, make(name, lr), STEPS) for name, lr in rates.items()}
    paths[problem]["lbfgs"] = lbfgs_trajectory(f, start, STEPS)
    finals = {name: float(f(jnp.asarray(path[-1]))) for name, path in paths[problem].items()}
    print(f"{problem}: f after {STEPS} steps: " + ", ".join(f"{n} {v:.1e}" for n, v in finals.items()))
plots.optimizer_paths(paths, {name: spec[0] for name, spec in PROBLEMS.items()})
plt.show()

# %% [markdown]
# ## Backpropagation is a vector-Jacobian product
# For $l = g(y)$ and $y = f(z)$, the lecture writes $\partial l / \partial z = J^T \nu$
# with $\nu = \partial l / \partial y$. `jax.vjp` computes exactly that product
# without ever forming $J$:

# %%
W = jax.random.normal(jax.random.key(0), (3, 4))
f = lambda z: jnp.tanh(W @ z)  # noqa: E731  y = f(z): R^4 -> R^3
z = jnp.arange(4.0) / 4
nu = jnp.array([1.0, -2.0, 0.5])  # dl/dy
y, pullback = jax.vjp(f, z)
print("J^T nu by vjp:        ", pullback(nu)[0])
print("J^T nu with J formed: ", jax.jacobian(f)(z).T @ nu)

# %% [markdown]
# ## Saddle points and noise
# In high dimensions saddle points are more common than local minima. At the
# saddle of $x^2 - y^2 + y^4/4$, gradient descent started on the ridge never
# leaves; a little gradient noise, as minibatches give, escapes to the minimum $f = -1$.


# %%
def descend(noise):
    def step(p, key):
        return p - 0.05 * (jax.grad(saddle)(p) + noise * jax.random.normal(key, (2,))), p

    return jax.lax.scan(step, jnp.array([1.0, 0.0]), jax.random.split(jax.random.key(0), STEPS))[1]


for noise in (0.0, 0.01):
    plt.plot(jax.vmap(saddle)(descend(noise)), label=f"gradient noise {noise}")
plt.xlabel("step")
plt.ylabel("f")
plt.title("gradient descent stalls at a saddle; noise escapes")
plt.legend()
plt.show()

# %% [markdown]
# ## Vanishing gradients
# Through 20 sigmoid layers the gradient of the first layer is many orders of
# magnitude smaller than the last one's; with ReLU it is not. (The activations
# are jaxdl's: `jaxdl.sigmoid`, `jaxdl.relu`, `jaxdl.leaky_relu`, `jaxdl.elu`, `jaxdl.maxout`.)

# %%
depth, width = 20, 64
x = jax.random.normal(jax.random.key(1), (128, width))
keys = jax.random.split(jax.random.key(2), depth)
weights = [jaxdl.glorot_normal(k, (width, width)) for k in keys]


def deep_loss(weights, activation):
    h = x
    for w in weights:
        h = activation(h @ w)
    return jnp.mean(h**2)


for name, activation in (("sigmoid", jaxdl.sigmoid), ("tanh", jaxdl.tanh), ("relu", jaxdl.relu)):
    grads = jax.grad(deep_loss)(weights, activation)
    plt.semilogy(range(1, depth + 1), [float(jnp.linalg.norm(g)) for g in grads], "o-", label=name)
plt.xlabel("layer")
plt.ylabel("gradient norm")
plt.title("gradient norm per layer at initialisation")
plt.legend()
plt.show()

# %% [markdown]
# ## The example: a VAE on MNIST
# The tutorial's VAE: an encoder 784 -> 400 -> (mean, log-variance) of a 20-d
# Gaussian $q(z|x)$, the reparameterisation $z = \mu + \sigma \epsilon$, a decoder
# 20 -> 400 -> 784, and the loss per image: binary cross-entropy of the
# reconstruction plus $KL(q(z|x) \| \mathcal{N}(0, I))$, in nats. Adam, lr 1e-3,
# batch 32. Pixels become [0, 1] and flat on the device.

# %%
train_set, test_set = jaxdl.load("mnist", "train"), jaxdl.load("mnist", "test")
train = train_set.arrays(TRAIN_LIMIT)


def flat_unit_pixels(batch, key, train):
    image = jaxdl.data.normalize(batch["inputs"], "unit")
    return {**batch, "inputs": image.reshape(image.shape[0], -1)}


task = jaxdl.Task(VAE(latents=20, hidden=400), vae_loss, flat_unit_pixels)
state, shuffle_key = jaxdl.init_state(task, optax.adam(1e-3), train, jax.random.key(0))
result = jaxdl.fit(task, state, train, epochs=VAE_EPOCHS, batch_size=32, key=shuffle_key)
test_loss = result.evaluate(test_set)["loss"]
print(f"test loss {test_loss:.2f} nats per image; the tutorial's own code on this copy: 104.73-105.22 (seeds 0-4)")

# %% [markdown]
# The tutorial's figure is its test loss after 10 epochs (its code, five seeds);
# beside it jaxdl's curve, per epoch, and the per-step training loss:

# %%
plots.epoch_curves(result.history, ("loss",), test={"loss": test_loss}, step_losses=result.step_losses)
plt.axhspan(104.73, 105.22, color="tab:green", alpha=0.3, label="tutorial's code, 10 epochs")
plt.ylim(95, max(140, 1.1 * test_loss))
plt.legend()
plt.show()

# %% [markdown]
# Reconstructions of test images (the decoder applied to the encoder's mean)
# and new digits drawn from the prior $z \sim \mathcal{N}(0, I)$:

# %%
variables = {"params": result.state.params}
images = flat_unit_pixels(test_set.arrays(16), None, False)["inputs"]
mean, _ = task.model.apply(variables, images, method=VAE.encode)
reconstructions = jax.nn.sigmoid(task.model.apply(variables, mean, method=VAE.decode))
samples = jax.nn.sigmoid(task.model.apply(variables, jax.random.normal(jax.random.key(3), (16, 20)), method=VAE.decode))
to_uint8 = lambda a: np.asarray(jnp.round(255 * a), np.uint8).reshape(-1, 28, 28, 1)  # noqa: E731
plots.image_grid(np.concatenate([test_set.inputs[:16], to_uint8(reconstructions), to_uint8(samples)]),
                 ["test"] * 16 + ["reconstruction"] * 16 + ["sample"] * 16, title="VAE on MNIST")  # fmt: skip
plt.show()

# %% [markdown]
# The tutorial ends with a question: can you generate a chosen digit? A
# conditional VAE gives the label to both encoder and decoder
# (`VAE(num_classes=10)`, the label passed as a keyword input); then the decoder
# draws the digit it is asked for. From the command line:
# `jaxdl run mnist-vae --set conditional=true`.

# %%
conditional = jaxdl.Task(VAE(latents=20, hidden=400, num_classes=10), vae_loss, flat_unit_pixels,
                         keyword_inputs=("labels",))  # fmt: skip
state, shuffle_key = jaxdl.init_state(conditional, optax.adam(1e-3), train, jax.random.key(0))
cvae = jaxdl.fit(conditional, state, train, epochs=VAE_EPOCHS, batch_size=32, key=shuffle_key)
digits = jnp.repeat(jnp.arange(10), 4)
z = jax.random.normal(jax.random.key(4), (40, 20))
drawn = jax.nn.sigmoid(conditional.model.apply({"params": cvae.state.params}, z, digits, method=VAE.decode))
plots.image_grid(to_uint8(drawn), [f"asked for {d}" for d in np.asarray(digits)], columns=8)
plt.show()
