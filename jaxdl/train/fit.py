"""The fit loop: epochs in compiled chunks, history, checkpoints, resume, early stopping, NaN guard, signals."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import chex
import jax
import numpy as np
from jax.sharding import Mesh

from jaxdl.data.dataset import Dataset, as_arrays
from jaxdl.errors import JaxdlError, Stopped
from jaxdl.progress import progress_bar
from jaxdl.rundir import RunDir
from jaxdl.train.checkpoint import Checkpoints, DamagedCheckpoint
from jaxdl.train.replicas import check_memory
from jaxdl.train.signals import StopRequests
from jaxdl.train.state import TrainState, raw_key
from jaxdl.train.steps import EpochFns, averages, make_epoch_fns, replica_averages
from jaxdl.train.task import Task

# (epoch, state after it, its history record) -> entries to add to the record, or None
EpochCallback = Callable[[int, TrainState, dict[str, Any]], dict[str, Any] | None]


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
      compile_seconds: compiling the train steps and evaluation epoch, ahead of time.
      train_seconds: this call's training epochs, compilation excluded.
      examples_per_second: training examples per ``train_seconds``.
      fns: the compiled epoch functions.
      step_losses: the mean training loss of each step of the epochs this call finished
        (``(steps, R)`` with replicas).
      diverged: with replicas, which replicas' losses stopped being finite (they are
        frozen and left out of the history's means); None for one run.
    """

    state: TrainState
    history: list[dict[str, Any]]
    epochs_run: int
    stopped_early: bool
    compile_seconds: float
    train_seconds: float
    examples_per_second: float
    fns: EpochFns
    step_losses: np.ndarray
    diverged: np.ndarray | None = None

    def evaluate(self, data: dict[str, np.ndarray] | Dataset) -> dict[str, Any]:
        """The trained state's per-example averages on ``data`` (e.g. ``{"loss", "accuracy"}``), exact
        over every example: no dropout, batch norm's running statistics, a masked last batch.
        With replicas, each value is an ``(R,)`` array, one per replica."""
        sums = self.fns.evaluate(self.state, self.fns.place(as_arrays(data)))
        return averages(sums) if self.fns.replicas is None else replica_averages(sums)

    def predict(self, data: dict[str, np.ndarray] | Dataset) -> np.ndarray:
        """The trained model's outputs (a classifier's logits) for every example of ``data``, in order,
        as at evaluation: no dropout, batch norm's running statistics (``(R, n, ...)`` with replicas)."""
        return np.asarray(self.fns.predict(self.state, self.fns.place(as_arrays(data))))


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
    if "replicas" in record:
        parts[0] += f" (mean of {record['replicas_counted']} replicas)"
    for split in ("train", "val"):
        if f"{split}_loss" in record:
            text = f"{split} loss {record[f'{split}_loss']:.4f}"
            if f"{split}_accuracy" in record:
                text += f" acc {100 * record[f'{split}_accuracy']:.2f}%"
            parts.append(text)
    parts.append(f"{record['seconds']:.1f} s ({record['examples_per_second']:.0f} ex/s)")
    return "  ".join(parts)


class ChunkSizer:
    """How many steps the next compiled chunk runs, so that a chunk lasts about ``seconds``.

    The first chunk is one step; each later one is sized from the last one's
    measured seconds per step (growing at most 8x at a time), within 1 and the
    epoch's steps. A stop request waits at most about one chunk.
    """

    def __init__(self, seconds: float, steps_per_epoch: int):
        self.seconds, self.steps_per_epoch, self.size = seconds, steps_per_epoch, 1

    def observe(self, steps: int, seconds: float) -> None:
        if steps < self.size:  # an epoch's short last chunk: mostly dispatch overhead, a poor estimate
            return
        per_step = max(seconds, 1e-9) / steps
        self.size = int(min(max(1, self.seconds / per_step), 8 * self.size, self.steps_per_epoch))


def _same(size: int, stop: bool) -> tuple[int, bool]:
    return size, stop


def agree_across_processes(size: int, stop: bool) -> tuple[int, bool]:
    """Every process of a multi-process run must run the same chunks (their steps hold collectives):
    process 0's chunk size, and a stop if any process was asked to stop."""
    from jax.experimental import multihost_utils

    rows = np.asarray(multihost_utils.process_allgather(np.array([size, int(stop)], np.int32)))
    return int(rows[0, 0]), bool(rows[:, 1].any())


