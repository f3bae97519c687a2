"""The fit loop: epochs in compiled chunks, history, checkpoints, resume, early stopping, NaN guard, signals."""

from __future__ import annotations

import dataclasses
import functools
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
from jaxdl.progress import progress_bar, stage
from jaxdl.rundir import RunDir
from jaxdl.train.checkpoint import Checkpoints, DamagedCheckpoint
from jaxdl.train.replicas import check_memory
from jaxdl.train.signals import StopRequests
from jaxdl.train.state import TrainState, raw_key
from jaxdl.train.steps import EpochFns, make_epoch_fns, replica_averages
from jaxdl.train.task import Task

# (epoch, state after it, its history record) -> entries to add to the record, or None
EpochCallback = Callable[[int, TrainState, dict[str, Any]], dict[str, Any] | None]

FORMAT = 3  # of a checkpoint's record: 3 keeps every replica's step sums as (steps, R), R = 1 for one run


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
      train_seconds: every training epoch of the run, a resumed run's earlier ones too (their
        records' ``seconds``), compilation excluded.
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
        With replicas, each value is an ``(R,)`` array, one per replica.

        Args:
          data: ``{name: array}`` with the examples on the leading axis ("inputs", "labels", ...),
            or a :class:`~jaxdl.data.dataset.Dataset`.

        Returns:
          ``{metric name: average}``: floats for one run, ``(R,)`` arrays with replicas.
        """
        return self.fns.averages(self.fns.evaluate(self.state, self.fns.place(as_arrays(data))))

    def predict(self, data: dict[str, np.ndarray] | Dataset) -> np.ndarray:
        """The trained model's outputs (a classifier's logits) for every example of ``data``, in order,
        as at evaluation: no dropout, batch norm's running statistics (``(R, n, ...)`` with replicas).

        Args:
          data: ``{name: array}`` with the examples on the leading axis, or a
            :class:`~jaxdl.data.dataset.Dataset`; only what the model reads is used.

        Returns:
          The outputs, ``(n, ...)`` for n examples (a classifier's ``(n, classes)``), or
          ``(R, n, ...)`` with replicas.
        """
        return np.asarray(self.fns.predict(self.state, self.fns.place(as_arrays(data))))


@dataclasses.dataclass
class EarlyStopping:
    """Stops after ``patience`` epochs without a lower validation loss (None: never).

    Saved with every checkpoint, so a resumed run stops where an uncut one would.

    Attributes:
      patience: epochs without a lower validation loss before stopping; None never stops.
      best_loss: the lowest validation loss seen (``inf`` before the first epoch).
      best_epoch: the epoch that reached it (0 before the first epoch).
      bad_epochs: epochs since then without a lower loss.
    """

    patience: int | None = None
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, epoch: int, val_loss: float) -> bool:
        """Records an epoch's validation loss; True if training should stop.

        Args:
          epoch: the epoch's number (1-based).
          val_loss: its validation loss (``inf`` for a non-finite one).

        Returns:
          Whether ``patience`` epochs have now passed without a lower loss.
        """
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

    Args:
      seconds: the duration a chunk aims at, in seconds.
      steps_per_epoch: training steps in one epoch, the largest chunk.

    Attributes:
      size: the next chunk's steps.
    """

    def __init__(self, seconds: float, steps_per_epoch: int):
        self.seconds, self.steps_per_epoch, self.size = seconds, steps_per_epoch, 1

    def observe(self, steps: int, seconds: float) -> None:
        """Sizes the next chunk from one just run (a chunk shorter than :attr:`size` is ignored).

        Args:
          steps: the steps the chunk ran.
          seconds: its wall-clock duration, in seconds, finished (blocked on).
        """
        if steps < self.size:  # an epoch's short last chunk: mostly dispatch overhead, a poor estimate
            return
        per_step = max(seconds, 1e-9) / steps
        self.size = int(min(max(1, self.seconds / per_step), 8 * self.size, self.steps_per_epoch))


def _same(size: int, stop: bool) -> tuple[int, bool]:
    return size, stop


def agree_across_processes(size: int, stop: bool) -> tuple[int, bool]:
    """Every process of a multi-process run must run the same chunks (their steps hold collectives):
    process 0's chunk size, and a stop if any process was asked to stop.

    Args:
      size: this process's next chunk size, in steps.
      stop: whether this process was asked to stop.

    Returns:
      ``(process 0's size, whether any process was asked to stop)``, the same on every process.
    """
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
    on_chunk: Callable[[int, int, float, dict[str, jax.Array]], None] = lambda *_: None,
) -> tuple[TrainState, dict[str, jax.Array], int, float]:
    """Runs an epoch's steps from ``done`` on, a chunk at a time, until the epoch ends or ``stop()``.

    After each chunk, ``on_chunk(first step, end step, seconds, sums)`` sees it (the progress bar), and
    ``agree(next chunk size, stop())`` settles both for every process
    (:func:`agree_across_processes` in a multi-process run).

    Args:
      train_steps: :attr:`EpochFns.train_steps` (compiled), which donates the state and sums.
      state: the training state, placed on the devices.
      data: the training data, placed on the devices.
      batches: the epoch's :meth:`EpochFns.batches`.
      sums: the epoch's per-step metric sums so far, ``(steps_per_epoch, ...)`` each.
      done: the epoch's steps already run (0 for a fresh epoch).
      chunks: sizes each chunk, and knows the epoch's steps.
      stop: polled after each chunk; True ends the loop at that step boundary.
      agree: ``(next chunk size, stop) -> (size, stop)`` settled across processes.
      on_chunk: ``(first step, end step, seconds, sums)``, called after each chunk.

    Returns:
      ``(state, per-step sums, the steps of the epoch now done, the seconds the chunks
      took)``, each chunk blocked until finished.
    """
    seconds = 0.0
    while done < chunks.steps_per_epoch:
        until = min(done + chunks.size, chunks.steps_per_epoch)
        t0 = time.perf_counter()
        state, sums = train_steps(state, data, batches, sums, np.int32(done), np.int32(until))
        jax.block_until_ready(sums)
        chunks.observe(until - done, time.perf_counter() - t0)
        seconds += time.perf_counter() - t0
        on_chunk(done, until, time.perf_counter() - t0, sums)
        done = until
        chunks.size, stopping = agree(chunks.size, stop())
        if stopping:
            break
    return state, sums, done, seconds


