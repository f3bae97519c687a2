"""A cache of decoded arrays, outside the repository, keyed by the source's content.

Files are ``.npz`` written atomically and read with ``allow_pickle=False``.
Each holds a SHA-256 of its arrays, checked on every read: a truncated or
altered file is reported, deleted and rebuilt, never trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jaxdl.locks import FileLock, remove_orphans
from jaxdl.rundir import atomic_file

CACHE_ENV = "JAXDL_CACHE_DIR"
FORMAT_VERSION = 2  # bump when the decoded arrays change for the same source


def cache_dir() -> Path:
    """``$JAXDL_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxdl``, else ``~/.cache/jaxdl``.

    Returns:
      The folder (not created here).
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxdl"


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, read a mebibyte at a time.

    Args:
      path: the file.

    Returns:
      The hex digest.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_fingerprint(root: Path) -> str:
    """A digest of every file's relative path, size and modification time under ``root``.

    Reading every byte of a 70,000-file folder on each load would cost more
    than the cache saves; a changed, added or removed file changes this.

    Args:
      root: the folder.

    Returns:
      A SHA-256 hex digest.
    """
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            st = p.stat()
            # the name's bytes as the file system holds them: a name need not be UTF-8 (b"\xff.png" is legal)
            h.update(os.fsencode(p.relative_to(root)) + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_key(**parts: str) -> str:
    """The name of a cache entry: a digest of ``parts`` and the cache's format version.

    Args:
      **parts: what identifies the decoded arrays (the data set, the split, a source digest), as strings.

    Returns:
      24 hex characters; a change in any part, or in ``FORMAT_VERSION``, gives a new key.
    """
    payload = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\n".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def load_cached(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays stored at ``path``, or None if absent; a corrupt file is deleted.

    Args:
      path: a ``.npz`` written by :func:`save_cached`.

    Returns:
      ``{name: array}`` whose checksum matched, or None when the file is missing or corrupt
      (a corrupt one is reported on stderr and removed, so the caller rebuilds it).
    """
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        digest = str(arrays.pop("__sha256__"))
        if digest != _arrays_digest(arrays):
            raise ValueError("checksum mismatch")
        return arrays
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        print(f"jaxdl: cache file {path} is corrupt ({e}); rebuilding it", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None


def save_cached(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes ``arrays`` and their checksum to ``path`` atomically.

    Args:
      path: the ``.npz`` to write; its folder must exist.
      arrays: ``{name: array}``; names must not start with ``__``.
    """
    with atomic_file(path, "wb") as f:
        np.savez(f, __sha256__=np.asarray(_arrays_digest(arrays)), **arrays)


@contextlib.contextmanager
def one_writer(path: Path) -> Iterator[None]:
    """Held while this process builds the cache entry ``path``.

    Another process building the same entry waits for it (and then finds the entry written) instead
    of decoding the data twice. The lock file goes when the entry is written or abandoned; lock files
    that a killed process left behind go on the next use of the cache. Where no lock file can be made
    (a read-only cache folder), nothing is locked.

    Args:
      path: the cache entry about to be written.
    """
    lock = FileLock(path.with_name(path.name + ".lock"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(path.parent, "*.npz.lock")
        lock.acquire(
            wait=True,
            on_wait=lambda holder: print(
                f"jaxdl: waiting for process {holder}, which is writing the cache file {path}", file=sys.stderr
            ),
        )
    except OSError:
        pass
    try:
        yield
    finally:
        lock.release()