def train_in_chunks(
    train_steps: Callable,
    state: TrainState,
    data: dict[str, jax.Array],
    batches: tuple[jax.Array, jax.Array],
    sums: dict[str, jax.Array],
    done: int,
    chunks: ChunkSizer,
    stop: Callable[[], bool] = lambda: False,
    agree: Callable[[int, bool], tuple[int, bool]] = _same,
) -> tuple[TrainState, dict[str, jax.Array], int, float]:
    """Runs an epoch's steps from ``done`` on, a chunk at a time, until the epoch ends or ``stop()``.

    After each chunk, ``agree(next chunk size, stop())`` settles both for every process
    (:func:`agree_across_processes` in a multi-process run). Returns the state, the
    per-step sums, the steps of the epoch now done and the seconds the chunks took
    (each blocked until finished).
    """
    seconds = 0.0
    while done < chunks.steps_per_epoch:
        until = min(done + chunks.size, chunks.steps_per_epoch)
        t0 = time.perf_counter()
        state, sums = train_steps(state, data, batches, sums, np.int32(done), np.int32(until))
        jax.block_until_ready(sums)
        chunks.observe(until - done, time.perf_counter() - t0)
        seconds += time.perf_counter() - t0
        done = until
        chunks.size, stopping = agree(chunks.size, stop())
        if stopping:
            break
    return state, sums, done, seconds


@dataclasses.dataclass
class _Position:
    """Where a run resumes: the epoch, steps of it already done, and their per-step sums."""

    epoch: int = 1
    steps_done: int = 0
    step_sums: dict[str, np.ndarray] | None = None


def _resume(
    checkpoints: Checkpoints | None,
    state: TrainState,
    run_dir: RunDir | None,
    stopping: list[EarlyStopping],
    steps_per_epoch: int,
    log: Callable[[str], None],
) -> tuple[TrainState, list[dict[str, Any]], list[EarlyStopping], _Position, dict[str, Any]]:
    """The newest good checkpoint's state, history, early-stopping record and position.

    A damaged checkpoint is reported and moved aside (to ``checkpoints-damaged/``)
    once an older good one is found; if none is good, nothing is moved.
    """
    steps = checkpoints.steps() if checkpoints else []
    if not steps:
        where = run_dir.path if run_dir else "(no run directory)"
        raise JaxdlError(f"{{resume}}: no checkpoint in {where}")
    damaged = []
    for step in steps:
        try:
            state, record = checkpoints.restore(step, state)
        except DamagedCheckpoint as e:
            log(f"checkpoint {step} in {checkpoints.directory} is damaged ({e})")
            damaged.append(step)
            continue
        for bad in damaged:
            log(f"moved the damaged checkpoint {bad} to {checkpoints.set_aside(bad)}; resuming from checkpoint {step}")
        break
    else:
        raise JaxdlError(
            f"{{resume}}: every checkpoint in {checkpoints.directory} is damaged "
            f"(steps {', '.join(map(str, steps))}); start again with {{overwrite}}"
        )
    saved = record["early_stopping"]
    saved = saved if isinstance(saved, list) else [saved]  # one run's record is one dict
    stopping = [
        dataclasses.replace(s, **{k: v for k, v in r.items() if k != "patience"})
        for s, r in zip(stopping, saved, strict=True)
    ]
    # history.jsonl may hold an epoch that ran after this checkpoint: rewrite it.
    run_dir.write_history(record["history"])
    done = record.get("steps_done", steps_per_epoch)
    if done >= steps_per_epoch:
        position = _Position(record["epoch"] + 1)
    else:  # saved mid-epoch: finish that epoch from its next step
        sums = {k: np.asarray(v[0], dtype=v[1]) for k, v in record["step_sums"].items()}
        position = _Position(record["epoch"], done, sums)
    log(f"resumed from checkpoint {step} ({_where(record['epoch'], done, steps_per_epoch)}) in {checkpoints.directory}")
    return state, record["history"], stopping, position, record


