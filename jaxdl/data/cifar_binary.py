"""The official CIFAR-10 binary version: ``cifar-10-binary.tar.gz`` or its ``cifar-10-batches-bin/`` folder.

Each ``data_batch_N.bin`` (training, N = 1..5) and ``test_batch.bin`` is a
sequence of 3,073-byte records: one label byte (0-9), then the 32x32 image as
1,024 red, 1,024 green and 1,024 blue bytes, each plane row by row. The python
version of the same download is pickled, and jaxdl never unpickles: it is
refused in one line that names this version and TFDS.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from jaxdl.errors import JaxdlError

FOLDER = "cifar-10-batches-bin"
BATCHES = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}
RECORD_BYTES = 1 + 32 * 32 * 3
PYTHON_VERSION = "cifar-10-batches-py"


def _first_member(path: Path) -> str:
    try:
        with tarfile.open(path, "r:*") as tar:
            member = tar.next()
            return member.name if member is not None else ""
    except (tarfile.TarError, EOFError, OSError) as e:
        raise JaxdlError(f"{path}: cannot read the archive ({e}); is it a complete .tar.gz?") from None


def _folder_of(path: Path) -> Path | None:
    """The folder holding the batch files, where ``path`` is the binary version's folder or its parent."""
    for folder in (path, path / FOLDER):
        if (folder / BATCHES["test"][0]).is_file() or (folder / BATCHES["train"][0]).is_file():
            return folder
    return None


def kind_of(path: Path, archive: bool) -> str | None:
    """ "cifar-binary" for the binary version (folder or archive), None for anything else.

    Args:
      path: a folder or an archive.
      archive: whether ``path`` is a tar archive (its first member is read, not the whole file).

    Returns:
      ``"cifar-binary"`` or None.

    Raises:
      JaxdlError: ``path`` is the pickled python version.
    """
    if archive:
        top = PurePosixPath(_first_member(path)).parts[:1]
        if top == (PYTHON_VERSION,):
            _refuse_python_version(path)
        return "cifar-binary" if top == (FOLDER,) else None
    if path.name == PYTHON_VERSION or (path / PYTHON_VERSION).is_dir() or (path / "data_batch_1").is_file():
        _refuse_python_version(path)
    return "cifar-binary" if path.is_dir() and _folder_of(path) is not None else None


def _refuse_python_version(path: Path) -> None:
    raise JaxdlError(
        f"{path}: this is CIFAR-10's python version, which is pickled, and jaxdl never unpickles; use the binary "
        "version from the same page (cifar-10-binary.tar.gz) or TFDS (leave out --data)"
    )


def split_files(path: Path, split: str) -> list[Path]:
    """The batch files of ``split`` in a binary-version folder (for its fingerprint).

    Args:
      path: the ``cifar-10-batches-bin`` folder or its parent.
      split: "train" or "test".

    Returns:
      The paths of the split's ``.bin`` files, or ``[]`` when ``path`` holds none.
    """
    folder = _folder_of(path)
    return [folder / name for name in BATCHES[split]] if folder is not None else []


def read_split(path: Path, split: str, archive: bool) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 32, 32, 3) and int32 labels (N,) of ``split`` (train: 50,000, test: 10,000).

    Args:
      path: the binary version's folder (or its parent) or its ``.tar.gz``.
      split: "train" or "test".
      archive: whether ``path`` is an archive.

    Returns:
      ``(images, labels)``, the images in NHWC order.

    Raises:
      JaxdlError: a batch file is missing, truncated, or holds a label above 9.
    """
    names = BATCHES[split]
    if archive:
        from jaxdl.data.folder import _iter_archive  # refuses unsafe members and oversized files

        found = {}
        for member, data in _iter_archive(path):
            parts = PurePosixPath(member).parts
            if data is not None and len(parts) == 2 and parts[0] == FOLDER and parts[1] in names:
                found[parts[1]] = data
        where = f"{path}:{FOLDER}/"
    else:
        folder = _folder_of(path)
        found = {name: (folder / name).read_bytes() for name in names if (folder / name).is_file()}
        where = f"{folder}/"
    missing = [name for name in names if name not in found]
    if missing:
        raise JaxdlError(f"{where}: no {', '.join(missing)} (the {split} split of CIFAR-10's binary version)")
    images, labels = [], []
    for name in names:
        data = found[name]
        if len(data) == 0 or len(data) % RECORD_BYTES:
            raise JaxdlError(
                f"{where}{name}: {len(data)} bytes, not a whole number of {RECORD_BYTES}-byte records; "
                "is the download complete?"
            )
        records = np.frombuffer(data, np.uint8).reshape(-1, RECORD_BYTES)
        if records[:, 0].max() > 9:
            raise JaxdlError(f"{where}{name}: label {records[:, 0].max()} out of range for 10 classes")
        labels.append(records[:, 0].astype(np.int32))
        images.append(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)
