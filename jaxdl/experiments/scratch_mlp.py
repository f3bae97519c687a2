"""Tutorial 3's from-scratch MLP, trained twice: the NumPy reference and the same backward pass in JAX.

Both start from the same He-initialised parameters and see the same shuffled
mini-batches (the tutorial's ``generate_mini_batches``), in float64; their
loss curves should coincide to rounding. The task is binary: two digit
classes of scikit-learn's real 8x8 handwritten digits (embedded, no download),
or of MNIST with ``dataset=mnist``.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import data as data_lib
from jaxdl import plots
from jaxdl.claims import Claim, Run, at_most
from jaxdl.errors import JaxdlError
from jaxdl.experiments import Experiment
from jaxdl.experiments.settings import ScratchMLPConfig as Config
from jaxdl.functional import scratch as S
from jaxdl.rundir import RunDir


def _binary(config: Config, split: str) -> tuple[np.ndarray, np.ndarray]:
    ds = data_lib.load(config.dataset, split, data=config.data or None)
    a, b = config.classes
    keep = (ds.labels == a) | (ds.labels == b)
    X = ds.inputs[keep].reshape(int(keep.sum()), -1).T.astype(np.float64) / 255.0  # (features, m)
    Y = (ds.labels[keep] == b).astype(np.float64)[None, :]
    return X, Y


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """Trains the from-scratch MLP in NumPy and in JAX side by side, on the same batches.

    Writes each epoch's mean loss in both as the history, and ``loss.png``.

    Args:
      config: ``dataset`` and the two ``classes`` (the second is the positive
        one), ``hidden`` widths (comma-separated), ``lr``, ``batch_size``,
        ``epochs`` and the seed.
      run_dir: where the history and the figure go.

    Returns:
      Metrics: ``final_numpy_loss`` and ``final_jax_loss`` (the last epoch's
      mean binary cross-entropy); ``max_loss_curve_gap`` and
      ``max_param_difference`` (the two implementations' largest
      disagreement, float64 rounding when they agree); ``test_accuracy`` of
      the NumPy network; ``numpy_seconds_per_epoch``,
      ``jax_seconds_per_epoch`` and ``jax_compile_seconds``; and
      ``train_examples``.

    Raises:
      JaxdlError: ``batch_size`` exceeds the training examples of the two classes.
    """
    X, Y = _binary(config, "train")
    X_test, Y_test = _binary(config, "test")
    sizes = [X.shape[0], *config.hidden, 1]
    initial = S.initialize_parameters(sizes, seed=config.seed)

    with jax.enable_x64(True):

        @jax.jit
        def jax_step(params, X_batch, Y_batch):
            loss, grads = S.jax_backward(params, X_batch, Y_batch)
            return jax.tree.map(lambda p, g: p - config.lr * g, params, grads), loss

        np_params = dict(initial)
        jax_params = {k: jnp.asarray(v) for k, v in initial.items()}
        if X.shape[1] < config.batch_size:
            raise JaxdlError(f"batch_size {config.batch_size} exceeds the {X.shape[1]} training examples")
        start = time.perf_counter()  # every batch has one shape: compile once, ahead of time
        jax_step = jax_step.lower(jax_params, X[:, : config.batch_size], Y[:, : config.batch_size]).compile()
        compile_seconds = time.perf_counter() - start
        records, np_seconds, jax_seconds = [], 0.0, 0.0
        for epoch in range(1, config.epochs + 1):
            batches = data_lib.generate_mini_batches(X, Y, config.batch_size, seed=config.seed + epoch)
            start, np_losses = time.perf_counter(), []
            for Xb, Yb in batches:
                AL, caches = S.forward_propagation(Xb, np_params)
                np_losses.append(S.compute_error(AL, Yb))
                np_params = S.update_parameters(np_params, S.backward_propagation(AL, Yb, caches), config.lr)
            np_seconds += time.perf_counter() - start
            start, jax_losses = time.perf_counter(), []
            for Xb, Yb in batches:
                jax_params, loss = jax_step(jax_params, Xb, Yb)
                jax_losses.append(loss)
            jax_losses = [float(v) for v in jax.block_until_ready(jax_losses)]
            jax_seconds += time.perf_counter() - start
            record = {"epoch": epoch, "numpy_loss": float(np.mean(np_losses)), "jax_loss": float(np.mean(jax_losses))}
            records.append(record)
        run_dir.append_history(records)
        max_param_diff = max(float(np.max(np.abs(np_params[k] - np.asarray(jax_params[k])))) for k in initial)
        test_out, _ = S.forward_propagation(X_test, np_params)
    test_accuracy = float(np.mean((test_out > 0.5) == (Y_test > 0.5)))
    curve_gap = max(abs(r["numpy_loss"] - r["jax_loss"]) for r in records)
    print(
        f"{config.epochs} epochs: final loss NumPy {records[-1]['numpy_loss']:.6f}, JAX {records[-1]['jax_loss']:.6f}; "
        f"largest gap between the curves {curve_gap:.2e}; test accuracy {100 * test_accuracy:.2f}%"
    )
    print(
        f"time per epoch: NumPy {1e3 * np_seconds / config.epochs:.2f} ms, "
        f"JAX (one jitted step per batch) {1e3 * jax_seconds / config.epochs:.2f} ms, "
        f"compiled in {compile_seconds:.2f} s"
    )
    run_dir.save_figure(plots.overlaid_curves(records, ("numpy_loss", "jax_loss"), "mean BCE per epoch"), "loss.png")
    return {
        "final_numpy_loss": records[-1]["numpy_loss"],
        "final_jax_loss": records[-1]["jax_loss"],
        "max_loss_curve_gap": curve_gap,
        "max_param_difference": max_param_diff,
        "test_accuracy": test_accuracy,
        "numpy_seconds_per_epoch": np_seconds / config.epochs,
        "jax_seconds_per_epoch": jax_seconds / config.epochs,
        "jax_compile_seconds": compile_seconds,
        "train_examples": int(X.shape[1]),
    }


EXPERIMENT = Experiment(
    name="scratch-mlp",
    description="tutorial 3: NumPy MLP with hand-written backprop vs the same in JAX, same init and batches",
    config=Config,
    run=run,
    smallest=("epochs=3",),
    claims=(
        Run(name="scratch-mlp", claims=(
            Claim(source="tutorial 3", statement="hand-written backprop in NumPy against the same network in JAX: "
                  "largest loss-curve gap", tutorial="(same maths)", metric="max_loss_curve_gap", fmt="{:.2g}",
                  target=at_most(1e-6, "<= 1e-6")),
        )),
    ),
)  # fmt: skip
