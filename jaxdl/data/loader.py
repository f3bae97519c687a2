"""``load(name, split)``: a named data set from a local copy, TFDS or the embedded generators."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jaxdl.data import cache as cache_lib
from jaxdl.data import cifar_binary
from jaxdl.data.catalog import DATASETS, EMBEDDED, DatasetSpec
from jaxdl.data.dataset import Dataset
from jaxdl.data.embedded import make_blobs_dataset, make_digits_dataset
from jaxdl.data.folder import ARCHIVE_SUFFIXES, find_splits, is_archive, read_image_folder
from jaxdl.data.idx import idx_files, is_idx_directory, read_idx_split
from jaxdl.data.tfds_source import read_tfds
from jaxdl.errors import JaxdlError
from jaxdl.progress import stage

DATA_DIR_ENV = "JAXDL_DATA_DIR"
_data_dir: contextvars.ContextVar[Path | None] = contextvars.ContextVar("jaxdl_data_dir", default=None)


@contextlib.contextmanager
def local_copies(folder: str | os.PathLike | None) -> Iterator[None]:
    """Within the block, :func:`load` looks for local copies in ``folder`` (None: no change).

    It takes the place of ``$JAXDL_DATA_DIR`` for this thread only and leaves
    the environment alone.

    Args:
      folder: a folder of local copies (named as ``DatasetSpec.local_names``), or None.

    Raises:
      JaxdlError: ``folder`` is not a directory.
    """
    if folder is None:
        yield
        return
    folder = Path(folder).expanduser().absolute()
    if not folder.is_dir():
        raise JaxdlError(f"{{data_dir}} {folder} is not a directory")
    token = _data_dir.set(folder)
    try:
        yield
    finally:
        _data_dir.reset(token)


def spec_for(name: str) -> DatasetSpec:
    """The catalogue entry of a named data set.

    Args:
      name: a key of ``DATASETS``.

    Returns:
      Its :class:`~jaxdl.data.catalog.DatasetSpec`.

    Raises:
      JaxdlError: for an unknown name, listing the known ones.
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise JaxdlError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def find_local_copy(spec: DatasetSpec, data: str | os.PathLike | None) -> Path | None:
    """``data`` if given (it must exist), else a copy in ``$JAXDL_DATA_DIR``, else None.

    The folder set by :func:`local_copies` takes the place of ``$JAXDL_DATA_DIR``.

    Args:
      spec: the data set, whose ``local_names`` are looked for.
      data: an explicit path, or None.

    Returns:
      The copy's path, or None when there is none (TFDS is then the source).

    Raises:
      JaxdlError: ``data`` does not exist, or ``$JAXDL_DATA_DIR`` is not a directory.
    """
    if data:
        path = Path(data).expanduser()
        if not path.exists():
            raise JaxdlError(f"{{data}} {path} does not exist; give the path of a local copy of {spec.name}")
        return path
    root = _data_dir.get()
    if root is None and os.environ.get(DATA_DIR_ENV):
        root = Path(os.environ[DATA_DIR_ENV]).expanduser()
        if not root.is_dir():
            raise JaxdlError(
                f"${DATA_DIR_ENV} is {os.environ[DATA_DIR_ENV]}, which is not a directory "
                f"(seen from {Path.cwd()}); set it to the folder of the local copies"
            )
    if root is not None:
        for candidate in spec.local_names:
            if (root / candidate).exists():
                return root / candidate
    return None


def _source_kind(spec: DatasetSpec, path: Path) -> str:
    archive = path.is_file() and is_archive(path)
    if spec.name == "cifar10" and (archive or path.is_dir()) and cifar_binary.kind_of(path, archive):
        return "cifar-binary"
    if archive:
        return "archive"
    if is_idx_directory(path):
        return "idx"
    if path.is_dir():
        return "folder"
    raise JaxdlError(f"{{data}} {path} is neither a folder nor a {'/'.join(ARCHIVE_SUFFIXES)} archive of one")


def _fingerprint(kind: str, path: Path, split: str) -> str:
    if kind == "archive" or (kind == "cifar-binary" and is_archive(path)):
        return cache_lib.file_digest(path)
    if kind == "cifar-binary":
        return ",".join(cache_lib.file_digest(f) for f in cifar_binary.split_files(path, split) if f.is_file())
    if kind == "idx":
        files = idx_files(path, split)
        return ",".join(cache_lib.file_digest(f) for f in files) if files else "missing"
    return cache_lib.tree_fingerprint(path / split) if (path / split).is_dir() else "missing"


