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
# # Deep-learning basics in JAX: a blob classifier, Monte Carlo estimation, autodiff, minibatch SGD
#
# This notebook follows tutorial 0 ("Deep Learning Basics") step by step, in JAX:
# the data, a two-layer network, the loss as a Monte Carlo estimate, forward and
# reverse automatic differentiation, and the training loop. Where the tutorial
# prints or draws a result, the tutorial's figure is shown beside jaxdl's.
#
# `JAXDL_QUICK=1` in the environment runs it at small settings (the test suite does).

# %%
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxdl
from jaxdl import plots
from jaxdl.autodiff import check_gradients, gradient_by_jvp, gradient_by_vjp
from jaxdl.models.blobs import tutorial_log, tutorial_params
from jaxdl.monte_carlo import gaussian_sampler, mc_estimate

plots.save_shown_figures(globals().get("__file__"))  # run as a script: figures saved beside it

QUICK = os.environ.get("JAXDL_QUICK") == "1"
EPOCHS = 200 if QUICK else 1000  # the tutorial's 1000 full-batch epochs
SEEDS = 8 if QUICK else 64  # initialisations trained at once at the end

# %% [markdown]
# ## The data
# `make_blobs(n_samples=1000, n_features=2, centers=2, cluster_std=3, random_state=1)`,
# as the tutorial draws it: two overlapping Gaussian clouds.

# %%
blobs = jaxdl.load("blobs")
x, y = jnp.asarray(blobs.inputs), jnp.asarray(blobs.labels)
print("x shape:", x.shape, " y shape:", y.shape)
plt.scatter(blobs.inputs[:, 0], blobs.inputs[:, 1], c=blobs.labels, s=25)
plt.title("make_blobs: 1000 points, 2 classes")
plt.show()

# %% [markdown]
# ## An artificial neural network
# The tutorial's `Classifier` is `Linear(2, 5) -> Linear(5, 1) -> Sigmoid`: a
# composition of affine maps. In Flax the module is a description; its
# parameters are a separate pytree, so the network is a pure function
# `apply(params, x)`. We start from the exact weights the tutorial's PyTorch
# code drew (`torch.manual_seed(2024)`), so the numbers below can match its log.

# %%
model = jaxdl.BlobClassifier(hidden=5)
params = tutorial_params()
print(jax.tree.map(jnp.shape, params))
logits = model.apply({"params": params}, x)
print("P(class 1) of the first five points:", jax.nn.sigmoid(logits[:5]))

# %% [markdown]
# ## Monte Carlo estimation
# An expectation $\mathbb{E}_{x \sim p}[f(x)]$ is replaced by an average over
# samples, $\frac{1}{S}\sum_i f(x_i)$: unbiased, and its error shrinks like
# $1/\sqrt{S}$. Here $f(x) = x^2$ under $\mathcal{N}(1, 2^2)$, whose exact
# expectation is $1 + 4 = 5$; each size is estimated 200 times.

# %%
sizes = np.array([10, 100, 1_000, 10_000])
estimate = jax.jit(
    jax.vmap(lambda k, s: mc_estimate(k, jnp.square, gaussian_sampler(1.0, 2.0), s), (0, None)), static_argnums=1
)
errors = [
    float(jnp.sqrt(jnp.mean((estimate(jax.random.split(jax.random.key(s), 200), int(s)) - 5.0) ** 2))) for s in sizes
]
slope = np.polyfit(np.log(sizes), np.log(errors), 1)[0]
plt.loglog(sizes, errors, "o-", label=f"RMS error (slope {slope:.2f})")
plt.loglog(sizes, errors[0] * np.sqrt(sizes[0] / sizes), "k:", label="1/sqrt(S)")
plt.xlabel("samples S")
plt.legend()
plt.title("Monte Carlo error falls like 1/sqrt(S)")
plt.show()

# %% [markdown]
# The loss is such an estimate too: binary cross-entropy averaged over the
# data points, the tutorial's `nn.BCELoss()`. On logits it is computed stably
# (`binary_cross_entropy_with_logits`), with the accuracy at threshold 0.5.


# %%
def loss_fn(params, batch):
    x, y = batch
    logits = model.apply({"params": params}, x)
    accuracy = jnp.mean((logits >= 0) == (y == 1))
    return jaxdl.binary_cross_entropy_with_logits(logits, y.astype(logits.dtype)), {"accuracy": accuracy}


def loss_only(p):
    return loss_fn(p, (x, y))[0]


print("initial loss", float(loss_only(params)))

# %% [markdown]
# ## Automatic differentiation: forward and reverse mode
# Forward mode (`jax.jvp`) pushes one tangent direction through the chain rule
# (F1) per pass, so a gradient of $n$ parameters needs $n$ passes; reverse mode
# (`jax.vjp`, what `jax.grad` does) pulls the output's sensitivity back (R1)
# in one pass. Both give the same gradient; finite differences, which autodiff
# is *not*, only approximate it.

# %%
forward = gradient_by_jvp(loss_only, params)
reverse = gradient_by_vjp(loss_only, params)
gap = max(
    float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(forward), jax.tree.leaves(reverse), strict=True)
)
print(f"parameters: {sum(p.size for p in jax.tree.leaves(params))}; forward vs reverse gradient: largest gap {gap:.1e}")
with jax.enable_x64(True):  # finite differences need float64 to mean anything
    x64 = np.asarray(blobs.inputs, np.float64)
    print(check_gradients(lambda p: loss_fn(p, (x64, y))[0], params))

