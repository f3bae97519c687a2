"""The IDX format of the original MNIST and Fashion-MNIST releases.

A file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the data. The
``*-idx3-ubyte`` files hold (N, 28, 28) uint8 images, ``*-idx1-ubyte`` (N,)
uint8 labels; both may be gzipped.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from jaxdl.errors import JaxdlError

UBYTE = 0x08
# File name stems of each split: train-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz), ...
SPLIT_PREFIXES = {"train": "train", "test": "t10k"}


MAX_IDX_BYTES = 2**30  # 20x MNIST's training images: a header promising more is refused


def read_idx(path: Path) -> np.ndarray:
    """Reads one IDX file (optionally gzipped) of unsigned bytes into an array.

    A gzipped file is decompressed as a stream, never past the bytes its header
    promises (at most ``MAX_IDX_BYTES``): a small .gz cannot expand to fill memory.

    Args:
      path: an ``*-idx3-ubyte`` or ``*-idx1-ubyte`` file, ``.gz`` or not.

    Returns:
      A uint8 array of the shape in the header ((N, 28, 28) images, (N,) labels).

    Raises:
      JaxdlError: a bad magic number, a data type other than unsigned bytes, a header promising too
        much, or fewer or more bytes than the header promises.
    """
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise JaxdlError(f"{path}: not an IDX file (bad magic number)")
            dtype_code, ndim = head[2], head[3]
            if dtype_code != UBYTE:
                raise JaxdlError(f"{path}: IDX data type 0x{dtype_code:02x} is not unsigned bytes (0x08)")
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise JaxdlError(f"{path}: truncated IDX header")
            shape = struct.unpack(f">{ndim}I", dims)
            expected = int(np.prod(shape, dtype=np.int64))
            if expected > MAX_IDX_BYTES:
                raise JaxdlError(f"{path}: IDX header promises {expected} bytes for shape {shape}; refusing it")
            data = f.read(expected + 1)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise JaxdlError(f"{path}: cannot read ({e}); is the download complete?") from None
    if len(data) != expected:
        found = f"{len(data)}" if len(data) <= expected else "more"
        raise JaxdlError(
            f"{path}: IDX header promises {expected} bytes of data for shape {shape}, "
            f"found {found}; the file is truncated or corrupt"
        )
    return np.frombuffer(data, np.uint8).reshape(shape)


def idx_files(directory: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) files of ``split`` in ``directory``, or None if absent.

    Args:
      directory: a folder of IDX files, as MNIST and Fashion-MNIST are downloaded.
      split: "train" (``train-*``) or "test" (``t10k-*``); the gzipped file is preferred.

    Returns:
      ``(images path, labels path)``, or None when either is missing or the split is unknown.
    """
    prefix = SPLIT_PREFIXES.get(split)
    if prefix is None:
        return None
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        candidates = [directory / f"{prefix}-{kind}{ext}" for ext in (".gz", "")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        found.append(path)
    return found[0], found[1]


def is_idx_directory(directory: Path) -> bool:
    """Whether ``directory`` is a folder holding at least one ``*-idx1-ubyte`` or ``*-idx3-ubyte`` file.

    Args:
      directory: any path.

    Returns:
      True for a folder of IDX files.
    """
    return directory.is_dir() and any(directory.glob("*-idx[13]-ubyte*"))


def read_idx_split(directory: Path, split: str, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, H, W, 1) and int32 labels (N,) of one split of an IDX directory.

    Args:
      directory: a folder of IDX files.
      split: "train" or "test".
      num_classes: labels must be below it; None skips the check.

    Returns:
      ``(images, labels)``.

    Raises:
      JaxdlError: the split's files are missing, or images and labels disagree in count or shape,
        or a label is out of range.
    """
    files = idx_files(directory, split)
    if files is None:
        raise JaxdlError(
            f"{directory}: no IDX files for split {split!r} "
            f"(expected {SPLIT_PREFIXES.get(split, '?')}-images-idx3-ubyte[.gz] and "
            f"{SPLIT_PREFIXES.get(split, '?')}-labels-idx1-ubyte[.gz])"
        )
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or labels.ndim != 1:
        raise JaxdlError(f"{directory}: IDX images must be 3-D and labels 1-D, got {images.shape}, {labels.shape}")
    if len(images) != len(labels):
        raise JaxdlError(f"{directory}: {len(images)} images but {len(labels)} labels in split {split!r}")
    if num_classes is not None and labels.size and labels.max() >= num_classes:
        raise JaxdlError(f"{files[1]}: label {labels.max()} out of range for {num_classes} classes")
    return images[..., None], labels.astype(np.int32)
