"""The run directory: config.json, metrics.json, history.jsonl and figures.

Every file is written atomically (a temporary file, then ``os.replace``), so an
interrupted run never leaves a half-written JSON file behind, and a directory
that already holds a run is never overwritten unless asked.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from jaxdl.errors import JaxdlError
from jaxdl.locks import FileLock, Locked

RUN_FILES = ("config.json", "metrics.json", "history.jsonl")
LOCK_FILE = ".jaxdl.lock"  # held while a process writes the run (see jaxdl.locks)
_UMASK = os.umask(0)
os.umask(_UMASK)


def _jsonable(value: Any) -> Any:
    """Converts NumPy/JAX scalars and arrays to plain JSON values; NaN becomes null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy / jax arrays and scalars
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """A temporary file beside ``path`` that replaces it only once fully written and synced.

    Readers see the old file or the new one, never half of one; on an error
    the temporary file is removed and ``path`` is untouched. An ``OSError``
    (a full disk, a read-only folder) becomes a :class:`JaxdlError` naming ``path``.

    Args:
      path: the file to write; its folder is created if need be.
      mode: "w" for text, "wb" for bytes.

    Yields:
      The open temporary file, to write into.

    Raises:
      JaxdlError: the machine refused the write.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise write_error(path, e) from e
        raise


def write_error(path: str | os.PathLike, error: OSError) -> JaxdlError:
    """The one-line error for a write the machine refused.

    Args:
      path: the file that could not be written.
      error: the ``OSError`` the write raised.

    Returns:
      A :class:`JaxdlError` to raise, saying that files already written are kept.
    """
    return JaxdlError(f"cannot write {path}: {error.strerror or error}; files already written are kept")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (see :func:`atomic_file`).

    Args:
      path: the file.
      text: its whole new content.
    """
    with atomic_file(path) as f:
        f.write(text)


def write_json(path: Path, obj: Any) -> None:
    """Writes ``obj`` as indented JSON, atomically; NumPy and JAX values become plain ones, NaN null.

    Args:
      path: the file.
      obj: dicts, lists, numbers, strings, and arrays or scalars with ``tolist``.
    """
    atomic_write_text(Path(path), json.dumps(_jsonable(obj), indent=2) + "\n")


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """Saves a matplotlib figure as PNG (atomically) and closes it.

    Args:
      fig: the ``matplotlib.figure.Figure``.
      path: the ``.png`` to write.

    Returns:
      ``path`` as a ``Path``.
    """
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path, "wb") as f:
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment() -> dict[str, Any]:
    """Library versions, code version and the device a run used.

    Returns:
      ``{"python", "platform", "versions", "git_commit", "backend", "devices", "cpu_count",
      "cpu_model"}``, as a run's ``config.json`` stores it.
    """
    import jax

    devices = jax.devices()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {p: _version(p) for p in ("jaxdl", "jax", "jaxlib", "flax", "optax", "numpy")},
        "git_commit": _git_commit(),
        "backend": jax.default_backend(),
        "devices": [f"{d.platform}:{d.device_kind}" for d in devices],
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def default_run_path(experiment: str) -> Path:
    """``runs/NAME/YYYYmmdd-HHMMSS`` under the current directory, never an existing one.

    Args:
      experiment: the experiment's name.

    Returns:
      The path; a suffix ``-2``, ``-3``, ... keeps it new when a run started in the same second.
    """
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / experiment / stamp
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / experiment / f"{stamp}-{n}"
    return path


