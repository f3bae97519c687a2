"""Checkpoints with Orbax: the TrainState's arrays plus a JSON record of the run so far.

A checkpoint is numbered by the optimizer steps taken when it was saved, so
one saved in the middle of an epoch (on preemption) sorts between the epochs'.
Orbax writes each checkpoint to a temporary directory and renames it when
complete, so an interrupted save never replaces a good checkpoint; the
manager keeps the newest ``keep``. Each checkpoint also lists the SHA-256 of
its files (``jaxdl-files.json``) and its record holds one of the state's
arrays; both are checked on restore, so a checkpoint whose files were
truncated or altered after the save is reported as damaged, never trusted.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import numpy as np

from jaxdl.data.cache import file_digest
from jaxdl.errors import JaxdlError
from jaxdl.rundir import atomic_write_text
from jaxdl.train.state import TrainState


@contextlib.contextmanager
def _echoes_of_a_failure_quiet():
    """Silences, during an Orbax operation and after it if it fails, the echoes of a failed write or read.

    When a save or restore fails part-way, TensorStore futures still pending finish later, some before
    Orbax raises and some after, at exit too: they call back into Orbax's closed asyncio loop (Python
    reports each as an unraisable ``RuntimeError('Event loop is closed')``), asyncio logs the other
    failed writes as "exception was never retrieved", and Orbax's background thread logs its failed write
    through absl once the save has already raised. The failure itself is reported in one line. The hooks
    come off again when the operation succeeds and stay (once) when it failed; importing jaxdl installs
    nothing. Every other unraisable exception and log record is reported as before.
    """
    if _quiet_for_good:
        yield
        return
    previous, late_writes = sys.unraisablehook, _LateWriteFailures()

    def hook(unraisable):
        if not (isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed"):
            previous(unraisable)

    sys.unraisablehook = hook
    for logger in LATE_LOGGERS:
        logging.getLogger(logger).addFilter(late_writes)
    try:
        yield
    except BaseException:
        _keep_quiet()
        raise
    if sys.unraisablehook is hook:  # not replaced by someone else meanwhile
        sys.unraisablehook = previous
    for logger in LATE_LOGGERS:
        logging.getLogger(logger).removeFilter(late_writes)


LATE_LOGGERS = ("asyncio", "absl")  # asyncio's unretrieved futures; Orbax's background threads log through absl


def _keep_quiet() -> None:
    global _quiet_for_good
    _quiet_for_good = True


_quiet_for_good = False


class _LateWriteFailures(logging.Filter):
    """Drops the late reports of a failed write (an OSError, or TensorStore's wrapping of one, anywhere in
    the exception's chain): asyncio's "<Future, Task or _GatheringFuture> exception was never retrieved",
    and Orbax's "_SignalingThread.run() raised an exception", which its thread logs whenever it gets to it.
    Which of the writes asyncio reports depends on the order they fail in, so the check is on the message,
    not on the future's class."""

    def filter(self, record: logging.LogRecord) -> bool:
        first_line = str(record.msg).split("\n", 1)[0]
        late = first_line.endswith("exception was never retrieved") or "_SignalingThread.run() raised" in first_line
        return not (late and _a_failed_write(record.exc_info[1] if record.exc_info else None))


def _a_failed_write(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, OSError) or any(
            code in str(error) for code in ("os_error_code", "RESOURCE_EXHAUSTED", "OUT_OF_RANGE")
        ):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def _orbax_quiet():
    """Orbax logs every save at INFO and a damaged file as an ERROR before raising; the caller reports a
    failure in one line. Absl's level is restored afterwards."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


FILE_DIGESTS = "jaxdl-files.json"  # written beside Orbax's files once a checkpoint is complete


class DamagedCheckpoint(Exception):
    """A checkpoint that cannot be read back, or whose arrays do not match their checksum."""


def state_digest(state: TrainState) -> str:
    """SHA-256 of every array in ``state`` (names, dtypes, shapes and bytes); this process's copy.

    Saved in each checkpoint's record and recomputed on restore, so arrays that
    read back differently from how they were saved are caught.

    Args:
      state: the state to digest; a replicated array is read from this
        process's first shard.

    Returns:
      The hex digest, 64 characters; equal for states with equal arrays.
    """
    h = hashlib.sha256()
    flat = jax.tree_util.tree_flatten_with_path(flax.serialization.to_state_dict(state))[0]
    for path, leaf in flat:
        if isinstance(leaf, jax.Array):  # replicated: every process holds a whole copy
            leaf = leaf.addressable_shards[0].data
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}\0{a.dtype.str}\0{a.shape}\n".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


class Checkpoints:
    """Numbered checkpoints (by optimizer step) under ``directory``.

    Args:
      directory: where the checkpoints go, one subdirectory per step; created
        if missing. A damaged checkpoint is moved to ``DIRECTORY-damaged``.
      keep: how many of the newest checkpoints to keep; older ones are deleted
        as new ones are saved.

    Raises:
      JaxdlError: ``directory`` cannot be created or written.
    """

    def __init__(self, directory: str | Path, keep: int = 3):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self.keep = keep
        self._manager = self._open()

    def _open(self):
        ocp = self._ocp
        options = ocp.CheckpointManagerOptions(max_to_keep=self.keep, create=True, enable_async_checkpointing=False)
        try:
            with _orbax_quiet():
                return ocp.CheckpointManager(self.directory, options=options)
        except OSError as e:
            raise JaxdlError(f"cannot write checkpoints to {self.directory}: {e.strerror or e}") from e

    def save(self, step: int, state: TrainState, record: dict[str, Any]) -> None:
        """Saves ``state`` and ``record`` (plus the state's digest) as checkpoint ``step``.

        Args:
          step: the checkpoint's number: the optimizer steps taken so far.
          state: the TrainState to save (its arrays; the optimizer is not
            saved: :meth:`restore` takes it from ``like``).
          record: JSON-serialisable facts about the run so far; it must hold
            ``"history"`` for :meth:`restore` to accept it.

        Raises:
          JaxdlError: the checkpoint could not be written (a full disk, a
            read-only folder); the earlier checkpoints are untouched.
        """
        ocp = self._ocp
        arrays = flax.serialization.to_state_dict(state)
        record = {**record, "state_sha256": state_digest(state)}
        try:
            with _orbax_quiet(), _echoes_of_a_failure_quiet():
                self._manager.save(
                    step,
                    args=ocp.args.Composite(state=ocp.args.StandardSave(arrays), record=ocp.args.JsonSave(record)),
                )
                self._manager.wait_until_finished()
            if jax.process_index() == 0:
                files = _file_digests(self.directory / str(step))
                atomic_write_text(self.directory / str(step) / FILE_DIGESTS, json.dumps(files, indent=0))
        except Exception as e:  # Orbax and TensorStore wrap the OSError in their own types
            raise JaxdlError(
                f"cannot write checkpoint {step} in {self.directory}: {_cause(e)}; the earlier checkpoints are kept"
            ) from e

    def steps(self) -> list[int]:
        """The saved checkpoints' steps, newest first.

        Returns:
          The steps as a list of ints; empty when nothing has been saved.
        """
        return sorted(self._manager.all_steps(), reverse=True)

    def latest(self) -> int | None:
        """The newest checkpoint's step.

        Returns:
          That step, or None when there is no checkpoint.
        """
        return self._manager.latest_step()

    def restore(self, step: int, like: TrainState) -> tuple[TrainState, dict[str, Any]]:
        """The state saved at ``step`` (shaped like ``like``) and its JSON record, verified.

        Args:
          step: which checkpoint, as listed by :meth:`steps`.
          like: a TrainState with the saved one's structure, shapes and dtypes
            (e.g. a freshly initialised one); it also provides the optimizer.

        Returns:
          ``(state, record)``: the restored TrainState and the record saved
          with it (with ``"history"`` and ``"state_sha256"``).

        Raises:
          DamagedCheckpoint: a file is missing, truncated or unreadable, or the arrays
            read back differ from those saved.
        """
        ocp = self._ocp
        self._verify_files(step)
        target = flax.serialization.to_state_dict(like)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        try:
            with _orbax_quiet(), _echoes_of_a_failure_quiet():
                restored = self._manager.restore(
                    step,
                    args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), record=ocp.args.JsonRestore()),
                )
            state = flax.serialization.from_state_dict(like, restored["state"])
            record = restored["record"]
        except Exception as e:  # any failure to read back is damage: the run's settings were checked before
            raise DamagedCheckpoint(_cause(e)) from e
        if not isinstance(record, dict) or "history" not in record:
            raise DamagedCheckpoint("its record holds no history")
        saved = record.get("state_sha256")
        if saved is not None and saved != state_digest(state):
            raise DamagedCheckpoint("its arrays do not match the checksum saved with them")
        return state, record

    def _verify_files(self, step: int) -> None:
        """Checks the files against the digests written after the save, before Orbax reads any of them
        (TensorStore reading a corrupt file fails noisily from its own threads)."""
        listing = self.directory / str(step) / FILE_DIGESTS
        if not listing.exists():  # saved by an older jaxdl, or cut between the save and the listing
            return
        try:
            expected = json.loads(listing.read_text())
        except (OSError, ValueError) as e:
            raise DamagedCheckpoint(f"its file list {FILE_DIGESTS} is unreadable ({_cause(e)})") from e
        actual = _file_digests(self.directory / str(step))
        for name, digest in expected.items():
            if name not in actual:
                raise DamagedCheckpoint(f"file {name} is missing")
            if actual[name] != digest:
                raise DamagedCheckpoint(f"file {name} does not match its checksum")

    def set_aside(self, step: int) -> Path:
        """Moves a damaged checkpoint out of the manager's reach (never deletes it); returns where.

        The checkpoint goes to ``DIRECTORY-damaged/STEP`` (``STEP-2``, ... if
        taken), so a run can fall back to an earlier checkpoint while the
        damaged one stays for inspection.

        Args:
          step: the damaged checkpoint.

        Returns:
          The path it was moved to.
        """
        aside = self.directory.with_name(self.directory.name + "-damaged")
        aside.mkdir(exist_ok=True)
        target = aside / str(step)
        n = 1
        while target.exists():
            n += 1
            target = aside / f"{step}-{n}"
        shutil.move(str(self.directory / str(step)), target)
        self.close()
        self._manager = self._open()
        return target

    def close(self) -> None:
        """Closes the Orbax manager; call it when done saving and restoring."""
        with _orbax_quiet():
            self._manager.close()


def _file_digests(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under ``directory`` (but the listing itself), by relative path."""
    digests = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != FILE_DIGESTS):
        digests[path.relative_to(directory).as_posix()] = file_digest(path)
    return digests


def _cause(e: BaseException) -> str:
    """A one-line cause: the OSError's reason where there is one, else the error's first line."""
    seen = e
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    code = re.search(r"os_error_code='(\d+)'", str(e))
    if code:  # TensorStore's wrapping of an OSError
        return os.strerror(int(code.group(1)))
    if "RESOURCE_EXHAUSTED" in str(e):
        return os.strerror(errno.ENOSPC)
    text = str(e).strip().splitlines()
    if not text:
        return type(e).__name__
    first = text[0].split(" [tensorstore_spec")[0]  # TensorStore appends kilobytes of its spec
    return f"{type(e).__name__}: {first[:200]}"