@dataclasses.dataclass
class EpochEnd:
    """A finished epoch as :func:`fit`'s hooks see it; they run in order and may change it.

    Attributes:
      epoch: its number (1-based, counting the epochs of a resumed run).
      state: the TrainState after it (stacked with replicas).
      record: its history record: ``train_*``, ``val_*`` (and ``replicas`` with replicas); a hook
        adds its own entries here.
      active: which replicas go on training (``(R,)``; R = 1 for one run); a hook clears one to stop it.
    """

    epoch: int
    state: TrainState
    record: dict[str, Any]
    active: np.ndarray


class Hook:
    """One concern of the epoch loop: called by :func:`fit` after every epoch, in the order given.

    Override :meth:`after_epoch`, and, for what a resumed run must find again, :meth:`saved` and
    :meth:`restore` (their value goes into each checkpoint's record under the hook's ``name``).
    For example, a hook that ends training once the training loss is below a level::

        class StopBelow(Hook):
            def __init__(self, level):
                self.level = level

            def after_epoch(self, end):
                if end.record["train_loss"] < self.level:
                    end.active[:] = False

        fit(task, state, train, epochs=50, batch_size=100, key=key, hooks=[StopBelow(0.05)])
    """

    name: str = ""  # its entry in a checkpoint's record; "" saves nothing

    def after_epoch(self, end: EpochEnd) -> None:
        """Reads the finished epoch; may add entries to ``end.record`` or clear ``end.active``.

        Args:
          end: the finished epoch, shared with the hooks after this one.
        """

    def saved(self) -> Any:
        """What a checkpoint keeps of this hook (JSON).

        Returns:
          A JSON-ready value, given back to :meth:`restore` on resume (None by default).
        """

    def restore(self, saved: Any) -> None:
        """Takes back what :meth:`saved` returned, when a run resumes.

        Args:
          saved: the value :meth:`saved` returned, read back from the checkpoint's JSON record.
        """