class RunDir:
    """A run's output directory.

    Args:
      path: the directory; created if missing.
      overwrite: allow a directory that already holds a run's files (its history is cleared).
      resume: continue the run the directory holds (its files are kept).
      writer: False for the other processes of a multi-process run: they share
        the directory (Orbax checkpoints are written by all processes together)
        but leave its files to process 0, so nothing here is checked or written.

    The process holds the directory's lock file until :meth:`close` or its
    end, so a second process given the same directory stops at once.

    Raises:
      JaxdlError: ``path`` is a file, already holds a run and neither flag is
        set, ``resume`` finds no run there, or another process is writing it.
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False, resume: bool = False, writer: bool = True):
        self.path = Path(path)
        self.resume = resume
        self.writer = writer
        self._created: list[Path] = []
        self._lock = FileLock(self.path / LOCK_FILE)
        if not writer:
            return
        if resume:
            if not (self.path / "config.json").is_file():
                raise JaxdlError(f"{{resume}}: {self.path} holds no run (no config.json); check {{out}}")
            self._take_lock()
            return
        if self.path.exists() and not self.path.is_dir():
            raise JaxdlError(f"{{out}} {self.path} is a file, not a directory; choose another")
        # the folders this creates, innermost first (runs/NAME/ too for the default path): a run that fails
        # before it starts removes them again
        self._created = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise JaxdlError(f"cannot create {{out}} {self.path}: {e.strerror}") from None
        self._take_lock()  # before looking for a run: two processes must not both find none
        taken = [name for name in RUN_FILES if (self.path / name).exists()]
        if taken and not overwrite:
            self.close()
            raise JaxdlError(
                f"{{out}} {self.path} already holds a run ({taken[0]}); choose another or pass {{overwrite}}"
            )
        if overwrite:
            (self.path / "history.jsonl").unlink(missing_ok=True)

    def _take_lock(self) -> None:
        try:
            self._lock.acquire()
        except Locked as e:
            raise JaxdlError(
                f"{{out}} {self.path} is in use by process {e.holder} (lock file {e.path}); "
                "wait for that run to end or choose another"
            ) from None
        except OSError as e:
            raise JaxdlError(f"cannot create {{out}} {self.path}: {e.strerror}") from None

    def close(self) -> None:
        """Releases the directory for other processes (also done when this process ends)."""
        self._lock.release()

    def write_json(self, name: str, obj: Any) -> Path:
        """Writes ``obj`` as JSON to ``name`` in the run directory (process 0 only).

        Args:
          name: the file's name, e.g. "metrics.json".
          obj: what to write, as for :func:`write_json`.

        Returns:
          The file's path (also on processes that do not write).
        """
        if self.writer:
            write_json(self.path / name, obj)
        return self.path / name

    def write_text(self, name: str, text: str) -> None:
        """Writes ``text`` to ``name`` in the run directory, atomically (process 0 only).

        Args:
          name: the file's name.
          text: its content.
        """
        if self.writer:
            atomic_write_text(self.path / name, text)

    def append_history(self, records: list[dict[str, Any]]) -> None:
        """Appends one JSON line per record to history.jsonl.

        A failed write leaves the file as it was, without a half-written line.

        Args:
          records: epoch records, JSON-able as for :func:`write_json`.

        Raises:
          JaxdlError: the machine refused the write.
        """
        if not self.writer:
            return
        path, data = self.path / "history.jsonl", _json_lines(records).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as e:
            raise write_error(path, e) from e
        size = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data) :]
        except OSError as e:
            os.ftruncate(fd, size)  # no half-written line: the file is as it was
            raise write_error(path, e) from e
        finally:
            os.close(fd)

    def write_history(self, records: list[dict[str, Any]]) -> None:
        """Replaces history.jsonl by these records (atomically).

        Args:
          records: all of the run's epoch records (a resumed run rewrites it up to its checkpoint).
        """
        self.write_text("history.jsonl", _json_lines(records))

    def discard_if_not_started(self) -> bool:
        """Removes the config.json of a run that failed before writing anything else.

        The folders that its creation made go too. A directory holding only that file is no run yet:
        the corrected command can use it again without ``overwrite``. A resumed run is never touched.

        Returns:
          True if it removed the run.
        """
        if not self.writer or self.resume or not self.path.is_dir():
            return False
        if {p.name for p in self.path.iterdir()} - {LOCK_FILE} != {"config.json"}:
            return False
        (self.path / "config.json").unlink()
        self.close()
        for folder in self._created:
            with contextlib.suppress(OSError):  # another run may have started in a parent meanwhile
                folder.rmdir()
        return True

    def save_figure(self, fig: Any, name: str) -> Path:
        """Saves a figure as ``name`` in the run directory and closes it (process 0 only; others just close it).

        Args:
          fig: the ``matplotlib.figure.Figure``.
          name: the file's name, e.g. "loss.png".

        Returns:
          The file's path.
        """
        if not self.writer:
            import matplotlib.pyplot as plt

            plt.close(fig)
            return self.path / name
        return save_figure(fig, self.path / name)


def _json_lines(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(_jsonable(record)) + "\n" for record in records)


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in a file.

    Args:
      path: the file, e.g. a run's ``metrics.json``.

    Returns:
      The parsed value.
    """
    with open(path) as f:
        return json.load(f)


def read_history(path: str | os.PathLike) -> list[dict[str, Any]]:
    """A run's history, one record per line of ``history.jsonl``.

    Args:
      path: the ``history.jsonl`` file.

    Returns:
      The records, in file order (blank lines skipped).
    """
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
