"""The fit loop: compiled epochs, history, checkpoints, resume, early stopping, NaN guard."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import chex
import jax
import numpy as np
from jax.sharding import Mesh

from jaxdl.data.dataset import Dataset, as_arrays
from jaxdl.errors import JaxdlError
from jaxdl.progress import progress_bar
from jaxdl.rundir import RunDir
from jaxdl.train.checkpoint import Checkpoints
from jaxdl.train.state import TrainState, raw_key
from jaxdl.train.steps import EpochFns, averages, make_epoch_fns
from jaxdl.train.task import Task


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
      state: the TrainState after the last epoch run.
      history: one record per epoch (a resumed run includes the earlier ones):
        ``epoch``, ``train_loss`` and the task's other ``train_*`` metrics,
        ``val_*`` with validation data, ``seconds`` and ``examples_per_second``.
      epochs_run: epochs trained by this call.
      stopped_early: early stopping ended the run.
      compile_seconds: compiling the train and evaluation epochs, ahead of time.
      train_seconds: this call's training epochs, compilation excluded.
      examples_per_second: training examples per ``train_seconds``.
      fns: the compiled epoch functions.
      step_losses: the mean training loss of each step this call ran (resumed epochs excluded).
    """

    state: TrainState
    history: list[dict[str, Any]]
    epochs_run: int
    stopped_early: bool
    compile_seconds: float
    train_seconds: float
    examples_per_second: float
    fns: EpochFns
    step_losses: np.ndarray  # the mean training loss of every step this call ran

    def evaluate(self, data: dict[str, np.ndarray] | Dataset) -> dict[str, float]:
        """The trained state's per-example averages on ``data`` (e.g. ``{"loss", "accuracy"}``), exact
        over every example: no dropout, batch norm's running statistics, a masked last batch."""
        return averages(self.fns.evaluate(self.state, self.fns.place(as_arrays(data))))


@dataclasses.dataclass
class EarlyStopping:
    """Stops after ``patience`` epochs without a lower validation loss (None: never).

    Saved with every checkpoint, so a resumed run stops where an uncut one would.
    """

    patience: int | None = None
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, epoch: int, val_loss: float) -> bool:
        """Records an epoch's validation loss; True if training should stop."""
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
        else:
            self.bad_epochs += 1
        return self.patience is not None and self.bad_epochs >= self.patience


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}"]
    for split in ("train", "val"):
        if f"{split}_loss" in record:
            text = f"{split} loss {record[f'{split}_loss']:.4f}"
            if f"{split}_accuracy" in record:
                text += f" acc {100 * record[f'{split}_accuracy']:.2f}%"
            parts.append(text)
    parts.append(f"{record['seconds']:.1f} s ({record['examples_per_second']:.0f} ex/s)")
    return "  ".join(parts)


def _resume(
    checkpoints: Checkpoints | None, state: TrainState, run_dir: RunDir | None, stopping: EarlyStopping
) -> tuple[TrainState, list[dict[str, Any]], EarlyStopping, int]:
    """The newest checkpoint's state, history and early-stopping record, and the epoch to start at."""
    latest = checkpoints.latest() if checkpoints else None
    if latest is None:
        where = run_dir.path if run_dir else "(no run directory)"
        raise JaxdlError(f"{{resume}}: no checkpoint in {where}")
    state, record = checkpoints.restore(latest, state)
    stopping = dataclasses.replace(stopping, **{k: v for k, v in record["early_stopping"].items() if k != "patience"})
    # history.jsonl may hold an epoch that ran after the last checkpoint: rewrite it.
    run_dir.write_history(record["history"])
    return state, record["history"], stopping, latest + 1


