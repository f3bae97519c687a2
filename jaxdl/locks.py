"""Lock files: one writer at a time for a run directory or a cache entry.

A lock is an exclusive ``flock`` on a small file holding the holder's process
id. The kernel releases it when the holder exits, however it exits (even
``kill -9``), so a lock is never left stale. A lock that others wait for (a
cache entry's) keeps its file: removing a file another process is waiting on
would let two writers in. A lock nobody waits for (a run directory's: a
second writer stops at once) removes its file on release, leaving the
directory as the run wrote it. Where ``flock`` does not exist (Windows),
nothing is locked.
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
    """Another process holds the lock; ``holder`` is its process id as the lock file says."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is held by process {holder}")
        self.path, self.holder = path, holder


class FileLock:
    """An exclusive lock on ``path``, held from :meth:`acquire` until :meth:`release` or the process ends."""

    def __init__(self, path: str | os.PathLike, *, remove_on_release: bool = False):
        self.path = Path(path)
        self.remove_on_release = remove_on_release
        self._fd: int | None = None

    def acquire(self, *, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> None:
        """Takes the lock; if another process holds it, raises :class:`Locked` or, with ``wait``,
        calls ``on_wait(holder)`` and blocks until it is free."""
        if fcntl is None or self._fd is not None:
            return
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
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            if self.remove_on_release:
                self.path.unlink(missing_ok=True)  # still held: nobody else can be writing it
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __del__(self) -> None:
        self.release()