def _read_local(spec: DatasetSpec, kind: str, path: Path, split: str, image_size: tuple[int, int] | None):
    if kind == "cifar-binary":
        if image_size is not None:
            raise JaxdlError(f"{path}: image_size applies to image folders, not to CIFAR-10's binary version")
        images, labels = cifar_binary.read_split(path, split, archive=is_archive(path))
        return images, labels, spec.class_names
    if kind == "idx":
        if image_size is not None:
            raise JaxdlError(f"{path}: image_size applies to image folders, not to IDX files")
        images, labels = read_idx_split(path, split, len(spec.class_names) if spec.class_names else None)
        if spec.image_shape is not None and images.shape[1:] != spec.image_shape:
            raise JaxdlError(f"{path}: IDX images are {images.shape[1:]}, {spec.name} expects {spec.image_shape}")
        names = spec.class_names or tuple(str(i) for i in range(int(labels.max()) + 1))
        return images, labels, names
    try:
        return read_image_folder(path, split, spec.class_names, spec.image_shape, image_size)
    except JaxdlError as e:
        if "unexpected class folder" not in str(e):
            raise
        raise JaxdlError(
            f"{e.template}; for a folder of other classes use the imagefolder data set "
            "(jaxdl run image-classifier --data PATH trains the MLP or CNN on it)"
        ) from None


def _check_split(spec: DatasetSpec, split: str) -> None:
    if spec.splits and split not in spec.splits:
        raise JaxdlError(
            f"{spec.name} has no split {split!r}; its splits: {', '.join(spec.splits)} "
            "(jaxdl.data.train_val_split makes a validation set)"
        )


def load(
    name: str,
    split: str = "train",
    *,
    data: str | os.PathLike | None = None,
    use_cache: bool = True,
    tfds_data_dir: str | None = None,
    image_size: tuple[int, int] | None = None,
) -> Dataset:
    """Loads one split of a named data set into host memory.

    Sources, in order: ``data`` (an image folder ``split/class/image`` or a
    ``.tar.gz`` of one, a folder of IDX files as MNIST and Fashion-MNIST are
    downloaded, or CIFAR-10's binary version, ``cifar-10-binary.tar.gz`` or its
    ``cifar-10-batches-bin/`` folder), a copy found in
    ``$JAXDL_DATA_DIR``, then TFDS. Decoded arrays are cached (see
    :mod:`jaxdl.data.cache`); ``blobs`` and ``digits`` are generated locally.

    Args:
      name: "mnist", "fashion_mnist", "cifar10", "digits", "blobs" or "imagefolder".
      split: "train" or "test" (any folder name for "imagefolder").
      data: path of a local copy.
      use_cache: read and write the decoded-array cache.
      tfds_data_dir: TFDS's data directory, when loading through TFDS.
      image_size: (H, W) to resize every image of an image folder to (bilinear),
        for folders whose images differ in size; None keeps the size, which
        must then be the same for every image.

    Returns:
      A :class:`Dataset`: uint8 NHWC images, int32 labels and the class names.

    Example:
      >>> train = load("mnist", "train", data="../shared/datasets/mnist-png.tar.gz")
      >>> train.inputs.shape, train.class_names[:3]
      ((60000, 28, 28, 1), ('0', '1', '2'))
    """
    spec = spec_for(name)
    _check_split(spec, split)
    if image_size is not None:
        image_size = tuple(int(v) for v in image_size)
        if len(image_size) != 2 or min(image_size) < 1:
            raise JaxdlError(f"image_size must be two positive integers (height, width), got {image_size}")
    if name in EMBEDDED:
        if data:
            raise JaxdlError(f"{name} is generated locally, so {{data}} does not apply")
        return _load_embedded(name, split)

    path = find_local_copy(spec, data)
    if path is None:
        if spec.tfds_name is None:
            raise JaxdlError(f"{name} needs {{data}}: a split/class/image folder or a .tar.gz of one")
        kind, fingerprint, source = "tfds", f"{spec.tfds_name}:{tfds_data_dir}", f"tfds:{spec.tfds_name}"
    else:
        kind = _source_kind(spec, path)
        fingerprint, source = _fingerprint(kind, path, split), str(path)
    if image_size is not None:
        if kind == "tfds":
            raise JaxdlError(f"image_size applies to image folders; {name} comes from TFDS here")
        fingerprint += f":resized to {image_size[0]}x{image_size[1]}"

    cache_file = cache_lib.cache_dir() / (
        f"{name}-{split}-{cache_lib.cache_key(name=name, split=split, kind=kind, source=fingerprint)}.npz"
    )
    arrays = cache_lib.load_cached(cache_file) if use_cache else None
    if arrays is None and not use_cache:
        arrays = _read_arrays(spec, kind, path, split, tfds_data_dir, image_size)
    elif arrays is None:
        with cache_lib.one_writer(cache_file):
            arrays = cache_lib.load_cached(cache_file)  # written by the process this one waited for?
            if arrays is None:
                stage(f"decoding {name} {split} from {source} (the first time only: the arrays are then cached)")
                arrays = _read_arrays(spec, kind, path, split, tfds_data_dir, image_size)
                try:
                    cache_lib.save_cached(cache_file, arrays)
                    stage(f"cached {name} {split} in {cache_file} ({cache_file.stat().st_size / 2**20:.0f} MiB)")
                except JaxdlError as e:  # the run does not need the cache: say so and go on
                    print(f"jaxdl: warning: {e.template.split(';')[0]}; continuing without the cache", file=sys.stderr)
    return Dataset(
        name=name,
        split=split,
        inputs=arrays["images"],
        labels=arrays["labels"].astype(np.int32),
        class_names=tuple(str(c) for c in arrays["class_names"]),
        source=source,
    )


