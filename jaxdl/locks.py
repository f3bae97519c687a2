"""Lock files: one writer at a time for a run directory or a cache entry.

A lock is an exclusive ``flock`` on a small file holding the holder's process
id. The kernel releases it when the holder exits, however it exits (even
``kill -9``), so a lock is never left stale. The holder removes the file on
release, leaving the directory as it found it. A process that was waiting on
the removed file then holds a lock on a file nobody else can open, so after
each ``flock`` it checks that the path still names the file it locked, and
starts again if not: two writers never both get in. A file left behind by a
holder that was killed is removed by :func:`remove_orphans`. Where ``flock``
does not exist (Windows), nothing is locked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class Locked(Exception):
    """Another process holds the lock; ``holder`` is its process id as the lock file says.

    Args:
      path: the lock file.
      holder: the holder's process id as text ("?" when the file was empty).
    """

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is held by process {holder}")
        self.path, self.holder = path, holder


class FileLock:
    """An exclusive lock on ``path``, held from :meth:`acquire` until :meth:`release` or the process ends.

    Args:
      path: the lock file; created by :meth:`acquire` and removed by :meth:`release`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, *, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> None:
        """Takes the lock; if another process holds it, raises :class:`Locked` or waits.

        Does nothing where ``flock`` does not exist, or when this object holds the lock already.

        Args:
          wait: block until the lock is free instead of raising.
          on_wait: called once with the holder's process id before blocking (to say why nothing happens).

        Raises:
          Locked: another process holds it and ``wait`` is False.
        """
        if fcntl is None or self._fd is not None:
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    if not wait:
                        raise Locked(self.path, holder) from None
                    if on_wait:
                        on_wait(holder)
                        on_wait = None  # say it once, however often the file changes hands
                    fcntl.flock(fd, fcntl.LOCK_EX)
                if not _names(self.path, fd):  # its holder removed it on release: lock the new file
                    os.close(fd)
                    continue
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return

    def release(self) -> None:
        """Removes the lock file and releases the lock (nothing if not held)."""
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # still held: nobody else can be writing it
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __del__(self) -> None:
        self.release()


def held(path: str | os.PathLike) -> bool:
    """Whether a process holds the lock at ``path`` now (read only: nothing is created or taken for long).

    Args:
      path: the lock file.

    Returns:
      True while another process (or this one) holds it; False when there is no file or no holder.
    """
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file: nobody holds it (a holder removes it on release)
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a shared lock just taken
    return False


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    return os.path.samestat(st, os.fstat(fd))


def remove_orphans(folder: str | os.PathLike, pattern: str = "*.lock") -> list[Path]:
    """Removes the lock files in ``folder`` that no process holds (left by a killed holder).

    Args:
      folder: where to look.
      pattern: a glob of the lock files' names.

    Returns:
      The paths removed.
    """
    removed = []
    if fcntl is None:  # pragma: no cover - nothing was locked
        return removed
    for path in Path(folder).glob(pattern):
        lock = FileLock(path)
        try:
            lock.acquire()
        except (Locked, OSError):
            continue
        lock.release()  # removes the file
        removed.append(path)
    return removed
