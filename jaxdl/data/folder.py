"""Image folders ``split/class/image`` read from a directory or straight from a tar archive.

Archives are read member by member into memory, never extracted, and any
member with an absolute path, a ``..`` component, or that is a link or device
is refused outright: a data file is not allowed to point anywhere else.
"""

from __future__ import annotations

import io
import os
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from jaxdl.errors import JaxdlError
from jaxdl.progress import progress_bar

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_FILE_BYTES = 64 * 2**20  # no image jaxdl reads comes near; a bigger member is refused before it is read
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_MODES = {1: "L", 3: "RGB"}


def is_archive(path: Path) -> bool:
    """Whether ``path`` names a tar archive (``.tar.gz``, ``.tgz`` or ``.tar``), by its name alone.

    Args:
      path: a file or folder path.

    Returns:
      True for an archive name.
    """
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _unsafe_reason(member: tarfile.TarInfo) -> str | None:
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in parts:
        return "a '..' component"
    if member.issym() or member.islnk():
        return "a link"
    if not (member.isfile() or member.isdir()):
        return "a special file"
    return None


def _iter_archive(path: Path, read: bool = True) -> Iterator[tuple[str, bytes | None]]:
    """Yields (member name, bytes) for files and (name, None) for folders, refusing unsafe members.

    With ``read=False``, files come with ``b""`` instead of their bytes."""
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                reason = _unsafe_reason(member)
                if reason:
                    raise JaxdlError(
                        f"{path}: refusing archive member {member.name!r} ({reason}); "
                        "use an archive of plain files under split/class/"
                    )
                if member.isdir():
                    yield member.name.rstrip("/"), None
                    continue
                if not read:
                    yield member.name, b""
                    continue
                _check_file_size(f"{path}:{member.name}", member.size)
                f = tar.extractfile(member)
                yield member.name, f.read() if f is not None else b""
    except (tarfile.TarError, EOFError, OSError) as e:
        raise JaxdlError(f"{path}: cannot read the archive ({e}); is it a complete .tar.gz?") from None


def _iter_directory(root: Path, split: str) -> Iterator[tuple[str, bytes | None]]:
    """Like _iter_archive for ``root/split`` only (other splits are not read)."""
    for dirpath, dirnames, filenames in os.walk(root / split):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        yield rel_dir.as_posix(), None
        for filename in sorted(filenames):
            file = Path(dirpath) / filename
            _check_file_size(str(file), file.stat().st_size)
            yield (rel_dir / filename).as_posix(), file.read_bytes()


def _check_file_size(where: str, size: int) -> None:
    if size > MAX_FILE_BYTES:
        limit = MAX_FILE_BYTES >> 20
        raise JaxdlError(f"{where}: {size} bytes, more than the {limit} MiB an image may have; remove it")


def _split_class(name: str, split: str) -> str | None:
    """The class of an entry ``[prefix/]split/class[/file]``, or None if it is elsewhere."""
    parts = PurePosixPath(name).parts
    for i in range(len(parts) - 1):
        if parts[i] == split and i + 1 < len(parts):
            if len(parts) - i in (2, 3):
                return parts[i + 1]
    return None


def available_splits(path: Path) -> list[str]:
    """The split folders a directory holds (archives: not listed without a full read).

    Args:
      path: a folder or an archive.

    Returns:
      The names of ``path``'s visible subfolders, sorted; ``[]`` for an archive or a file.
    """
    if path.is_dir():
        return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    return []


def find_splits(path: Path) -> list[str]:
    """Every split of an image folder or archive: the folders that hold ``class/image`` files.

    An archive's member names are read (its bytes are decompressed once, nothing
    is decoded or extracted); a folder's split folders are listed.

    Args:
      path: a folder or an archive of ``split/class/image`` files.

    Returns:
      The split names, sorted.

    Raises:
      JaxdlError: an archive is unreadable or holds an unsafe member.
    """
    if is_archive(path):
        splits = set()
        for name, data in _iter_archive(path, read=False):
            parts = PurePosixPath(name).parts
            if data is not None and len(parts) >= 3 and name.lower().endswith(IMAGE_SUFFIXES):
                splits.add(parts[-3])
        return sorted(splits)
    return [s for s in available_splits(path) if any(c.is_dir() for c in (path / s).iterdir())]


def decode_image(
    data: bytes, where: str, shape: tuple[int, int, int] | None, resize: tuple[int, int, int] | None = None
) -> np.ndarray:
    """Decodes one image to uint8 (H, W, C), checking its size and mode against ``shape``.

    With ``resize`` (H, W, C), the image is instead converted to grayscale (C = 1)
    or RGB (C = 3) and resized to H x W (bilinear, antialiased).

    The size in the header is checked before any pixel is decoded, and an image
    over Pillow's decompression-bomb limit (about 89 million pixels) is refused:
    a small file cannot make jaxdl allocate gigabytes.

    Args:
      data: the file's bytes (PNG, JPEG, BMP, GIF or WebP).
      where: the file's name, for error messages.
      shape: the (H, W, C) the image must have; None accepts any grayscale or RGB image.
      resize: (H, W, C) to convert and resize to instead of checking.

    Returns:
      uint8 ``(H, W, C)``.

    Raises:
      JaxdlError: in one line naming ``where``, for an unreadable, truncated, oversized or
        wrongly shaped image.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                mode, size = img.mode, img.size
                if shape is not None and resize is None:
                    _check_shape(where, mode, size, shape)
                img.load()
                if resize is not None:
                    h, w, c = resize
                    mode = _MODES[c]
                    array = np.asarray(img.convert(mode).resize((w, h), Image.Resampling.BILINEAR))
                else:
                    array = np.asarray(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise JaxdlError(f"{where}: refusing a possible decompression bomb ({e}); remove it") from None
    except UnidentifiedImageError:
        raise JaxdlError(f"{where}: not an image Pillow can read; replace or remove it") from None
    except JaxdlError:
        raise
    except Exception as e:  # any decoder failure: a truncated file, a header that lies, a codec error
        cause = f"{type(e).__name__}: {e}"
        raise JaxdlError(f"{where}: unreadable or truncated image ({cause}); replace or remove it") from None
    if shape is None and mode not in _MODES.values():
        raise JaxdlError(f"{where}: image mode {mode} is not grayscale (L) or RGB")
    return array.reshape(array.shape[0], array.shape[1], -1)


def _channels(data: bytes, where: str) -> int:
    """1 for a grayscale image, 3 for any other (RGB, RGBA, palette: converted to RGB), from its header."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return 1 if img.mode in ("1", "L", "I", "I;16", "F") else 3
    except Exception as e:
        raise JaxdlError(f"{where}: not an image Pillow can read ({type(e).__name__}); replace or remove it") from None