class EarlyStopper(Hook):
    """Early stopping on the validation loss, one :class:`EarlyStopping` per replica.

    Args:
      patience: epochs without a lower validation loss before a replica stops; None: never
        (the best loss is still kept).
      replicas: R, the runs trained together (1 for one run).
      log: where the early-stopping line goes.
      numbered: name the replica in that line (a run of several replicas).
    """

    name = "early_stopping"

    def __init__(self, patience: int | None, replicas: int, log: Callable[[str], None], numbered: bool):
        self.patience, self.log, self.numbered = patience, log, numbered
        self.stoppers = [EarlyStopping(patience) for _ in range(replicas)]

    def after_epoch(self, end: EpochEnd) -> None:
        losses = end.record["replicas"]["val_loss"] if "replicas" in end.record else [end.record["val_loss"]]
        for i, (stopper, loss) in enumerate(zip(self.stoppers, losses, strict=True)):
            if end.active[i] and stopper.update(end.epoch, math.inf if loss is None else loss):
                end.active[i] = False
                which = f" replica {i}" if self.numbered else ""
                self.log(
                    f"early stopping{which}: validation loss has not improved for {self.patience} epochs "
                    f"(best {stopper.best_loss:.4f} at epoch {stopper.best_epoch})"
                )

    def saved(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(s) for s in self.stoppers]

    def restore(self, saved: Any) -> None:
        saved = saved if isinstance(saved, list) else [saved]  # a single run's record before 2026-12 is one dict
        self.stoppers = [
            dataclasses.replace(s, **{k: v for k, v in r.items() if k != "patience"})
            for s, r in zip(self.stoppers, saved, strict=True)
        ]


class _History(Hook):
    """Appends each epoch's record to the run's history (and its history.jsonl) and logs its line."""

    def __init__(self, run: _Run, run_dir: RunDir | None, epochs: int, log: Callable[[str], None]):
        self.run, self.run_dir, self.epochs, self.log = run, run_dir, epochs, log

    def after_epoch(self, end: EpochEnd) -> None:
        self.run.history.append(end.record)
        if self.run_dir:
            self.run_dir.append_history([end.record])
        self.log(_epoch_line(end.record, self.epochs))


class _Callback(Hook):
    """An :data:`EpochCallback` as a hook: its returned entries are added to the epoch's record."""

    def __init__(self, callback: EpochCallback):
        self.callback = callback

    def after_epoch(self, end: EpochEnd) -> None:
        end.record.update(self.callback(end.epoch, end.state, dict(end.record)) or {})