# %% [markdown]
# Cost: for $f: \mathbb{R}^n \to \mathbb{R}$ the Jacobian is one row, so
# reverse mode wins; for $f: \mathbb{R} \to \mathbb{R}^n$ it is one column, so
# forward mode wins.


# %%
def seconds(fn, arg, repeats=20):
    fn(arg).block_until_ready()  # compile first
    start = time.perf_counter()
    for _ in range(repeats):
        fn(arg).block_until_ready()
    return (time.perf_counter() - start) / repeats


n = 300 if QUICK else 1000
w = jax.random.normal(jax.random.key(0), (n,))
many_to_one = lambda v: jnp.sum(jnp.tanh(v * w))  # noqa: E731
one_to_many = lambda s: jnp.tanh(s * w)  # noqa: E731
ratios = {
    f"R^{n} -> R": seconds(jax.jit(jax.jacfwd(many_to_one)), w) / seconds(jax.jit(jax.jacrev(many_to_one)), w),
    f"R -> R^{n}": seconds(jax.jit(jax.jacfwd(one_to_many)), 1.0) / seconds(jax.jit(jax.jacrev(one_to_many)), 1.0),
}
plt.bar(list(ratios), list(ratios.values()))
plt.axhline(1, c="k", lw=1)
plt.yscale("log")
plt.ylabel("jacfwd time / jacrev time")
plt.title("forward mode loses on many inputs, wins on many outputs")
plt.show()
print({k: f"{v:.3g}x" for k, v in ratios.items()})

# %% [markdown]
# ## Training: gradient descent on the full batch
# The tutorial's loop runs 1000 epochs of SGD (lr 5e-4) on all 1000 points,
# logging loss and accuracy *before* each update. `jaxdl.full_batch_scan` is that
# loop as one `lax.scan`, compiled once.

# %%
train = jax.jit(jaxdl.full_batch_scan(loss_fn, optax.sgd(5e-4), EPOCHS))
final_params, history = train(params, (x, y))
for epoch in range(99, EPOCHS, 100):
    print(f"Epoch {epoch + 1} loss {history['loss'][epoch]:.4f} acc {100 * history['accuracy'][epoch]:.2f}%")

# %% [markdown]
# The tutorial's log (its ten lines, every 100 epochs) beside jaxdl's curves:
# from the same initial weights they coincide.

# %%
log = tutorial_log()
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
axes[0].plot(np.arange(1, EPOCHS + 1), history["loss"], label="jaxdl")
axes[0].plot([r["epoch"] for r in log], [r["loss"] for r in log], "o", label="tutorial's log")
axes[0].set(title="Training Loss", xlabel="Epoch", ylabel="Loss")
axes[1].plot(np.arange(1, EPOCHS + 1), 100 * history["accuracy"], c="orange", label="jaxdl")
axes[1].plot([r["epoch"] for r in log], [r["acc"] for r in log], "o", c="k", label="tutorial's log")
axes[1].set(title="Training Accuracy", xlabel="Epoch", ylabel="Accuracy (%)")
for ax in axes:
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Minibatch SGD: an unbiased gradient estimate
# A minibatch gradient is itself a Monte Carlo estimate of the full gradient:
# averaged over many random batches it matches the full gradient, and its
# spread shrinks as the batch grows.

# %%
full = jax.grad(loss_only)(params)
draws = 500 if QUICK else 2000
batch_grad = jax.jit(jax.vmap(lambda b: jax.grad(lambda p: loss_fn(p, (x[b], y[b]))[0])(params)))
for size in (8, 32, 128):
    keys = jax.random.split(jax.random.key(size), draws)
    grads = batch_grad(jax.vmap(lambda k, size=size: jax.random.choice(k, len(x), (size,), replace=False))(keys))
    # how many standard errors the mean of the batch gradients lies from the full gradient, worst entry
    z = max(float(jnp.max(jnp.abs(g.mean(0) - f) / (g.std(0) / np.sqrt(draws) + 1e-12)))
            for g, f in zip(jax.tree.leaves(grads), jax.tree.leaves(full), strict=True))  # fmt: skip
    spread = float(jnp.mean(jnp.stack([g.std(0).mean() for g in jax.tree.leaves(grads)])))
    print(
        f"batch {size:>3}: mean of {draws} batch gradients within {z:.1f} standard errors of the full gradient; "
        f"mean std {spread:.3f}"
    )

# %% [markdown]
# ## One seed says little: many initialisations at once
# The tutorial reports one run. `jax.vmap` trains many initialisations in one
# compiled program; the spread of their accuracies is the honest figure.

# %%
keys = jax.random.split(jax.random.key(0), SEEDS)
inits = jax.vmap(lambda k: model.init(k, x[:1])["params"])(keys)
seed_params, _ = jax.jit(jax.vmap(train, (0, None)))(inits, (x, y))
accuracies = 100 * jax.vmap(lambda p: loss_fn(p, (x, y))[1]["accuracy"])(seed_params)
plt.hist(np.asarray(accuracies), bins=16)
plt.axvline(92.90, c="r", label="tutorial: 92.90%")
plt.xlabel("train accuracy after training (%)")
plt.title(f"{SEEDS} initialisations: mean {float(accuracies.mean()):.2f}%, std {float(accuracies.std()):.2f}")
plt.legend()
plt.show()
