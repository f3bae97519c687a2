"""Instruments for watching a network learn: per-layer statistics and TensorBoard event files.

After chosen epochs, :class:`Instruments` runs the model once on a fixed probe
batch of training data, in training mode, and measures each layer as
Karpathy's makemore lecture on batch norm does:

- each module's output (a layer's activations): mean, standard deviation, and
  the fraction of its features that are <= 0 for every example of the batch
  (units a ReLU would keep dead), with a histogram;
- each parameterised module: the norm of the loss gradient, and the ratio of
  the optimizer's update to the parameters (about 1e-3 is healthy; much larger
  means the learning rate is too high, much smaller that the layer barely
  learns), with a histogram of the gradients.

It is a :func:`jaxdl.train.fit` callback: the figures go into that epoch's
history record under ``"diagnostics"``, and with a ``tensorboard_dir``, the
record's scalars and these histograms go to TensorBoard event files
(``tensorboard --logdir DIR``) written by tensorboardX, which needs no TensorFlow.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from jaxdl.data.batching import masked_mean
from jaxdl.train.fit import EpochEnd, Hook
from jaxdl.train.state import TrainState
from jaxdl.train.task import Batch, Task

PROBE_SALT = 2**31 - 2  # the probe's dropout and augmentation keys: never a training step's
HISTOGRAM_BINS = 64


def _histogram(values: jax.Array) -> dict[str, jax.Array]:
    """What TensorBoard's raw histogram takes, computed on the device (a layer can hold millions of values)."""
    values = values.reshape(-1).astype(jnp.float32)
    lo, hi = jnp.min(values), jnp.max(values)
    counts, edges = jnp.histogram(values, HISTOGRAM_BINS, range=(lo, jnp.maximum(hi, lo + 1e-6)))
    return {
        "min": lo, "max": hi, "num": values.size, "sum": jnp.sum(values), "sum_squares": jnp.sum(values**2),
        "bucket_limits": edges[1:], "bucket_counts": counts,
    }  # fmt: skip


def _activation_stats(y: jax.Array) -> dict[str, jax.Array]:
    rows = y.reshape(-1, y.shape[-1]).astype(jnp.float32)  # (examples x positions, features)
    return {
        "mean": jnp.mean(rows),
        "std": jnp.std(rows),
        "dead_fraction": jnp.mean(jnp.all(rows <= 0, axis=0)),
    }


def _norm(tree: Any) -> jax.Array:
    return optax.tree.norm(tree)


def _activations(task: Task, state: TrainState, batch: Batch, key: jax.Array) -> dict[str, jax.Array]:
    """Each layer's output on ``batch`` in training mode (Flax's captured intermediates), by layer name."""
    data_key, dropout_key, sample_key = jax.random.split(key, 3)
    pre = task.preprocess(batch, data_key, True)
    keywords = {name: pre[name] for name in task.keyword_inputs}
    variables = {"params": state.params, **({"batch_stats": state.batch_stats} if state.batch_stats else {})}
    _, captured = task.model.apply(
        variables, pre["inputs"], **keywords, train=True, capture_intermediates=True,
        rngs={"dropout": dropout_key, "sample": sample_key}, mutable=["intermediates", "batch_stats"],
    )  # fmt: skip
    activations = {}
    for path, calls in traverse_util.flatten_dict(captured["intermediates"]).items():
        name = "/".join(path[:-1])  # (..., "conv1", "__call__") -> "conv1"
        # One output per call. A layer called on each group of the batch (the CNN's convolutions), or
        # returning a list of groups (its batch norms), has the batch's activations in pieces; a tuple
        # (the VAE encoder's mean and log-variance) is not one activation.
        pieces = [piece for output in calls for piece in (output if isinstance(output, list) else [output])]
        if (
            name
            and not path[-2].startswith("Dropout")
            and all(isinstance(piece, jax.Array) and piece.ndim >= 2 for piece in pieces)
        ):
            activations[name] = jnp.concatenate(pieces)
    return activations