@dataclasses.dataclass
class _Run:
    """What a checkpoint keeps besides the TrainState: where the run is, its history, which replicas go
    on (``active``) and which diverged, and the hooks' records. One run is one replica (R = 1);
    ``one_run`` only says how it is shown: records and lines that name no replica."""

    replicas: int
    one_run: bool = False  # the caller trains one run (a state without a replica axis)
    epoch: int = 1  # the epoch to run next
    steps_done: int = 0  # of that epoch, when a stop cut it
    step_sums: dict[str, np.ndarray] | None = None  # those steps' sums
    partial_seconds: float = 0.0  # and the seconds they took
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    active: np.ndarray = None  # type: ignore[assignment]
    diverged: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self):
        self.active, self.diverged = np.ones(self.replicas, bool), np.zeros(self.replicas, bool)

    def record(
        self, epoch: int, done: int, step_sums: dict[str, np.ndarray] | None, hooks: Sequence[Hook]
    ) -> dict[str, Any]:
        record = {"format": FORMAT, "epoch": epoch, "steps_done": done, "history": self.history,
                  "active": self.active.tolist(), "diverged": self.diverged.tolist()}  # fmt: skip
        record.update({hook.name: hook.saved() for hook in hooks if hook.name})
        if step_sums is not None:  # (steps, R) each; float32 values are exact in JSON's doubles
            record["step_sums"] = {k: [v.tolist(), v.dtype.str] for k, v in step_sums.items()}
            record["partial_seconds"] = self.partial_seconds
        return record

    def save(self, checkpoints: Checkpoints, state: TrainState, hooks: Sequence[Hook], epoch: int, done: int,
             steps_per_epoch: int, step_sums: dict[str, np.ndarray] | None = None) -> int:  # fmt: skip
        """Saves a checkpoint of ``state`` after ``done`` steps of ``epoch``, with this record; returns its step."""
        step = (epoch - 1) * steps_per_epoch + done
        checkpoints.save(step, state, self.record(epoch, done, step_sums, hooks))
        return step

    def restore(self, record: dict[str, Any], steps_per_epoch: int, hooks: Sequence[Hook]) -> None:
        """Takes back a checkpoint's record: format 3, or an older one (2, or 1, which had no ``format``).

        The formats differ only in the record: before 3 a single run saved its partial epoch's
        ``step_sums`` as ``(steps,)``, now ``(steps, 1)``; format 1 kept its early stopping as one
        dict (:meth:`EarlyStopper.restore`). The state is saved as the caller holds it in all three.
        """
        if record.get("format", 1) not in (1, 2, FORMAT):
            raise JaxdlError(
                f"a checkpoint record of format {record['format']}; this jaxdl reads formats 1 to {FORMAT}"
            )
        self.history = record["history"]
        self.active = np.asarray(record.get("active", self.active), bool)
        self.diverged = np.asarray(record.get("diverged", self.diverged), bool)
        for hook in hooks:
            if hook.name in record:
                hook.restore(record[hook.name])
        done = record.get("steps_done", steps_per_epoch)
        if done >= steps_per_epoch:
            self.epoch, self.steps_done, self.step_sums = record["epoch"] + 1, 0, None
        else:  # saved mid-epoch: finish that epoch from its next step
            self.epoch, self.steps_done = record["epoch"], done
            self.step_sums = {k: np.asarray(v[0], dtype=v[1]).reshape(steps_per_epoch, self.replicas)
                              for k, v in record["step_sums"].items()}  # fmt: skip
            self.partial_seconds = record.get("partial_seconds", 0.0)