def _check_shape(where: str, mode: str, size: tuple[int, int], shape: tuple[int, int, int]) -> None:
    h, w, c = shape
    if size != (w, h) or mode != _MODES[c]:
        raise JaxdlError(f"{where}: image is {size[0]}x{size[1]} mode {mode}, expected {w}x{h} mode {_MODES[c]}")


def read_image_folder(
    path: Path,
    split: str,
    class_names: tuple[str, ...] | None,
    shape: tuple[int, int, int] | None,
    image_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Reads ``split/class/image`` files from a directory or an archive of one.

    Args:
      path: the folder, or a ``.tar.gz`` / ``.tgz`` / ``.tar`` of it.
      split: the split folder to read.
      class_names: the classes in label order; None orders the folders alphabetically.
      shape: the (H, W, C) every image must have; None takes the first image's.
      image_size: (H, W) every image is resized to (channels: ``shape``'s, else
        grayscale if the first image is, else RGB), instead of refusing other sizes.

    Returns:
      uint8 images (N, H, W, C), int32 labels (N,), the class names. When every
      file name in the split is a distinct number (the MNIST copy numbers its
      files by their index in the original release), examples come in that
      order; otherwise by class, then by file name.

    Raises:
      JaxdlError: an unsafe archive member, a missing split, an empty or
        unexpected class folder, an unreadable image or one of the wrong size or mode.
    """
    entries = _iter_archive(path) if is_archive(path) else _iter_directory(path, split)
    by_class: dict[str, list[tuple[str, bytes]]] = {}
    for name, data in entries:
        cls = _split_class(name, split)
        if cls is None:
            continue
        files = by_class.setdefault(cls, [])
        if data is not None and name.lower().endswith(IMAGE_SUFFIXES):
            files.append((name, data))

    if not by_class:
        found = available_splits(path)
        hint = f"; it holds: {', '.join(found)}" if found else ""
        raise JaxdlError(f"{path}: no split folder {split!r} (expected {split}/<class>/<image>){hint}")
    names = tuple(sorted(by_class)) if class_names is None else class_names
    unexpected = sorted(set(by_class) - set(names))
    if unexpected:
        raise JaxdlError(f"{path}: unexpected class folder {split}/{unexpected[0]}; expected {', '.join(names)}")
    for cls in names:
        if not by_class.get(cls):
            raise JaxdlError(f"{path}: class folder {split}/{cls} is missing or holds no images")

    files = [(label, name, data) for label, cls in enumerate(names) for name, data in by_class[cls]]
    stems = [PurePosixPath(name).stem for _, name, _ in files]
    if all(s.isdigit() for s in stems) and len(set(map(int, stems))) == len(stems):
        # Files numbered across the whole split (the MNIST copy's are indices
        # into the original release) keep that original order.
        files.sort(key=lambda f: int(PurePosixPath(f[1]).stem))
    else:
        files.sort(key=lambda f: (f[0], _natural_key(f[1])))
    resize = None
    if image_size is not None and files:
        channels = shape[2] if shape else _channels(files[0][2], f"{path}:{files[0][1]}")
        resize = (*image_size, channels)
    images, labels, shape_from = [], [], None
    with progress_bar(len(files), f"decoding {split}", unit="image", delay=1.0) as bar:
        for label, name, data in files:
            image, shape, shape_from = _decoded(path, name, data, shape, shape_from, resize)
            images.append(image)
            labels.append(label)
            bar.update()
    return np.stack(images), np.asarray(labels, np.int32), names


def _decoded(path: Path, name: str, data: bytes, shape, shape_from: str | None, resize):
    """(image, the split's shape, the file it came from): each image has the first one's shape."""
    try:
        image = decode_image(data, f"{path}:{name}", shape, resize)
    except JaxdlError as e:
        if shape_from is None or "expected" not in str(e):
            raise
        raise JaxdlError(
            f"{e.template} (the size of the first image, {shape_from}); an image size setting resizes them all"
        ) from None
    if shape is None:
        shape, shape_from = image.shape, name
    return image, shape, shape_from


def _natural_key(name: str) -> tuple:
    """Orders 'img2.png' before 'img10.png' so the order is stable and readable."""
    stem = PurePosixPath(name).stem
    return (int(stem), name) if stem.isdigit() else (float("inf"), name)