def _read_arrays(
    spec: DatasetSpec, kind: str, path: Path | None, split: str, tfds_data_dir, image_size=None
) -> dict[str, np.ndarray]:
    """Decodes a split from its source: the arrays the cache stores."""
    if kind == "tfds":
        try:
            images, labels = read_tfds(spec.tfds_name, split, tfds_data_dir)
        except JaxdlError as e:
            raise JaxdlError(f"{e.template}{_local_candidates_hint(spec)}") from None
        names = spec.class_names
    else:
        images, labels, names = _read_local(spec, kind, path, split, image_size)
    return {"images": images, "labels": labels, "class_names": np.asarray(names)}


def _local_candidates_hint(spec: DatasetSpec) -> str:
    names = " or ".join(spec.local_names)
    return f" (there, a copy is named {names})" if names else ""


def _load_embedded(name: str, split: str) -> Dataset:
    spec = DATASETS[name]
    if name == "blobs":
        x, y = make_blobs_dataset()
    else:
        x, y = make_digits_dataset(split)
    return Dataset(name, split, x, y, spec.class_names, "embedded")


def load_image_folder(
    path: str | os.PathLike,
    *,
    image_size: tuple[int, int] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, Dataset]:
    """Your own ``split/class/image`` folder (or ``.tar.gz``) as ``{"train", "val", "test"}`` Datasets.

    The classes are the class folders of ``train`` (alphabetical) and the image
    size is the images' own, or ``image_size`` (H, W) when they differ. A split
    the folder lacks is carved from ``train`` at random (``seed``): ``test``
    (``test_fraction``) first, then ``val`` (``val_fraction`` of what is left);
    ``val``, ``valid`` or ``validation`` folders count as the validation split.
    Each Dataset's ``source`` says where it came from.

    Args:
      path: the folder or archive; it must hold ``train/<class>/<image>`` with at least two classes.
      image_size: (H, W) to resize every image to, or None to require one size.
      val_fraction: the share of the remaining training images carved off as ``val`` when there is no
        validation folder.
      test_fraction: the share of the training images carved off as ``test`` when there is no test folder.
      seed: the seed of the carving permutation.

    Returns:
      ``{"train": Dataset, "val": Dataset, "test": Dataset}``, all labelled with train's classes
      (images of a class train lacks are left out, with a warning).

    Raises:
      JaxdlError: in one line, for a missing path or train split, a single class, or too few images to carve.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise JaxdlError(f"{{data}} {path} does not exist; give a split/class/image folder or a .tar.gz of one")
    found = find_splits(path) if (path.is_dir() or is_archive(path)) else []
    if "train" not in found:
        held = f"; it holds: {', '.join(found)}" if found else ""
        raise JaxdlError(f"{path}: no train/<class>/<image> files (the training split){held}")
    splits = {"train": load("imagefolder", "train", data=path, image_size=image_size)}
    names = splits["train"].class_names
    if len(names) < 2:
        raise JaxdlError(
            f"{path}: train holds one class folder ({names[0]}); a classifier needs at least two, "
            "each a folder of its images"
        )
    rng = np.random.default_rng(seed)
    for split, aliases, fraction in (
        ("test", ("test",), test_fraction),
        ("val", ("val", "valid", "validation"), val_fraction),
    ):
        folder = next((a for a in aliases if a in found), None)
        if folder is not None:
            ds = _labelled_as(load("imagefolder", folder, data=path, image_size=image_size), names, path)
            splits[split] = dataclasses.replace(ds, split=split)
            continue
        train = splits["train"]
        size = int(round(fraction * len(train)))
        if not 0 < size < len(train):
            raise JaxdlError(f"{path}: too few training images ({len(train)}) to carve a {split} split from")
        order = rng.permutation(len(train))
        carved = train.subset(np.sort(order[:size]), split)
        splits[split] = dataclasses.replace(carved, source=f"{train.source} ({split}: {size} images carved from train)")
        splits["train"] = train.subset(np.sort(order[size:]))
    return {k: splits[k] for k in ("train", "val", "test")}


def _labelled_as(ds: Dataset, names: tuple[str, ...], path: Path) -> Dataset:
    """``ds`` with the training split's labels. Images of a class the training split lacks are left out,
    with a warning: no model trained on it can predict that class."""
    if ds.class_names == names:
        return ds
    unknown = [c for c in ds.class_names if c not in names]
    label_of = np.array([names.index(c) if c in names else -1 for c in ds.class_names], np.int32)
    labels = label_of[ds.labels]
    kept = labels >= 0
    if unknown:
        counts = ds.class_counts()
        which = ", ".join(f"{ds.split}/{c} ({counts[c]} images)" for c in unknown)
        if not kept.any():
            raise JaxdlError(
                f"{path}: no class of {ds.split} is one of train's ({', '.join(names)}); check the folders"
            )
        print(f"jaxdl: warning: {path}: {which}: a class train lacks; left out", file=sys.stderr)
    return dataclasses.replace(ds, inputs=ds.inputs[kept], labels=labels[kept], class_names=names)
