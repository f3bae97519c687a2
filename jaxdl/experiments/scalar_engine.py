"""Tutorial 4's scalar-engine run, which never finished, finished, and the speed ladder to jax.jit.

The tutorial trains MLP(784, [64, 32, 10]) built from ``Scalar`` objects with
MSE against one-hot targets and per-sample SGD (lr 0.05) on MNIST: in pure
Python every sample is slow (the run reports its own figure; see
docs/performance.md), so its 5 epochs x 512 images take a long time.
This runs the same model and the same updates three ways, from the same
initial weights on the same samples: the scalar engine (pure Python), NumPy
(a hand-written backward pass), and JAX (one ``lax.scan`` over the samples
under ``jit``); it reports seconds per sample of each and the largest
difference between their final parameters.

With the tutorial's initialisation (weights uniform in [-1, 1] on 784
inputs) and lr 0.05 the loss explodes within a few samples; the run reports
the sample where it stopped being finite. ``init=torch`` (or he) learns.
"""

from __future__ import annotations

import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import data as data_lib
from jaxdl import plots
from jaxdl.autodiff.scalar import MLP, Scalar
from jaxdl.claims import Claim, Run, at_least, at_most
from jaxdl.experiments import Experiment
from jaxdl.experiments.settings import ScalarEngineConfig as Config
from jaxdl.rundir import RunDir

SIZES = (784, 64, 32, 10)


def weights_of(model: MLP) -> list[tuple[np.ndarray, np.ndarray]]:
    """The scalar model's parameters as (W (out, in), b (out,)) float64 arrays.

    Gives NumPy and JAX the scalar engine's initial weights, and its final
    ones to compare against theirs.

    Args:
      model: a scalar-engine MLP.

    Returns:
      One ``(W, b)`` pair per layer, input layer first.
    """
    return [
        (np.array([[w.data for w in n.w] for n in layer.neurons]), np.array([n.b.data for n in layer.neurons]))
        for layer in model.layers
    ]


def scalar_epoch(model: MLP, images: np.ndarray, labels: np.ndarray, lr: float) -> list[float]:
    """The tutorial's manual loop: per-image SGD on the squared error against a one-hot target, in the scalar engine.

    Args:
      model: the scalar-engine MLP, updated in place.
      images: flattened images in [0, 1], float64 ``(n, 784)``.
      labels: integer classes ``(n,)``.
      lr: the learning rate.

    Returns:
      The loss of each image before its update, stopping at (and including)
      the first that is not finite.
    """
    losses = []
    params = model.parameters()
    for x, label in zip(images, labels, strict=True):
        model.zero_grad()
        outputs = model([Scalar(v) for v in x])
        diffs = [o - (1.0 if k == label else 0.0) for k, o in enumerate(outputs)]
        loss = sum((d * d for d in diffs), Scalar(0.0))  # the tutorial's _mse_loss
        loss.backward()
        for p in params:
            p.data -= lr * p.grad
        losses.append(loss.data)
        if not math.isfinite(loss.data):
            break  # every later update would be NaN too
    return losses


def _numpy_epoch(weights, images, labels, lr) -> tuple[list, list[float]]:
    losses = []
    for x, label in zip(images, labels, strict=True):
        activations, pre = [x], []
        for i, (W, b) in enumerate(weights):
            z = W @ activations[-1] + b
            pre.append(z)
            activations.append(np.maximum(z, 0) if i < len(weights) - 1 else z)
        target = np.eye(10)[label]
        diff = activations[-1] - target
        losses.append(float(diff @ diff))
        grad = 2 * diff
        new = []
        for i in range(len(weights) - 1, -1, -1):
            W, b = weights[i]
            if i < len(weights) - 1:
                grad = grad * (pre[i] > 0)
            dW, db = np.outer(grad, activations[i]), grad
            grad = W.T @ grad
            new.append((W - lr * dW, b - lr * db))
        weights = new[::-1]
        if not math.isfinite(losses[-1]):
            break
    return weights, losses