def _restore_newest(checkpoints: Checkpoints | None, state: TrainState, run_dir: RunDir | None,
                    log: Callable[[str], None]) -> tuple[TrainState, dict[str, Any], int]:  # fmt: skip
    """The newest good checkpoint's state, record and step.

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
        return state, record, step
    raise JaxdlError(
        f"{{resume}}: every checkpoint in {checkpoints.directory} is damaged "
        f"(steps {', '.join(map(str, steps))}); start again with {{overwrite}}"
    )


def _where(epoch: int, done: int, steps_per_epoch: int) -> str:
    return f"end of epoch {epoch}" if done >= steps_per_epoch else f"epoch {epoch}, step {done} of {steps_per_epoch}"


def fit(task: Task, state: TrainState, train_data: dict[str, np.ndarray] | Dataset, *, epochs: int, batch_size: int,
        key: jax.Array, val_data: dict[str, np.ndarray] | Dataset | None = None, run_dir: RunDir | None = None,
        keep_checkpoints: int = 3, checkpoint_every: int = 1, patience: int | None = None, resume: bool = False,
        mesh: Mesh | None = None, chunk_seconds: float = 10.0, hooks: Sequence[Hook | EpochCallback] = (),
        log: Callable[[str], None] = print) -> FitResult:  # fmt: skip
    """Trains ``state`` for ``epochs`` epochs, in compiled chunks of steps (bitwise the same however chunked).

    After each epoch: the non-finite-loss guard, the epoch's record, the ``hooks``, early stopping, the
    history and a checkpoint, in that order. With a ``run_dir``, SIGTERM or Ctrl-C stops the run at the end
    of the chunk under way, saves a checkpoint of that step and raises :class:`jaxdl.errors.Stopped`;
    ``resume=True`` then ends bitwise equal to an uninterrupted run.

    Args:
      task: the model, loss and preprocessing.
      state: the initial TrainState (also the shape a resumed state is restored into).
      train_data: a Dataset, or host arrays with examples on the leading axis ("inputs", "labels", ...).
      epochs: total epochs, counting those of a resumed run.
      batch_size: examples per step; the last partial batch is dropped.
      key: PRNG key for shuffling (epoch e shuffles with ``fold_in(key, e)``). One key per replica
        (``(R, 2)`` raw or ``(R,)`` typed) trains a stacked state of R replicas
        (:func:`jaxdl.train.init_replicas`) in one vmapped program; early stopping and the guard act per
        replica, and hooks receive the stacked state.
      val_data: evaluated after every epoch; early stopping watches its loss.
      run_dir: where history.jsonl and checkpoints/ go (None: neither, and signals keep their usual effect).
      keep_checkpoints: newest checkpoints kept: one per saved epoch, plus one on a stop.
      checkpoint_every: save each N-th epoch, the last and any stop; a cut run retrains the epochs since its last save.
      patience: stop after this many epochs without a lower validation loss (None: never).
      resume: continue from the newest good checkpoint in ``run_dir``.
      mesh: the devices each batch is split over (default: every device); ``batch_size`` must divide over it.
      chunk_seconds: the longest a stop request waits for the steps under way.
      hooks: :class:`Hook` objects (:class:`jaxdl.train.instruments.Instruments` adds layer statistics), or
        functions ``callback(epoch, state, record)`` returning entries to add to the epoch's record.
      log: where the per-epoch line goes.

    Returns:
      A :class:`FitResult`.

    Raises:
      JaxdlError: the loss became NaN or infinite (the message names the epoch and step; earlier
        checkpoints are kept), or there is nothing to resume.
      Stopped: a signal stopped the run after its checkpoint was saved.
    """
    train_data, val_data, key = as_arrays(train_data), as_arrays(val_data), raw_key(key)
    _check_arguments(state, train_data, val_data, batch_size, patience, key, checkpoint_every)
    fns = make_epoch_fns(task, batch_size, len(next(iter(train_data.values()))), mesh=mesh,
                         replicas=key.shape[0] if key.ndim == 2 else None)  # fmt: skip
    data, val = fns.place_train(train_data), (fns.place(val_data) if val_data is not None else None)
    run = _Run(fns.num_replicas, one_run=fns.replicas is None)
    hooks = _all_hooks(hooks, run, run_dir, epochs, val is not None, patience, log)
    checkpoints = Checkpoints(run_dir.path / "checkpoints", keep_checkpoints) if run_dir else None
    if resume:
        state = _resume(checkpoints, state, run, hooks, run_dir, fns.steps_per_epoch, log)
    state = fns.place_state(state)
    train_steps, evaluate, zero_sums, compile_seconds = _compile(fns, state, data, val, key, epochs - run.epoch + 1)
    loop = _EpochLoop(fns, train_steps, evaluate, zero_sums, data, val, key, run, hooks, checkpoints, checkpoint_every,
                      run_dir, epochs, log)  # fmt: skip
    state, step_losses, stopped_early = loop.train(state, ChunkSizer(chunk_seconds, fns.steps_per_epoch))
    if checkpoints:
        checkpoints.close()
    return _result(state, run, step_losses, stopped_early, compile_seconds, fns)


@dataclasses.dataclass
class _EpochLoop:
    """What every epoch of :func:`fit` runs with: the compiled programs, the placed data, the run's
    record, the hooks and the checkpoints."""

    fns: EpochFns
    train_steps: Any
    evaluate: Any
    zero_sums: dict[str, np.ndarray]
    data: dict[str, jax.Array]
    val: dict[str, jax.Array] | None
    key: jax.Array
    run: _Run
    hooks: Sequence[Hook]
    checkpoints: Checkpoints | None
    checkpoint_every: int
    run_dir: RunDir | None
    epochs: int
    log: Callable[[str], None]

    def train(self, state: TrainState, chunks: ChunkSizer) -> tuple[TrainState, list[np.ndarray], bool]:
        """Runs the epochs left: ``(state, each epoch's per-step losses, whether early stopping ended it)``."""
        fns, run, checkpoints = self.fns, self.run, self.checkpoints
        agree = agree_across_processes if jax.process_count() > 1 else _same
        step_losses = []
        steps_left = (self.epochs - run.epoch + 1) * fns.steps_per_epoch - run.steps_done
        with (
            progress_bar(steps_left, "training", "step") as bar,
            StopRequests(enabled=checkpoints is not None) as stop_requests,
        ):
            for epoch in range(run.epoch, self.epochs + 1):
                first = run.steps_done if epoch == run.epoch else 0
                trained = run.active.copy()  # the replicas this epoch trains (the others are frozen)
                sums = fns.place(run.step_sums if first else self.zero_sums)
                state, sums, done, seconds = train_in_chunks(
                    self.train_steps, state, self.data, fns.epoch_batches(self.key, epoch, run.active), sums,
                    first, chunks, lambda: stop_requests.requested, agree,
                    functools.partial(_show, bar, epoch, run.replicas * fns.batch_size),
                )  # fmt: skip
                step_sums = jax.device_get(sums)
                if first and run.partial_seconds:  # resumed mid-epoch: the steps before the stop count too
                    seconds, first = seconds + run.partial_seconds, 0
                if done < fns.steps_per_epoch:  # stopped by a signal
                    raise self._stop_within(stop_requests, state, epoch, done, seconds, trained, step_sums)
                step_losses.append(_guard(step_sums, epoch, trained, run, checkpoints, self.log))
                bar.clear()  # before the hooks' lines
                step = self._end_epoch(state, epoch, step_sums, trained, seconds, done - first)
                if not run.active.any():
                    return state, step_losses, True
                if agree(chunks.size, stop_requests.requested)[1] and epoch < self.epochs:
                    step = self._save(state, epoch) if step is None else step  # between two saved epochs
                    raise _stopped(stop_requests, step, _where(epoch, done, fns.steps_per_epoch), checkpoints)
        return state, step_losses, False

    def _end_epoch(self, state: TrainState, epoch: int, step_sums: dict[str, np.ndarray], trained: np.ndarray,
                   seconds: float, steps: int) -> int | None:  # fmt: skip
        """Evaluates, records and hands a finished epoch to the hooks, then saves a checkpoint (its step) if
        the epoch is one to save: every ``checkpoint_every``-th, the last, or one after which no replica trains."""
        val_sums = self.evaluate(state, self.val) if self.evaluate is not None else None
        record = _record(epoch, step_sums, val_sums, self.run, trained)
        examples = steps * self.run.replicas * self.fns.batch_size
        record.update(seconds=seconds, examples_per_second=examples / max(seconds, 1e-12))
        for hook in self.hooks:  # the caller's, then the history and early stopping
            hook.after_epoch(EpochEnd(epoch, state, record, self.run.active))
        if not self.checkpoints or (epoch % self.checkpoint_every and epoch < self.epochs and self.run.active.any()):
            return None
        return self._save(state, epoch)

    def _save(self, state: TrainState, epoch: int) -> int:
        """Saves a checkpoint at the end of ``epoch``; returns its step."""
        steps_per_epoch = self.fns.steps_per_epoch
        return self.run.save(self.checkpoints, state, self.hooks, epoch, steps_per_epoch, steps_per_epoch)

    def _stop_within(self, requests: StopRequests, state: TrainState, epoch: int, done: int, seconds: float,
                     trained: np.ndarray, step_sums: dict[str, np.ndarray]) -> Stopped:  # fmt: skip
        """A stop in the middle of an epoch: its finished steps are guarded and saved with their sums."""
        run, steps_per_epoch = self.run, self.fns.steps_per_epoch
        run.partial_seconds = seconds
        _guard({k: v[:done] for k, v in step_sums.items()}, epoch, trained, run, self.checkpoints, self.log)
        step = run.save(self.checkpoints, state, self.hooks, epoch, done, steps_per_epoch, step_sums)
        self.run_dir.write_history(run.history)  # the finished epochs, even if none
        return _stopped(requests, step, _where(epoch, done, steps_per_epoch), self.checkpoints)


def _all_hooks(given: Sequence[Hook | EpochCallback], run: _Run, run_dir: RunDir | None, epochs: int,
               validated: bool, patience: int | None, log: Callable[[str], None]) -> list[Hook]:  # fmt: skip
    """The caller's hooks (functions wrapped), then the history and, with validation data, early stopping
    (which also keeps the best validation loss when there is no patience)."""
    hooks = [*(h if isinstance(h, Hook) else _Callback(h) for h in given), _History(run, run_dir, epochs, log)]
    if validated:
        hooks.append(EarlyStopper(patience, run.replicas, log, numbered=not run.one_run))
    return hooks


def _result(state: TrainState, run: _Run, step_losses: list[np.ndarray], stopped_early: bool,
            compile_seconds: float, fns: EpochFns) -> FitResult:  # fmt: skip
    """The :class:`FitResult` of a finished (or early-stopped) run; its times count every epoch of the
    run, resumed or not. One run's losses lose their replica axis, and it has no ``diverged``."""
    losses = np.concatenate(step_losses) if step_losses else np.zeros((0, run.replicas))
    diverged = run.diverged
    if run.one_run:  # shown as one run
        losses, diverged = losses[:, 0], None
    train_seconds = sum(r["seconds"] for r in run.history)
    examples = sum(r["seconds"] * r["examples_per_second"] for r in run.history)
    return FitResult(
        state=state,
        history=run.history,
        epochs_run=len(step_losses),
        stopped_early=stopped_early,
        compile_seconds=compile_seconds,
        train_seconds=train_seconds,
        examples_per_second=examples / max(train_seconds, 1e-12),
        fns=fns,
        step_losses=losses,
        diverged=diverged,
    )


def _resume(checkpoints: Checkpoints | None, state: TrainState, run: _Run, hooks: Sequence[Hook],
            run_dir: RunDir | None, steps_per_epoch: int, log: Callable[[str], None]) -> TrainState:  # fmt: skip
    """The newest good checkpoint's state; ``run`` and the hooks take back its record."""
    state, record, step = _restore_newest(checkpoints, state, run_dir, log)
    run.restore(record, steps_per_epoch, hooks)
    run_dir.write_history(run.history)  # history.jsonl may hold an epoch run after this checkpoint
    where = _where(record["epoch"], run.steps_done or steps_per_epoch, steps_per_epoch)
    log(f"resumed from checkpoint {step} ({where}) in {checkpoints.directory}")
    return state


def _compile(fns: EpochFns, state: TrainState, data: dict, val: dict | None, key: jax.Array, epochs_left: int):
    """(train_steps, evaluate, an epoch's zero sums on the host, seconds): compiled ahead of training,
    between two stage lines."""
    stage(f"compiling the training steps{' and the evaluation' if val is not None else ''}"
          f"{f' ({fns.replicas} replicas in one program)' if fns.replicas else ''}")  # fmt: skip
    start = time.perf_counter()
    zero_sums = fns.zero_sums(state, data)  # placed afresh for each epoch (the loop donates them)
    first = (fns.epoch_batches(key, 1), fns.place(zero_sums), np.int32(0), np.int32(1))
    train_steps = fns.train_steps.lower(state, data, *first).compile()
    # before training: XLA knows what the program needs
    check_memory(_compiled_bytes(train_steps), f"the training steps of {fns.num_replicas} replica(s)")
    evaluate = fns.evaluate.lower(state, val).compile() if val is not None else None
    seconds = time.perf_counter() - start
    stage(
        f"compiled in {seconds:.1f} s; {epochs_left} epoch{'s' * (epochs_left != 1)} of {fns.steps_per_epoch} "
        "steps to run"
    )
    return train_steps, evaluate, zero_sums, seconds


def _show(bar: Any, epoch: int, examples_per_step: int, first: int, end: int, seconds: float,
          sums: dict[str, jax.Array]) -> None:  # fmt: skip
    """Moves the bar by a chunk's steps, with its examples per second and the epoch's running loss so far."""
    bar.update(end - first)
    if not bar.disable:  # the sums' copy is for the bar only
        losses, counts = (np.asarray(jax.device_get(sums[k]))[:end] for k in ("loss", "count"))
        running = float(losses.sum() / max(counts.sum(), 1))
        speed = (end - first) * examples_per_step / max(seconds, 1e-12)
        bar.set_postfix_str(f"epoch {epoch}, loss {running:.4f}, {speed:,.0f} ex/s")


def _check_arguments(state: TrainState, train_data: dict, val_data: dict | None, batch_size: int,
                     patience: int | None, key: jax.Array, checkpoint_every: int) -> None:  # fmt: skip
    if key.ndim not in (1, 2) or np.shape(state.step) != key.shape[:-1]:  # one key per replica, or one run's
        runs = f"{np.shape(state.step)[0]} replicas" if np.ndim(state.step) else "one run"
        raise JaxdlError(f"shuffling keys of shape {key.shape} for a state of {runs}; give one key per replica "
                         "(init_replicas), or one key for one run")  # fmt: skip
    chex.assert_equal_shape_prefix(list(train_data.values()), 1)  # one example per row in every array
    n_train = len(next(iter(train_data.values())))
    if n_train < batch_size:
        raise JaxdlError(f"batch_size {batch_size} is larger than the {n_train} training examples")
    if patience is not None and val_data is None:
        raise JaxdlError("early stopping (patience) needs val_data to watch")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int | np.integer) or checkpoint_every < 1:
        raise JaxdlError(f"checkpoint_every must be a whole number of epochs, at least 1; got {checkpoint_every!r}")


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


