"""Data loading from every source on tiny data made here, the refusals, and the cache."""

import gzip
import io
import os
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxdl import data as D
from jaxdl.data import loader
from jaxdl.errors import JaxdlError

CIFAR = D.DATASETS["cifar10"].class_names


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("JAXDL_DATA_DIR", raising=False)


def _png(array, fmt="PNG"):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def _gray(seed, size=28):
    return np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)


def make_mnist_folder(root: Path, per_class=2, splits=("train", "test")) -> dict:
    """root/split/digit/n.png with random 28x28 grayscale images; returns the arrays by path."""
    arrays = {}
    for split in splits:
        for digit in range(10):
            folder = root / split / str(digit)
            folder.mkdir(parents=True)
            for n in range(per_class):
                a = _gray(hash((split, digit, n)) % 2**32)
                (folder / f"{n}.png").write_bytes(_png(a))
                arrays[f"{split}/{digit}/{n}.png"] = a
    return arrays


def make_tar(source: Path, target: Path, prefix: str = "") -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=prefix + path.relative_to(source).as_posix(), recursive=False)
    return target


def add_member(tar_path: Path, info: tarfile.TarInfo, data: bytes = b"") -> None:
    with tarfile.open(tar_path, "w:gz") as tar:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data else None)


# ------------------------------------------------------------------- folders


def test_folder_and_archive_give_the_same_arrays_in_fixed_class_order(tmp_path):
    arrays = make_mnist_folder(tmp_path / "mnist")
    archive = make_tar(tmp_path / "mnist", tmp_path / "mnist.tar.gz", prefix="mnist-png/")
    from_dir = D.load("mnist", "train", data=tmp_path / "mnist")
    from_tar = D.load("mnist", "test", data=archive)
    assert from_dir.inputs.shape == (20, 28, 28, 1) and from_dir.inputs.dtype == np.uint8
    assert from_dir.labels.tolist() == [d for d in range(10) for _ in range(2)]
    np.testing.assert_array_equal(from_dir.inputs[2, ..., 0], arrays["train/1/0.png"])
    np.testing.assert_array_equal(from_tar.inputs[19, ..., 0], arrays["test/9/1.png"])
    assert from_tar.class_names == tuple("0123456789")
    assert from_tar.class_counts()["3"] == 2


def test_files_numbered_across_the_split_keep_their_original_order(tmp_path):
    # Like the MNIST copy: train/5/0.png, train/0/1.png, train/4/2.png ... are indices into the release.
    for index, digit in enumerate([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]):
        folder = tmp_path / "m" / "train" / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.png").write_bytes(_png(np.full((28, 28), index, np.uint8)))
    for digit in (6, 7, 8):
        (tmp_path / "m" / "train" / str(digit)).mkdir()
        (tmp_path / "m" / "train" / str(digit) / f"{10 + digit}.png").write_bytes(_png(_gray(digit)))
    ds = D.load("mnist", "train", data=tmp_path / "m")
    assert ds.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert ds.inputs[:10, 0, 0, 0].tolist() == list(range(10))


def test_cifar_class_order_is_fixed_not_alphabetical(tmp_path):
    root = tmp_path / "cifar"
    for label, cls in enumerate(CIFAR):  # class k is a flat image of grey level 20 k
        (root / "train" / cls).mkdir(parents=True)
        flat = np.full((32, 32, 3), 20 * label, np.uint8)
        (root / "train" / cls / "0000.jpg").write_bytes(_png(flat, "JPEG"))
    ds = D.load("cifar10", "train", data=make_tar(root, tmp_path / "c.tar.gz"))
    assert ds.inputs.shape == (10, 32, 32, 3)
    assert ds.class_names == CIFAR and ds.labels.tolist() == list(range(10))
    # JPEG is lossy: close to, not always equal to, the original pixels.
    np.testing.assert_allclose(ds.inputs.mean(axis=(1, 2, 3)), 20 * np.arange(10), atol=2)