def jax_epoch_fn(lr: float):
    """The same loop in JAX: ``epoch(weights, images, labels) -> (weights, losses)``, one jitted scan.

    Args:
      lr: the learning rate, a constant of the compiled program.

    Returns:
      The jitted epoch: ``weights`` as :func:`weights_of` gives them (as JAX
      arrays), ``images`` ``(n, 784)`` and ``labels`` ``(n,)``; it returns the
      updated weights and each image's loss ``(n,)``. Unlike
      :func:`scalar_epoch` it does not stop at a non-finite loss.
    """

    def loss_fn(weights, x, label):
        h = x
        for i, (W, b) in enumerate(weights):
            h = W @ h + b
            h = jnp.maximum(h, 0) if i < len(weights) - 1 else h
        return jnp.sum((h - jax.nn.one_hot(label, 10, dtype=h.dtype)) ** 2)

    def step(weights, sample):
        loss, grads = jax.value_and_grad(loss_fn)(weights, *sample)
        return jax.tree.map(lambda p, g: p - lr * g, weights, grads), loss

    return jax.jit(lambda weights, images, labels: jax.lax.scan(step, weights, (images, labels)))


def _first_non_finite(losses) -> int | None:
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    return bad[0] + 1 if bad else None  # 1-based sample number


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """Trains the same MLP in the scalar engine, NumPy and JAX, and compares their speed and results.

    Writes each sample's loss in the three as the history, and ``loss.png``
    when the scalar engine's losses stayed finite.

    Args:
      config: ``n_train`` images per epoch, ``epochs``, ``lr``, ``init`` (the
        tutorial's, torch or he), ``n_test`` and the seed.
      run_dir: where the history and the figure go.

    Returns:
      Metrics: ``samples_trained`` and ``diverged_at_sample`` (the 1-based
      sample whose loss was first not finite, or None);
      ``scalar_seconds_per_sample``, ``numpy_seconds_per_sample`` and
      ``jax_seconds_per_sample`` (compile excluded), with
      ``jax_speedup_over_scalar`` and ``numpy_speedup_over_scalar``; and, when
      training finished, ``max_param_difference_numpy`` and
      ``max_param_difference_jax`` (against the scalar engine's parameters),
      ``test_accuracy`` on ``n_test`` images and ``final_loss`` (the last
      epoch's mean).
    """
    train = data_lib.load("mnist", "train", data=config.data or None)
    test = data_lib.load("mnist", "test", data=config.data or None)
    images = train.inputs[: config.n_train].reshape(-1, 784).astype(np.float64) / 255.0
    labels = train.labels[: config.n_train]
    model = MLP(784, list(SIZES[1:]), seed=config.seed, init=config.init)
    initial = weights_of(model)

    scalar_losses, start = [], time.perf_counter()
    for _ in range(config.epochs):
        scalar_losses += scalar_epoch(model, images, labels, config.lr)
        if _first_non_finite(scalar_losses):
            break
    scalar_seconds = time.perf_counter() - start

    numpy_weights, numpy_losses, start = initial, [], time.perf_counter()
    for _ in range(config.epochs):
        with np.errstate(over="ignore", invalid="ignore"):  # a divergence is reported, not warned about
            numpy_weights, losses = _numpy_epoch(numpy_weights, images, labels, config.lr)
        numpy_losses += losses
        if _first_non_finite(numpy_losses):
            break
    numpy_seconds = time.perf_counter() - start

    with jax.enable_x64(True):
        epoch_fn = jax_epoch_fn(config.lr)
        jax_weights = [(jnp.asarray(W), jnp.asarray(b)) for W, b in initial]
        x, y = jnp.asarray(images), jnp.asarray(labels)
        compiled = epoch_fn.lower(jax_weights, x, y).compile()
        jax_losses, jax_seconds = [], 0.0
        for _ in range(config.epochs):
            start = time.perf_counter()
            jax_weights, losses = jax.block_until_ready(compiled(jax_weights, x, y))
            jax_seconds += time.perf_counter() - start
            jax_losses += [float(v) for v in losses]
        jax_weights = [(np.asarray(W), np.asarray(b)) for W, b in jax_weights]

    samples = len(scalar_losses)
    diverged = _first_non_finite(scalar_losses)
    finished = diverged is None
    metrics: dict[str, Any] = {
        "samples_trained": samples,
        "diverged_at_sample": diverged,
        "scalar_seconds_per_sample": scalar_seconds / max(samples, 1),
        "numpy_seconds_per_sample": numpy_seconds / max(len(numpy_losses), 1),
        "jax_seconds_per_sample": jax_seconds / (config.epochs * config.n_train),
    }
    metrics["jax_speedup_over_scalar"] = metrics["scalar_seconds_per_sample"] / metrics["jax_seconds_per_sample"]
    metrics["numpy_speedup_over_scalar"] = metrics["scalar_seconds_per_sample"] / metrics["numpy_seconds_per_sample"]
    if finished:
        scalar_weights = weights_of(model)
        metrics["max_param_difference_numpy"] = max(
            float(np.max(np.abs(a - b))) for sw, nw in zip(scalar_weights, numpy_weights, strict=True)
            for a, b in zip(sw, nw, strict=True)
        )  # fmt: skip
        metrics["max_param_difference_jax"] = max(
            float(np.max(np.abs(a - b))) for sw, jw in zip(scalar_weights, jax_weights, strict=True)
            for a, b in zip(sw, jw, strict=True)
        )  # fmt: skip
        x_test = test.inputs[: config.n_test].reshape(-1, 784).astype(np.float64) / 255.0
        h = x_test.T
        with np.errstate(over="ignore", invalid="ignore"):  # huge but finite weights may overflow here
            for i, (W, b) in enumerate(numpy_weights):
                h = W @ h + b[:, None]
                h = np.maximum(h, 0) if i < len(numpy_weights) - 1 else h
        metrics["test_accuracy"] = float(np.mean(np.argmax(h, axis=0) == test.labels[: config.n_test]))
        metrics["final_loss"] = float(np.mean(scalar_losses[-config.n_train :]))

    run_dir.append_history(
        [
            {"sample": i + 1, "scalar_loss": s, "numpy_loss": n, "jax_loss": j}
            for i, (s, n, j) in enumerate(zip(scalar_losses, numpy_losses, jax_losses, strict=False))
        ]
    )
    records = [
        {"sample": i + 1, "scalar engine": s, "jax.jit": j}
        for i, (s, j) in enumerate(zip(scalar_losses, jax_losses, strict=False))
    ]
    if records and all(math.isfinite(r["scalar engine"]) for r in records):
        figure = plots.overlaid_curves(records, ("scalar engine", "jax.jit"), "MSE", "per-sample loss", x="sample")
        run_dir.save_figure(figure, "loss.png")

    print(
        f"seconds per sample: scalar engine {metrics['scalar_seconds_per_sample']:.3f}, "
        f"NumPy {1e6 * metrics['numpy_seconds_per_sample']:.1f} us, "
        f"jax.jit {1e6 * metrics['jax_seconds_per_sample']:.1f} us "
        f"(jit {metrics['jax_speedup_over_scalar']:.0f}x faster than the scalar engine)"
    )
    if diverged:
        shown = ", ".join(f"{v:.3g}" for v in scalar_losses[:diverged])
        print(f"diverged: the loss was {shown}; not finite from sample {diverged} (init={config.init}, lr={config.lr})")
    else:
        print(
            f"all three agree: largest parameter difference {metrics['max_param_difference_numpy']:.2e} (NumPy), "
            f"{metrics['max_param_difference_jax']:.2e} (JAX); test accuracy {100 * metrics['test_accuracy']:.2f}% "
            f"on {config.n_test} images"
        )
    return metrics