def _record(epoch: int, step_sums: dict[str, np.ndarray], val_sums: Any, run: _Run, trained: np.ndarray
            ) -> dict[str, Any]:  # fmt: skip
    """An epoch's history record: the replicas' means and values; one run's figures alone."""
    if val_sums is not None:  # one run's evaluation comes back without its replica axis
        val_sums = {k: np.reshape(v, (run.replicas,)) for k, v in jax.device_get(val_sums).items()}
    previous = run.history[-1] if run.history else None
    record = _replica_record(epoch, step_sums, val_sums, ~run.diverged, trained, previous)
    if run.one_run:  # shown as one run: its figures, without the lists of one value
        del record["replicas"], record["replicas_counted"]
    return record


def _guard(
    step_sums: dict[str, np.ndarray],
    epoch: int,
    trained: np.ndarray,
    run: _Run,
    checkpoints: Checkpoints | None,
    log: Callable[[str], None],
) -> np.ndarray:
    """The non-finite-loss guard: the epoch's per-step mean losses ``(steps, R)``.

    A replica trained this epoch whose loss stops being finite is marked diverged and frozen
    (``run.active``, ``run.diverged``) and the others go on; when none is left (one run: at once), a
    JaxdlError names where."""
    losses = np.asarray(step_sums["loss"]) / np.maximum(np.asarray(step_sums["count"]), 1)
    losses = losses.reshape(len(losses), run.replicas)
    first_bad = {}
    for i in np.flatnonzero(~np.isfinite(losses).all(axis=0) & trained & ~run.diverged):
        first_bad[i] = step = int(np.flatnonzero(~np.isfinite(losses[:, i]))[0])
        run.diverged[i], run.active[i] = True, False
        if not run.one_run:
            log(
                f"replica {i} diverged: its loss became {losses[step, i]} at epoch {epoch}, step {step + 1}; "
                "it is frozen and left out of the means"
            )
    if run.diverged.all():
        kept = checkpoints.latest() if checkpoints else None
        where = f"the last good checkpoint is step {kept}" if kept else "no checkpoint was written yet"
        what = (
            f"the loss of every replica became non-finite by epoch {epoch}"
            if not run.one_run
            else f"the loss became {losses[first_bad[0], 0]} at epoch {epoch}, step {first_bad[0] + 1}"
        )
        raise JaxdlError(f"{what}; {where}; lower the learning rate or clip gradients")
    return losses


def _stopped(requests: StopRequests, step: int, where: str, checkpoints: Checkpoints) -> Stopped:
    checkpoints.close()
    return Stopped(
        f"stopped by {requests.signal_name} at {where}; saved checkpoint {step} in {checkpoints.directory}; "
        "to finish, run the same command with {resume}",
        requests.signal_number,
        str(checkpoints.directory.parent),
    )