def test_imagefolder_orders_classes_alphabetically(tmp_path):
    for cls in ("zebra", "ant"):
        (tmp_path / "f" / "val" / cls).mkdir(parents=True)
        (tmp_path / "f" / "val" / cls / "a.png").write_bytes(_png(_gray(1, 5)))
    ds = D.load("imagefolder", "val", data=tmp_path / "f")
    assert ds.class_names == ("ant", "zebra") and ds.inputs.shape == (2, 5, 5, 1)


@pytest.mark.parametrize(
    "make_member, reason",
    [
        (lambda: tarfile.TarInfo("/etc/evil.png"), "an absolute path"),
        (lambda: tarfile.TarInfo("train/0/../../../evil.png"), "a '..' component"),
        (lambda: _link("train/0/link.png", tarfile.SYMTYPE), "a link"),
        (lambda: _link("train/0/hard.png", tarfile.LNKTYPE), "a link"),
    ],
)
def test_unsafe_archive_members_are_refused(tmp_path, make_member, reason):
    archive = tmp_path / "evil.tar.gz"
    add_member(archive, make_member(), b"x" if reason != "a link" else b"")
    with pytest.raises(JaxdlError, match=f"refusing archive member .*{reason}"):
        D.load("mnist", "train", data=archive)
    assert not (tmp_path / "evil.png").exists() and not Path("/etc/evil.png").exists()


def _link(name, kind):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, "/etc/passwd"
    return info


def test_truncated_image_names_the_file(tmp_path):
    make_mnist_folder(tmp_path / "m", splits=("train",))
    path = tmp_path / "m" / "train" / "4" / "1.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(JaxdlError, match=r"train/4/1.png: unreadable or truncated image"):
        D.load("mnist", "train", data=tmp_path / "m")


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((27, 28), np.uint8), "image is 28x27 mode L, expected 28x28 mode L"),
        (np.zeros((28, 28, 3), np.uint8), "image is 28x28 mode RGB, expected 28x28 mode L"),
    ],
)
def test_wrong_size_or_mode_names_the_file(tmp_path, image, message):
    make_mnist_folder(tmp_path / "m", splits=("train",))
    (tmp_path / "m" / "train" / "7" / "0.png").write_bytes(_png(image))
    with pytest.raises(JaxdlError, match=rf"train/7/0.png: {message}"):
        D.load("mnist", "train", data=tmp_path / "m")


def test_empty_or_unexpected_class_folders(tmp_path):
    make_mnist_folder(tmp_path / "m", splits=("train",))
    for f in (tmp_path / "m" / "train" / "5").iterdir():
        f.unlink()
    with pytest.raises(JaxdlError, match="class folder train/5 is missing or holds no images"):
        D.load("mnist", "train", data=tmp_path / "m")
    (tmp_path / "m" / "train" / "5" / "0.png").write_bytes(_png(_gray(0)))
    (tmp_path / "m" / "train" / "eleven").mkdir()
    with pytest.raises(JaxdlError, match="unexpected class folder train/eleven"):
        D.load("mnist", "train", data=tmp_path / "m")


def test_missing_split_unknown_name_missing_path_and_bad_files(tmp_path):
    make_mnist_folder(tmp_path / "m", splits=("train",))
    with pytest.raises(JaxdlError, match="no split folder 'test'.*it holds: train"):
        D.load("mnist", "test", data=tmp_path / "m")
    with pytest.raises(JaxdlError, match="mnist has no split 'val'"):
        D.load("mnist", "val", data=tmp_path / "m")
    with pytest.raises(JaxdlError, match="unknown dataset 'mnits'"):
        D.load("mnits")
    with pytest.raises(JaxdlError, match="does not exist"):
        D.load("mnist", data=tmp_path / "nowhere.tar.gz")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(JaxdlError, match="neither a folder nor a"):
        D.load("mnist", data=tmp_path / "notes.txt")
    archive = make_tar(tmp_path / "m", tmp_path / "m.tar.gz")
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(JaxdlError, match="cannot read the archive"):
        D.load("mnist", data=archive)