def fit(
    task: Task,
    state: TrainState,
    train_data: dict[str, np.ndarray] | Dataset,
    *,
    epochs: int,
    batch_size: int,
    key: jax.Array,
    val_data: dict[str, np.ndarray] | Dataset | None = None,
    run_dir: RunDir | None = None,
    keep_checkpoints: int = 3,
    patience: int | None = None,
    resume: bool = False,
    mesh: Mesh | None = None,
    log: Callable[[str], None] = print,
) -> FitResult:
    """Trains ``state`` for ``epochs`` epochs, one compiled ``lax.scan`` per epoch.

    Args:
      task: the model, loss and preprocessing.
      state: the initial TrainState (also the shape a resumed state is restored into).
      train_data: a Dataset, or host arrays with examples on the leading axis
        ("inputs", "labels", ...).
      epochs: total epochs, counting those of a resumed run.
      batch_size: examples per step; the last partial batch is dropped.
      key: PRNG key for shuffling (typed or raw); epoch e shuffles with ``fold_in(key, e)``.
      val_data: evaluated after every epoch; early stopping watches its loss.
      run_dir: where history.jsonl and checkpoints/ go (None: neither).
      keep_checkpoints: newest checkpoints kept, one per epoch.
      patience: stop after this many epochs without a lower validation loss (None: never).
      resume: continue from the newest checkpoint in ``run_dir``.
      mesh: the devices each batch is split over (default: every device JAX sees);
        ``batch_size`` must divide over it.
      log: where the per-epoch line goes.

    Returns:
      A :class:`FitResult`.

    Raises:
      JaxdlError: the loss became NaN or infinite (the message names the epoch
        and step; earlier checkpoints are kept), or there is nothing to resume.
    """
    train_data = as_arrays(train_data)
    val_data = as_arrays(val_data)
    key = raw_key(key)
    chex.assert_equal_shape_prefix(list(train_data.values()), 1)  # one example per row in every array
    n_train = len(next(iter(train_data.values())))
    if n_train < batch_size:
        raise JaxdlError(f"batch_size {batch_size} is larger than the {n_train} training examples")
    if patience is not None and val_data is None:
        raise JaxdlError("early stopping (patience) needs val_data to watch")
    fns = make_epoch_fns(task, batch_size, n_train, mesh=mesh)
    data = fns.place_train(train_data)
    val = fns.place(val_data) if val_data is not None else None

    checkpoints = Checkpoints(run_dir.path / "checkpoints", keep_checkpoints) if run_dir else None
    history: list[dict[str, Any]] = []
    stopping = EarlyStopping(patience)
    start = 1
    if resume:
        state, history, stopping, start = _resume(checkpoints, state, run_dir, stopping)
        log(f"resumed from the checkpoint of epoch {start - 1} in {checkpoints.directory}")
    state = fns.place(state)

    def epoch_key(epoch: int) -> jax.Array:
        return fns.place(jax.random.fold_in(key, epoch))

    start_compile = time.perf_counter()
    train_epoch = fns.train.lower(state, data, epoch_key(start)).compile()
    evaluate = fns.evaluate.lower(state, val).compile() if val is not None else None
    compile_seconds = time.perf_counter() - start_compile

    train_seconds, stopped_early, epochs_run, step_losses = 0.0, False, 0, []
    with progress_bar(epochs - start + 1, "training", unit="epoch") as bar:
        for epoch in range(start, epochs + 1):
            t0 = time.perf_counter()
            state, step_sums = train_epoch(state, data, epoch_key(epoch))
            step_sums = jax.device_get(step_sums)
            seconds = time.perf_counter() - t0
            step_losses.append(_check_finite(step_sums, epoch, checkpoints))
            train_seconds += seconds
            epochs_run += 1
            record = {"epoch": epoch, **{f"train_{k}": v for k, v in averages(step_sums).items()}}
            if evaluate is not None:
                record.update({f"val_{k}": v for k, v in averages(evaluate(state, val)).items()})
            record.update(seconds=seconds, examples_per_second=fns.steps_per_epoch * batch_size / seconds)
            history.append(record)
            if run_dir:
                run_dir.append_history([record])
            bar.clear()
            log(_epoch_line(record, epochs))
            stop = val is not None and stopping.update(epoch, record["val_loss"])
            if checkpoints:
                record_so_far = {"epoch": epoch, "history": history, "early_stopping": dataclasses.asdict(stopping)}
                checkpoints.save(epoch, state, record_so_far)
            bar.update()
            if stop:
                log(
                    f"early stopping: validation loss has not improved for {patience} epochs "
                    f"(best {stopping.best_loss:.4f} at epoch {stopping.best_epoch})"
                )
                stopped_early = True
                break
    if checkpoints:
        checkpoints.close()
    return FitResult(
        state=state,
        history=history,
        epochs_run=epochs_run,
        stopped_early=stopped_early,
        compile_seconds=compile_seconds,
        train_seconds=train_seconds,
        examples_per_second=epochs_run * fns.steps_per_epoch * batch_size / max(train_seconds, 1e-12),
        fns=fns,
        step_losses=np.concatenate(step_losses) if step_losses else np.zeros(0),
    )


def _check_finite(step_sums: dict[str, np.ndarray], epoch: int, checkpoints: Checkpoints | None) -> np.ndarray:
    """The epoch's per-step mean losses; JaxdlError naming the first step whose loss is not finite."""
    losses = np.asarray(step_sums["loss"]) / np.maximum(np.asarray(step_sums["count"]), 1)
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        kept = checkpoints.latest() if checkpoints else None
        where = f"the last good checkpoint is epoch {kept}" if kept else "no checkpoint was written yet"
        raise JaxdlError(
            f"the loss became {losses[bad[0]]} at epoch {epoch}, step {bad[0] + 1}; {where}; "
            "lower the learning rate or clip gradients"
        )
    return losses
