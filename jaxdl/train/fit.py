"""The fit loop: compiled epochs, history, checkpoints, resume, early stopping, NaN guard."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from jaxdl.errors import JaxdlError
from jaxdl.progress import progress_bar
from jaxdl.rundir import RunDir
from jaxdl.train.checkpoint import Checkpoints
from jaxdl.train.state import TrainState
from jaxdl.train.steps import EpochFns, averages, make_epoch_fns
from jaxdl.train.task import Task


@dataclasses.dataclass
class FitResult:
    state: TrainState
    history: list[dict[str, Any]]  # one record per epoch run (resumed runs include earlier ones)
    epochs_run: int
    stopped_early: bool
    compile_seconds: float  # train and eval epochs, ahead of time
    train_seconds: float  # training epochs only, compile excluded (this process's epochs)
    examples_per_second: float  # training examples per train_seconds
    fns: EpochFns


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


def fit(
    task: Task,
    state: TrainState,
    train_data: dict[str, np.ndarray],
    *,
    epochs: int,
    batch_size: int,
    key: jax.Array,
    val_data: dict[str, np.ndarray] | None = None,
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
      train_data: host arrays with examples on the leading axis ("inputs", "labels", ...).
      epochs: total epochs, counting those of a resumed run.
      batch_size: examples per step; the last partial batch is dropped.
      key: raw PRNG key for shuffling; epoch e shuffles with ``fold_in(key, e)``.
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
    n_train = len(next(iter(train_data.values())))
    if n_train < batch_size:
        raise JaxdlError(f"batch_size {batch_size} is larger than the {n_train} training examples")
    fns = make_epoch_fns(task, batch_size, n_train, mesh=mesh)
    data = fns.place_train(train_data)
    val = fns.place(val_data) if val_data is not None else None

    checkpoints = Checkpoints(run_dir.path / "checkpoints", keep_checkpoints) if run_dir else None
    history: list[dict[str, Any]] = []
    tracker = {"best_val_loss": math.inf, "best_epoch": 0, "bad_epochs": 0}
    start = 1
    if resume:
        latest = checkpoints.latest() if checkpoints else None
        if latest is None:
            raise JaxdlError(f"--resume: no checkpoint in {run_dir.path if run_dir else '(no run directory)'}")
        state, record = checkpoints.restore(latest, state)
        history, tracker, start = record["history"], record["tracker"], latest + 1
        # history.jsonl may hold an epoch that ran after the last checkpoint: rewrite it.
        run_dir.write_text("history.jsonl", "".join(_json_line(r) for r in history))
        log(f"resumed from the checkpoint of epoch {latest} in {checkpoints.directory}")
    state = fns.place(state)

    def epoch_key(epoch: int) -> jax.Array:
        return fns.place(jax.random.fold_in(key, epoch))

    start_compile = time.perf_counter()
    train_epoch = fns.train.lower(state, data, epoch_key(start)).compile()
    evaluate = fns.evaluate.lower(state, val).compile() if val is not None else None
    compile_seconds = time.perf_counter() - start_compile

    train_seconds, stopped_early, epochs_run = 0.0, False, 0
    with progress_bar(epochs - start + 1, "training", unit="epoch") as bar:
        for epoch in range(start, epochs + 1):
            t0 = time.perf_counter()
            state, step_sums = train_epoch(state, data, epoch_key(epoch))
            step_sums = jax.device_get(step_sums)
            seconds = time.perf_counter() - t0
            _check_finite(step_sums, epoch, checkpoints)
            train_seconds += seconds
            epochs_run += 1
            record = {"epoch": epoch, **{f"train_{k}": v for k, v in averages(step_sums).items()}}
            if evaluate is not None:
                record.update({f"val_{k}": v for k, v in averages(evaluate(state, val)).items()})
            examples = fns.steps_per_epoch * batch_size
            record.update(seconds=seconds, examples_per_second=examples / seconds)
            history.append(record)
            if run_dir:
                run_dir.append_history([record])
            bar.clear()
            log(_epoch_line(record, epochs))

            if val is not None and patience is not None:
                if record["val_loss"] < tracker["best_val_loss"]:
                    tracker = {"best_val_loss": record["val_loss"], "best_epoch": epoch, "bad_epochs": 0}
                else:
                    tracker["bad_epochs"] += 1
            if checkpoints:
                checkpoints.save(epoch, state, {"epoch": epoch, "history": history, "tracker": tracker})
            bar.update()
            if patience is not None and tracker["bad_epochs"] >= patience:
                log(
                    f"early stopping: validation loss has not improved for {patience} epochs "
                    f"(best {tracker['best_val_loss']:.4f} at epoch {tracker['best_epoch']})"
                )
                stopped_early = True
                break
    if checkpoints:
        checkpoints.close()
    examples_per_second = epochs_run * fns.steps_per_epoch * batch_size / max(train_seconds, 1e-12)
    return FitResult(
        state=state,
        history=history,
        epochs_run=epochs_run,
        stopped_early=stopped_early,
        compile_seconds=compile_seconds,
        train_seconds=train_seconds,
        examples_per_second=examples_per_second,
        fns=fns,
    )


def _json_line(record: dict[str, Any]) -> str:
    import json

    return json.dumps(record) + "\n"


def _check_finite(step_sums: dict[str, np.ndarray], epoch: int, checkpoints: Checkpoints | None) -> None:
    losses = np.asarray(step_sums["loss"]) / np.maximum(np.asarray(step_sums["count"]), 1)
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        kept = checkpoints.latest() if checkpoints else None
        where = f"the last good checkpoint is epoch {kept}" if kept else "no checkpoint was written yet"
        raise JaxdlError(
            f"the loss became {losses[bad[0]]} at epoch {epoch}, step {bad[0] + 1}; {where}; "
            "lower the learning rate or clip gradients"
        )