def _where(epoch: int, done: int, steps_per_epoch: int) -> str:
    return f"end of epoch {epoch}" if done >= steps_per_epoch else f"epoch {epoch}, step {done} of {steps_per_epoch}"


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
    chunk_seconds: float = 10.0,
    callbacks: Sequence[EpochCallback] = (),
    log: Callable[[str], None] = print,
) -> FitResult:
    """Trains ``state`` for ``epochs`` epochs, in compiled chunks of steps.

    Each epoch runs as compiled chunks of about ``chunk_seconds`` (a whole epoch
    when it is shorter); the result is bitwise the same however it is chunked.
    With a ``run_dir``, SIGTERM or Ctrl-C stops the run at the end of the chunk
    under way: it saves a checkpoint of that step (with the epoch's partial
    metrics), and raises :class:`jaxdl.errors.Stopped`; ``resume=True`` then
    finishes the same epoch and ends bitwise equal to an uninterrupted run.

    Args:
      task: the model, loss and preprocessing.
      state: the initial TrainState (also the shape a resumed state is restored into).
      train_data: a Dataset, or host arrays with examples on the leading axis
        ("inputs", "labels", ...).
      epochs: total epochs, counting those of a resumed run.
      batch_size: examples per step; the last partial batch is dropped.
      key: PRNG key for shuffling (typed or raw); epoch e shuffles with ``fold_in(key, e)``.
        One key per replica (``(R, 2)`` raw, or ``(R,)`` typed) trains a stacked state of R
        replicas (:func:`jaxdl.train.init_replicas`) in one vmapped program: early stopping
        and the NaN guard then act per replica, and callbacks receive the stacked state.
      val_data: evaluated after every epoch; early stopping watches its loss.
      run_dir: where history.jsonl and checkpoints/ go (None: neither, and
        signals keep their usual effect).
      keep_checkpoints: newest checkpoints kept: one per epoch, plus one on a stop.
      patience: stop after this many epochs without a lower validation loss (None: never).
      resume: continue from the newest good checkpoint in ``run_dir``.
      mesh: the devices each batch is split over (default: every device JAX sees);
        ``batch_size`` must divide over it.
      chunk_seconds: the longest a stop request waits for the steps under way.
      callbacks: each is called after every epoch as ``callback(epoch, state, record)``
        and may return entries to add to the epoch's history record
        (:class:`jaxdl.train.instruments.Instruments` adds layer statistics).
      log: where the per-epoch line goes.

    Returns:
      A :class:`FitResult`.

    Raises:
      JaxdlError: the loss became NaN or infinite (the message names the epoch
        and step; earlier checkpoints are kept), or there is nothing to resume.
      Stopped: a signal stopped the run after its checkpoint was saved.
    """
    train_data = as_arrays(train_data)
    val_data = as_arrays(val_data)
    key = raw_key(key)
    replicas = None if key.ndim == 1 else key.shape[0]
    if replicas is not None and np.shape(state.step) != (replicas,):
        raise JaxdlError(f"{replicas} shuffling keys for a state of {np.shape(state.step)} replicas (init_replicas)")
    chex.assert_equal_shape_prefix(list(train_data.values()), 1)  # one example per row in every array
    n_train = len(next(iter(train_data.values())))
    if n_train < batch_size:
        raise JaxdlError(f"batch_size {batch_size} is larger than the {n_train} training examples")
    if patience is not None and val_data is None:
        raise JaxdlError("early stopping (patience) needs val_data to watch")
    fns = make_epoch_fns(task, batch_size, n_train, mesh=mesh, replicas=replicas)
    steps_per_epoch = fns.steps_per_epoch
    data = fns.place_train(train_data)
    val = fns.place(val_data) if val_data is not None else None

    checkpoints = Checkpoints(run_dir.path / "checkpoints", keep_checkpoints) if run_dir else None
    history: list[dict[str, Any]] = []
    stopping = [EarlyStopping(patience) for _ in range(replicas or 1)]
    # Replicas only: which still train (not stopped early, not diverged), and which diverged.
    active, diverged = np.ones(replicas or 1, bool), np.zeros(replicas or 1, bool)
    position = _Position()
    if resume:
        state, history, stopping, position, saved = _resume(checkpoints, state, run_dir, stopping, steps_per_epoch, log)
        active = np.asarray(saved.get("active", active), bool)
        diverged = np.asarray(saved.get("diverged", diverged), bool)
    state = fns.place_state(state)

    def epoch_batches(epoch: int) -> tuple[jax.Array, ...]:
        if replicas is None:
            return fns.batches(jax.random.fold_in(key, epoch))
        return fns.batches(jax.vmap(jax.random.fold_in, (0, None))(key, epoch), active)

    def save(epoch: int, done: int, step_sums: dict[str, np.ndarray] | None = None) -> int:
        step = (epoch - 1) * steps_per_epoch + done
        early = [dataclasses.asdict(s) for s in stopping]
        record = {"epoch": epoch, "steps_done": done, "history": history,
                  "early_stopping": early if replicas else early[0]}  # fmt: skip
        if replicas:
            record.update(active=active.tolist(), diverged=diverged.tolist())
        if step_sums is not None:  # float32 values are exact in JSON's doubles
            record["step_sums"] = {k: [v.tolist(), v.dtype.str] for k, v in step_sums.items()}
        checkpoints.save(step, state, record)
        return step

    start_compile = time.perf_counter()
    zero_sums = fns.zero_sums(state, data)  # on the host: placed afresh for each epoch (the loop donates them)
    train_steps = fns.train_steps.lower(state, data, epoch_batches(1), fns.place(zero_sums), np.int32(0), np.int32(1))
    train_steps = train_steps.compile()
    if replicas:  # before training: XLA knows what the program needs
        check_memory(_compiled_bytes(train_steps), f"{replicas} replicas")
    evaluate = fns.evaluate.lower(state, val).compile() if val is not None else None
    compile_seconds = time.perf_counter() - start_compile

    def finite_losses(step_sums: dict[str, np.ndarray], epoch: int, trained: np.ndarray) -> np.ndarray:
        if replicas is None:
            return _check_finite(step_sums, epoch, checkpoints)
        return _check_replicas(step_sums, epoch, checkpoints, trained, active, diverged, log)

    chunks = ChunkSizer(chunk_seconds, steps_per_epoch)
    agree = agree_across_processes if jax.process_count() > 1 else _same
    train_seconds, stopped_early, epochs_run, steps_run, step_losses = 0.0, False, 0, 0, []
    with (
        progress_bar(epochs - position.epoch + 1, "training", unit="epoch") as bar,
        StopRequests(enabled=checkpoints is not None) as stop_requests,
    ):
        for epoch in range(position.epoch, epochs + 1):
            done = position.steps_done if epoch == position.epoch else 0
            trained = active.copy()  # the replicas this epoch trains (the others are frozen)
            sums = fns.place(position.step_sums if done else zero_sums)
            first = done
            state, sums, done, epoch_seconds = train_in_chunks(
                train_steps, state, data, epoch_batches(epoch), sums, done, chunks,
                lambda: stop_requests.requested, agree,
            )  # fmt: skip
            epoch_steps = done - first
            if done < steps_per_epoch:  # stopped by a signal
                partial = {k: v[:done] for k, v in jax.device_get(sums).items()}
                finite_losses(partial, epoch, trained)
                step = save(epoch, done, jax.device_get(sums))
                run_dir.write_history(history)  # the finished epochs, even if none
                raise _stopped(stop_requests, step, _where(epoch, done, steps_per_epoch), checkpoints)
            step_sums = jax.device_get(sums)
            step_losses.append(finite_losses(step_sums, epoch, trained))
            train_seconds += epoch_seconds
            steps_run += epoch_steps * (replicas or 1)
            epochs_run += 1
            val_sums = evaluate(state, val) if evaluate is not None else None
            if replicas is None:
                record = {"epoch": epoch, **{f"train_{k}": v for k, v in averages(step_sums).items()}}
                if val_sums is not None:
                    record.update({f"val_{k}": v for k, v in averages(val_sums).items()})
            else:
                previous = history[-1] if history else None
                record = _replica_record(epoch, step_sums, val_sums, ~diverged, trained, previous)
            record.update(
                seconds=epoch_seconds,
                examples_per_second=epoch_steps * (replicas or 1) * batch_size / max(epoch_seconds, 1e-12),
            )
            for callback in callbacks:
                record.update(callback(epoch, state, dict(record)) or {})
            history.append(record)
            if run_dir:
                run_dir.append_history([record])
            bar.clear()
            log(_epoch_line(record, epochs))
            if val is not None:
                val_losses = record["replicas"]["val_loss"] if replicas else [record["val_loss"]]
                for i, (stop, loss) in enumerate(zip(stopping, val_losses, strict=True)):
                    if active[i] and stop.update(epoch, math.inf if loss is None else loss):
                        active[i] = False
                        log(
                            f"early stopping{f' replica {i}' if replicas else ''}: validation loss has not "
                            f"improved for {patience} epochs (best {stop.best_loss:.4f} at epoch {stop.best_epoch})"
                        )
            if checkpoints:
                step = save(epoch, steps_per_epoch)
            bar.update()
            if not active.any():
                stopped_early = True
                break
            if agree(chunks.size, stop_requests.requested)[1] and epoch < epochs:
                raise _stopped(stop_requests, step, _where(epoch, steps_per_epoch, steps_per_epoch), checkpoints)
    if checkpoints:
        checkpoints.close()
    return FitResult(
        state=state,
        history=history,
        epochs_run=epochs_run,
        stopped_early=stopped_early,
        compile_seconds=compile_seconds,
        train_seconds=train_seconds,
        examples_per_second=steps_run * batch_size / max(train_seconds, 1e-12),
        fns=fns,
        step_losses=np.concatenate(step_losses) if step_losses else np.zeros((0, *((replicas,) if replicas else ()))),
        diverged=diverged if replicas else None,
    )