EXPERIMENT = Experiment(
    name="scalar-engine",
    description="tutorial 4: MLP(784,[64,32,10]) in the scalar engine vs NumPy vs jax.jit, same updates; "
    "divergence reported",
    config=Config,
    run=run,
    smallest=("n_train=2", "n_test=5"),
    claims=(
        Run(name="scalar-engine-tutorial", quick=("n_train=6", "n_test=100"), data="mnist", claims=(
            Claim(source="tutorial 4", statement="the scalar engine's MLP(784, [64, 32, 10]) with the tutorial's init "
                  "and lr 0.05: sample at which the loss stops being finite", tutorial="(run never finished)",
                  metric="diverged_at_sample", fmt="{:.0f}"),
        )),
        Run(name="scalar-engine-torch", settings=("init=torch",), quick=("n_train=6", "n_test=100"), data="mnist",
            claims=(
            Claim(source="tutorial 4", statement="scalar engine, NumPy and jax.jit from PyTorch's init: largest "
                  "parameter difference", tutorial="(same maths)", metric="max_param_difference_jax", fmt="{:.2g}",
                  target=at_most(1e-6, "<= 1e-6")),
            Claim(source="tutorial 4", statement="seconds per sample: scalar engine over jax.jit", tutorial="",
                  metric="jax_speedup_over_scalar", fmt="{:,.0f}x", target=at_least(100.0, ">= 100x")),
        )),
    ),
)  # fmt: skip