def layer_statistics(task: Task, state: TrainState, batch: Batch, histograms: bool = True) -> tuple[dict, dict]:
    """``(statistics, histograms)`` of every layer on ``batch`` (see the module docstring); jit it.

    ``statistics`` is ``{"activations": {layer: {mean, std, dead_fraction}},
    "parameters": {module: {grad_norm, param_norm, update_ratio}}}``; ``histograms``
    maps ``"activations/LAYER"`` and ``"gradients/MODULE"`` to raw histograms
    (empty unless asked for: they add much to the compile time, see
    docs/performance.md). Nothing in ``state`` changes.

    Args:
      task: the task being trained; its model is run in training mode.
      state: the current TrainState: parameters, batch statistics, optimizer
        state (for the update ratio) and key (the probe's keys derive from it).
      batch: a raw batch with ``"mask"``; :class:`Instruments` passes its
        fixed probe batch, so epochs are measured on the same examples.
      histograms: whether to compute the histograms too.

    Returns:
      ``(statistics, histograms)`` as above, device arrays (scalars in
      ``statistics``).
    """
    key = jax.random.fold_in(state.key, PROBE_SALT)
    activations = _activations(task, state, batch, key)

    def loss(params):
        losses, _, _ = task.forward(params, state.batch_stats, batch, key, train=True)
        return masked_mean(losses, batch["mask"])

    grads = jax.grad(loss)(state.params)
    updates, _ = state.tx.update(grads, state.opt_state, state.params)
    parameters = {}
    histogram_of = _histogram if histograms else lambda values: None
    histograms = {f"activations/{name}": histogram_of(y) for name, y in activations.items()}
    for module in state.params:
        param_norm = _norm(state.params[module])
        parameters[module] = {
            "grad_norm": _norm(grads[module]),
            "param_norm": param_norm,
            "update_ratio": _norm(updates[module]) / jnp.maximum(param_norm, 1e-12),
        }
        histograms[f"gradients/{module}"] = histogram_of(
            jnp.concatenate([g.ravel() for g in jax.tree.leaves(grads[module])])
        )
    statistics = {"activations": {k: _activation_stats(v) for k, v in activations.items()}, "parameters": parameters}
    return statistics, {k: v for k, v in histograms.items() if v is not None}


class Instruments(Hook):
    """A :func:`jaxdl.train.fit` hook: layer statistics after every ``every``-th epoch, and TensorBoard.

    Args:
      task: the task being trained.
      probe: a fixed batch of training examples (host arrays, examples on the
        leading axis), e.g. ``{"inputs": x[:100], "labels": y[:100]}``.
      every: measure after epochs ``every``, ``2 * every``, ... (0: never; TensorBoard then
        gets only the scalars).
      tensorboard_dir: where the event files go (None: no TensorBoard).

    Example:
      >>> instruments = Instruments(task, train.arrays(100), tensorboard_dir="runs/x/tensorboard")
      >>> result = fit(task, state, train, epochs=5, batch_size=100, key=key, hooks=[instruments])
      >>> instruments.close()
      >>> jaxdl.plots.diagnostics(result.history)
    """

    def __init__(self, task: Task, probe: Mapping[str, np.ndarray], *, every: int = 1, tensorboard_dir=None):
        if every < 0:
            raise ValueError(f"every must be >= 0, got {every}")
        self.probe = {**{k: np.asarray(v) for k, v in probe.items()}, "mask": np.ones(len(probe["labels"]), bool)}
        self.every = every
        self._statistics = jax.jit(functools.partial(layer_statistics, task, histograms=tensorboard_dir is not None))
        self.writer = None
        if tensorboard_dir is not None:
            from tensorboardX import SummaryWriter  # imported only when asked for

            Path(tensorboard_dir).mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(tensorboard_dir))

    def after_epoch(self, end: EpochEnd) -> None:
        """Measures the layers when the epoch is due and writes the record's scalars.

        Args:
          end: the finished epoch; its ``record`` gets ``"diagnostics"`` (the
            statistics of :func:`layer_statistics`, as floats) on measured
            epochs.
        """
        epoch, extra = end.epoch, {}
        if self.every and epoch % self.every == 0:
            statistics, histograms = jax.device_get(self._statistics(end.state, self.probe))
            extra["diagnostics"] = jax.tree.map(float, statistics)
            if self.writer is not None:
                for tag, h in histograms.items():
                    self.writer.add_histogram_raw(
                        tag, float(h["min"]), float(h["max"]), int(h["num"]), float(h["sum"]),
                        float(h["sum_squares"]), h["bucket_limits"].tolist(), h["bucket_counts"].tolist(), epoch,
                    )  # fmt: skip
        end.record.update(extra)
        self.write_scalars(end.record, epoch)

    def write_scalars(self, record: Mapping[str, Any], step: int) -> None:
        """Every number in ``record`` (nested dicts as ``a/b/c`` tags) as a TensorBoard scalar at ``step``.

        Does nothing without a ``tensorboard_dir``. Booleans and the
        ``"epoch"`` entry are skipped.

        Args:
          record: an epoch's history record (losses, metrics, diagnostics).
          step: the x-axis value, the epoch number for :func:`fit` records.
        """
        if self.writer is None:
            return
        for tag, value in traverse_util.flatten_dict(dict(record), sep="/").items():
            if isinstance(value, int | float) and not isinstance(value, bool) and tag != "epoch":
                self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        """Flushes and closes the TensorBoard writer, if there is one."""
        if self.writer is not None:
            self.writer.close()