def _compiled_bytes(compiled: Any) -> int:
    """Arguments, outputs and temporaries of a compiled program (0 where XLA does not say)."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return 0
    return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
               - analysis.alias_size_in_bytes)  # fmt: skip


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def _replica_record(
    epoch: int,
    step_sums: dict[str, np.ndarray],
    val_sums: Any,
    counted: np.ndarray,
    trained: np.ndarray,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    """An epoch's record for replicas: each metric's mean over the replicas that have not diverged,
    and every replica's value under ``replicas`` (None where not finite). A replica frozen before
    this epoch keeps its last training figures."""
    per_replica = {f"train_{k}": v for k, v in replica_averages(step_sums).items()}
    if previous is not None and not trained.all():
        for k, v in per_replica.items():
            last = np.array([np.nan if x is None else x for x in previous["replicas"][k]], float)
            per_replica[k] = np.where(trained, v, last)
    if val_sums is not None:
        per_replica.update({f"val_{k}": v for k, v in replica_averages(jax.device_get(val_sums)).items()})
    record: dict[str, Any] = {"epoch": epoch}
    record.update({k: float(np.mean(v[counted])) for k, v in per_replica.items()})
    record["replicas"] = {k: _finite_or_none(v) for k, v in per_replica.items()}
    record["replicas_counted"] = int(counted.sum())
    return record


def _check_replicas(
    step_sums: dict[str, np.ndarray],
    epoch: int,
    checkpoints: Checkpoints | None,
    trained: np.ndarray,
    active: np.ndarray,
    diverged: np.ndarray,
    log: Callable[[str], None],
) -> np.ndarray:
    """The epoch's per-step mean losses ``(steps, R)``. A replica trained this epoch whose loss
    stops being finite is reported, marked diverged and frozen (``active``, ``diverged`` are
    updated in place); the others go on. JaxdlError when no replica is left."""
    losses = np.asarray(step_sums["loss"]) / np.maximum(np.asarray(step_sums["count"]), 1)
    for i in np.flatnonzero(~np.isfinite(losses).all(axis=0) & trained & ~diverged):
        step = int(np.flatnonzero(~np.isfinite(losses[:, i]))[0])
        diverged[i], active[i] = True, False
        log(
            f"replica {i} diverged: its loss became {losses[step, i]} at epoch {epoch}, step {step + 1}; "
            "it is frozen and left out of the means"
        )
    if diverged.all():
        kept = checkpoints.latest() if checkpoints else None
        where = f"the last good checkpoint is step {kept}" if kept else "no checkpoint was written yet"
        raise JaxdlError(
            f"the loss of every replica became non-finite by epoch {epoch}; {where}; "
            "lower the learning rate or clip gradients"
        )
    return losses


def _stopped(requests: StopRequests, step: int, where: str, checkpoints: Checkpoints) -> Stopped:
    checkpoints.close()
    return Stopped(
        f"stopped by {requests.signal_name} at {where}; saved checkpoint {step} in {checkpoints.directory}; "
        "to finish, run the same command with {resume}",
        requests.signal_number,
        str(checkpoints.directory.parent),
    )


def _check_finite(step_sums: dict[str, np.ndarray], epoch: int, checkpoints: Checkpoints | None) -> np.ndarray:
    """The epoch's per-step mean losses; JaxdlError naming the first step whose loss is not finite."""
    losses = np.asarray(step_sums["loss"]) / np.maximum(np.asarray(step_sums["count"]), 1)
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        kept = checkpoints.latest() if checkpoints else None
        where = f"the last good checkpoint is step {kept}" if kept else "no checkpoint was written yet"
        raise JaxdlError(
            f"the loss became {losses[bad[0]]} at epoch {epoch}, step {bad[0] + 1}; {where}; "
            "lower the learning rate or clip gradients"
        )
    return losses