def test_data_dir_environment_variable_finds_a_copy(tmp_path, monkeypatch):
    make_mnist_folder(tmp_path / "mnist", splits=("train",))
    monkeypatch.setenv("JAXDL_DATA_DIR", str(tmp_path))
    assert len(D.load("mnist", "train")) == 20


def test_a_data_dir_that_does_not_exist_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDL_DATA_DIR", "../no/such/copies")
    with pytest.raises(JaxdlError, match=r"\$JAXDL_DATA_DIR is ../no/such/copies, which is not a directory"):
        D.load("mnist", "train")


def test_local_copies_take_a_folder_for_one_block_and_leave_the_environment_alone(tmp_path, monkeypatch):
    make_mnist_folder(tmp_path / "mnist", splits=("train",))
    monkeypatch.delenv("JAXDL_DATA_DIR", raising=False)
    with D.local_copies(tmp_path):
        assert len(D.load("mnist", "train")) == 20
    assert "JAXDL_DATA_DIR" not in os.environ
    with pytest.raises(JaxdlError, match="data_dir .* is not a directory"):
        with D.local_copies(tmp_path / "missing"):
            pass


# ----------------------------------------------------------------------- IDX


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def make_idx(root: Path, n=6) -> tuple[np.ndarray, np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (root / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    (root / "t10k-images-idx3-ubyte").write_bytes(_idx(images[:2]))  # uncompressed works too
    (root / "t10k-labels-idx1-ubyte").write_bytes(_idx(labels[:2]))
    return images, labels


def test_idx_folder(tmp_path):
    images, labels = make_idx(tmp_path / "fm")
    train = D.load("fashion_mnist", "train", data=tmp_path / "fm")
    np.testing.assert_array_equal(train.inputs[..., 0], images)
    np.testing.assert_array_equal(train.labels, labels)
    assert train.class_names[9] == "Ankle boot"
    assert len(D.load("fashion_mnist", "test", data=tmp_path / "fm")) == 2


def test_truncated_or_foreign_idx_files_are_refused(tmp_path):
    make_idx(tmp_path / "fm")
    path = tmp_path / "fm" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(JaxdlError, match="truncated or corrupt"):
        D.load("fashion_mnist", "test", data=tmp_path / "fm")
    path.write_bytes(b"\x89PNG....")
    with pytest.raises(JaxdlError, match="not an IDX file"):
        D.load("fashion_mnist", "test", data=tmp_path / "fm")


# --------------------------------------------------------------------- cache


def test_cache_hit_miss_and_corruption(tmp_path, monkeypatch, capsys):
    make_mnist_folder(tmp_path / "m", splits=("train",))
    first = D.load("mnist", "train", data=tmp_path / "m")
    files = list((tmp_path / "cache").glob("mnist-train-*.npz"))
    assert len(files) == 1

    def no_reading(*args, **kwargs):
        raise AssertionError("the source was read although the cache holds it")

    monkeypatch.setattr(loader, "read_image_folder", no_reading)
    hit = D.load("mnist", "train", data=tmp_path / "m")
    np.testing.assert_array_equal(hit.inputs, first.inputs)
    monkeypatch.undo()
    monkeypatch.setenv("JAXDL_CACHE_DIR", str(tmp_path / "cache"))

    # A changed source is a different key: a miss, read again.
    (tmp_path / "m" / "train" / "3" / "9.png").write_bytes(_png(_gray(9)))
    assert len(D.load("mnist", "train", data=tmp_path / "m")) == 21

    # Corruption: flip bytes inside the stored arrays; it is detected and rebuilt.
    newest = max((tmp_path / "cache").glob("mnist-train-*.npz"), key=lambda p: p.stat().st_mtime_ns)
    raw = bytearray(newest.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 16] = bytes(16)
    newest.write_bytes(bytes(raw))
    rebuilt = D.load("mnist", "train", data=tmp_path / "m")
    assert len(rebuilt) == 21
    assert "is corrupt" in capsys.readouterr().err
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    assert len(D.load("mnist", "train", data=tmp_path / "m")) == 21


NOT_UTF8 = os.fsdecode(b"\xff\xfe.png")  # a legal Linux file name that is not UTF-8


def test_a_file_name_that_is_not_utf8_is_read_like_any_other_from_a_folder_and_an_archive(tmp_path):
    make_mnist_folder(tmp_path / "m", splits=("train",))
    odd = _gray(7)
    (tmp_path / "m" / "train" / "5" / NOT_UTF8).write_bytes(_png(odd))
    archive = make_tar(tmp_path / "m", tmp_path / "m.tar.gz")
    for source in (tmp_path / "m", archive):
        ds = D.load("mnist", "train", data=source)
        assert len(ds) == 21 and ds.class_counts()["5"] == 3
        assert any(np.array_equal(image[..., 0], odd) for image in ds.inputs[ds.labels == 5])
    # the fingerprint is of the name's bytes: renaming the file is a change the cache sees
    (tmp_path / "m" / "train" / "5" / NOT_UTF8).rename(tmp_path / "m" / "train" / "5" / os.fsdecode(b"\xfe\xff.png"))
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    D.load("mnist", "train", data=tmp_path / "m")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3


def test_a_bad_image_whose_name_is_not_utf8_is_refused_in_one_escaped_line(tmp_path, capsys):
    from jaxdl.cli import main

    make_mnist_folder(tmp_path / "m", splits=("train",))
    (tmp_path / "m" / "train" / "5" / NOT_UTF8).write_bytes(b"not an image")
    archive = make_tar(tmp_path / "m", tmp_path / "m.tar.gz")
    for source, shown in ((tmp_path / "m", f"{tmp_path}/m:train/5/"), (archive, f"{archive}:train/5/")):
        assert main(["data", "info", "mnist", "--data", str(source), "--split", "train"]) == 2
        err = capsys.readouterr().err
        assert err == f"jaxdl: error: {shown}\\xff\\xfe.png: not an image Pillow can read; replace or remove it\n"


def test_cache_lock_files_go_with_their_entry_and_orphans_on_the_next_use(tmp_path):
    from jaxdl.locks import FileLock

    cache = tmp_path / "cache"
    make_mnist_folder(tmp_path / "m", splits=("train",))
    D.load("mnist", "train", data=tmp_path / "m")
    assert [p.suffix for p in cache.iterdir()] == [".npz"]  # the entry's lock went when it was written
    # orphans: lock files of killed writers, one of an entry that no longer exists
    for name in ("mnist-train-gone.npz.lock", "cifar10-test-0123.npz.lock"):
        (cache / name).write_text("12345\n")
    held = FileLock(cache / "mnist-test-busy.npz.lock")
    held.acquire()  # a live writer's lock stays
    try:
        (tmp_path / "m" / "train" / "3" / "9.png").write_bytes(_png(_gray(9)))  # a miss: the cache is used
        D.load("mnist", "train", data=tmp_path / "m")
        assert sorted(p.name for p in cache.glob("*.lock")) == ["mnist-test-busy.npz.lock"]
    finally:
        held.release()
    assert not list(cache.glob("*.lock"))


# ---------------------------------------------------------------------- TFDS


@pytest.mark.slow
def test_tfds_source_with_mock_data(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    pytest.importorskip("tensorflow", reason="TFDS's reader needs the project's [tfds] extra")
    from jaxdl.data import tfds_source

    monkeypatch.setattr(tfds_source, "network_reachable", lambda *a, **k: True)
    with tfds.testing.mock_data(num_examples=12):
        ds = D.load("cifar10", "train", use_cache=False)
    assert ds.inputs.shape == (12, 32, 32, 3) and ds.inputs.dtype == np.uint8
    assert ds.labels.dtype == np.int32 and ds.source == "tfds:cifar10"
    assert ds.class_names == CIFAR


def test_tfds_offline_error_says_how_to_use_a_local_copy(monkeypatch, tmp_path):
    from jaxdl.data import tfds_source

    monkeypatch.setattr(tfds_source, "network_reachable", lambda *a, **k: False)
    with pytest.raises(JaxdlError, match="cannot be reached.*local copy with data .*JAXDL_DATA_DIR"):
        D.load("mnist", "train", tfds_data_dir=str(tmp_path / "tfds"))


# ------------------------------------------------------------------ embedded


def test_embedded_sets():
    digits = D.load("digits", "train")
    assert digits.inputs.shape == (1437, 8, 8, 1) and digits.inputs.max() == 255
    assert len(D.load("digits", "test")) == 360
    blobs = D.load("blobs")
    assert blobs.inputs.shape == (1000, 2) and blobs.class_names == ("0", "1")
    with pytest.raises(JaxdlError, match="generated locally, so data does not apply"):
        D.load("blobs", data="x")


def _cifar_binary(folder, per_batch=3, test=2):
    """CIFAR-10's binary layout with random records: {file name: (labels, images as (N, 3, 32, 32))}."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    written = {}
    for name, n in [(f"data_batch_{i}.bin", per_batch) for i in range(1, 6)] + [("test_batch.bin", test)]:
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        planes = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        records = np.concatenate([labels[:, None], planes.reshape(n, -1)], axis=1)
        (folder / name).write_bytes(records.tobytes())
        written[name] = (labels, planes)
    (folder / "batches.meta.txt").write_text("airplane\nautomobile\n")
    return written


def test_cifar10_binary_version_folder_and_archive(tmp_path):
    written = _cifar_binary(tmp_path / "dl" / "cifar-10-batches-bin")
    with tarfile.open(tmp_path / "cifar-10-binary.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "dl" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    labels = np.concatenate([written[f"data_batch_{i}.bin"][0] for i in range(1, 6)])
    # channels last: pixel (y, x) of channel c is byte c * 1024 + y * 32 + x of the record's image
    images = np.concatenate([written[f"data_batch_{i}.bin"][1] for i in range(1, 6)]).transpose(0, 2, 3, 1)
    for source in (tmp_path / "dl", tmp_path / "dl" / "cifar-10-batches-bin", tmp_path / "cifar-10-binary.tar.gz"):
        train = D.load("cifar10", "train", data=source, use_cache=False)
        np.testing.assert_array_equal(train.inputs, images)
        np.testing.assert_array_equal(train.labels, labels)
        assert train.class_names[:2] == ("airplane", "automobile")
        test = D.load("cifar10", "test", data=source, use_cache=False)
        np.testing.assert_array_equal(test.labels, written["test_batch.bin"][0])
    (tmp_path / "dl" / "cifar-10-batches-bin" / "test_batch.bin").write_bytes(b"\x01" * 5000)
    with pytest.raises(JaxdlError, match=r"test_batch.bin: 5000 bytes, not a whole number of 3073-byte records"):
        D.load("cifar10", "test", data=tmp_path / "dl", use_cache=False)


def test_cifar10_python_version_is_refused_in_one_line_never_unpickled(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"\x80\x04crandom\nsystem\n")  # a hostile pickle: never loaded
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    for source in (folder, tmp_path, tmp_path / "cifar-10-python.tar.gz"):
        with pytest.raises(JaxdlError) as error:
            D.load("cifar10", "train", data=source, use_cache=False)
        assert str(error.value) == (
            f"{source}: this is CIFAR-10's python version, which is pickled, and jaxdl never unpickles; use the "
            "binary version from the same page (cifar-10-binary.tar.gz) or TFDS (leave out --data)"
        )
