"""Your own images: any split/class/image folder trains the tutorial's networks, and the instruments
(layer statistics, TensorBoard) that show a network learning."""

import json
import tarfile

import jax
import numpy as np
import optax
import pytest
from conftest import assert_figure
from PIL import Image

import jaxdl
from jaxdl.cli import main
from jaxdl.data.catalog import CIFAR10_CLASSES
from jaxdl.experiments.common import unit_pixels
from jaxdl.results import RunResult
from jaxdl.rundir import read_history
from jaxdl.train.instruments import Instruments

pytestmark = pytest.mark.xla_o0  # properties of the code, not of XLA's machine code (tests/conftest.py)


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDL_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Three classes of 40x40 RGB images, train and test: the folder a new user tried cifar10-cnn on."""
    root = tmp_path_factory.mktemp("shapes")
    jaxdl.data.write_shapes_folder(root, per_class=(24, 8))
    return root


def test_cifar10_on_another_folder_points_to_the_image_classifier(shapes, capsys):
    assert main(["run", "cifar10-cnn", "--data", str(shapes)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unexpected class folder train/circle" in err and "jaxdl run image-classifier --data PATH" in err
    assert len(err.splitlines()) == 1


@pytest.mark.slow
def test_image_classifier_trains_on_the_folders_classes_and_size(shapes, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "image-classifier", "--data", str(shapes), "--out", str(out),
                 "--set", "epochs=2", "--set", "batch_size=8"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "3 classes (circle, square, triangle), images 40x40x3" in printed
    assert "no val folder: 7 images carved from train" in printed  # 10% of 72, the test folder kept
    metrics = RunResult.read(out)
    assert metrics["class_names"] == ["circle", "square", "triangle"]
    assert metrics["image_shape"] == [40, 40, 3]
    assert metrics["examples"] == {"train": 65, "val": 7, "test": 24}
    assert 0 <= metrics["test_accuracy"] <= 1 and set(metrics["test_accuracy_per_class"]) == set(metrics["class_names"])
    for figure in ("curves.png", "confusion_matrix.png"):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"
    assert len(read_history(out / "history.jsonl")) == 2


@pytest.mark.slow
def test_image_classifier_resizes_mixed_sizes_only_when_asked(tmp_path, capsys):
    root = tmp_path / "mixed"
    rng = np.random.default_rng(0)
    for split, count in (("train", 10), ("test", 3)):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                size = (30, 20) if i % 2 else (16, 16)
                mode = "RGBA" if i % 3 == 0 else "RGB"  # a PNG with transparency is converted too
                Image.fromarray(rng.integers(0, 256, (*size[::-1], len(mode)), dtype=np.uint8), mode).save(
                    root / split / cls / f"{i}.png"
                )
    common = ["run", "image-classifier", "--data", str(root), "--set", "model=mlp", "--set", "epochs=1",
              "--set", "batch_size=4"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "r1")]) == 2
    err = capsys.readouterr().err
    assert "an image size setting resizes them all" in err or "mode RGBA" in err
    # two seeds as vmapped replicas: the figures come with intervals, the confusion matrix is the first seed's
    assert main([*common, "--out", str(tmp_path / "r2"), "--set", "image_size=12x10", "--seeds", "2"]) == 0
    metrics = RunResult.read(tmp_path / "r2")
    assert metrics["image_shape"] == [12, 10, 3]
    assert metrics.intervals["test_accuracy"]["n"] == 2 and len(metrics.replicas) == 2
    assert_figure(tmp_path / "r2" / "confusion_matrix.png", (550, 440))  # 2 classes: a 4 x 4 inch figure


@pytest.mark.parametrize(
    "settings, message",
    [((), "image-classifier needs --data"), (("data=.", "image_size=12"), "image_size takes HxW, e.g. 32x32")],
)
def test_image_classifier_refuses_bad_settings_in_one_line(settings, message, capsys, tmp_path):
    args = ["run", "image-classifier", "--out", str(tmp_path / "r"), *(a for s in settings for a in ("--set", s))]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_one_class_or_an_empty_class_folder_is_refused_in_one_line_naming_the_folder(tmp_path, image_folder, capsys):
    image_folder(tmp_path / "one", ["cat"], 8, "L", {"train": 10})
    image_folder(tmp_path / "empty", ["cat", "dog"], 8, "L", {"train": 10})
    (tmp_path / "empty" / "train" / "bird").mkdir()
    for folder, message in (
        ("one", "train holds one class folder (cat); a classifier needs at least two, each a folder of its images"),
        ("empty", "class folder train/bird is missing or holds no images"),
    ):
        args = ["run", "image-classifier", "--data", str(tmp_path / folder), "--out", str(tmp_path / f"r-{folder}")]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err == f"jaxdl: error: {tmp_path / folder}: {message}\n"
        assert not (tmp_path / f"r-{folder}").exists()  # nothing left behind


def test_a_class_the_training_split_lacks_is_left_out_with_a_warning(tmp_path, image_folder, capsys):
    image_folder(tmp_path / "f", ["cat", "dog"], 8, "L", {"train": 10, "test": 3})
    image_folder(tmp_path / "f", ["bird"], 8, "L", {"test": 4})  # test only
    image_folder(tmp_path / "f", ["dog"], 8, "L", {"val": 2})  # val lacks cat: fine, no warning
    splits = jaxdl.data.load_image_folder(tmp_path / "f")
    assert capsys.readouterr().err == (
        f"jaxdl: warning: {tmp_path / 'f'}: test/bird (4 images): a class train lacks; left out\n"
    )
    assert splits["test"].class_names == splits["val"].class_names == ("cat", "dog")
    assert splits["test"].class_counts() == {"cat": 3, "dog": 3}
    assert splits["val"].class_counts() == {"cat": 0, "dog": 2}


def test_load_image_folder_carves_the_missing_splits(tmp_path, image_folder):
    image_folder(tmp_path / "f", ["x", "y"], 8, "L", {"train": 20})
    splits = jaxdl.data.load_image_folder(tmp_path / "f", val_fraction=0.25, test_fraction=0.2)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [24, 8, 8]
    assert "test: 8 images carved from train" in splits["test"].source
    ids = [set(map(bytes, splits[s].inputs)) for s in ("train", "val", "test")]  # random images: all distinct
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_data_info_lists_every_split_of_an_image_folder_and_archive(tmp_path, image_folder, capsys):
    folder = image_folder(tmp_path / "f", ["cat", "dog"], 8, "RGB", {"train": 3, "valid": 2, "test": 1})
    archive = tmp_path / "f.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="f")
    for data in (folder, archive):
        assert main(["data", "info", "imagefolder", "--data", str(data)]) == 0
        rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
        assert [rows[s][1] for s in ("test", "train", "valid")] == ["2", "6", "4"]


def test_predict_gives_every_examples_outputs_in_order():
    train, test = jaxdl.load("digits", "train"), jaxdl.load("digits", "test")
    task = jaxdl.Task(jaxdl.SmallMLP(), jaxdl.classification_loss, unit_pixels)
    state, key = jaxdl.init_state(task, optax.adam(3e-3), train, jax.random.key(0))
    result = jaxdl.fit(task, state, train, epochs=2, batch_size=64, key=key, log=lambda line: None)
    logits = result.predict(test)
    assert logits.shape == (len(test), 10)  # 360 = 5 full batches of 64 and a masked one
    accuracy = float(np.mean(logits.argmax(-1) == test.labels))
    assert accuracy == pytest.approx(result.evaluate(test)["accuracy"], abs=1e-6)


@pytest.mark.slow
def test_instruments_measure_every_layer_and_write_tensorboard_events(tmp_path, image_folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = image_folder(tmp_path / "c", CIFAR10_CLASSES, 32, "RGB", {"train": 2, "test": 1})
    out = tmp_path / "run"
    assert main(["run", "cifar10-cnn", "--data", str(root), "--out", str(out), "--set", "epochs=2",
                 "--set", "batch_size=8", "--set", "diagnostics=true", "--tensorboard"]) == 0  # fmt: skip
    # batch_size 8 as cifar10-cnn's smallest run in test_experiments: the same training program, which the
    # suite's compilation cache then holds
    history = read_history(out / "history.jsonl")
    stats = history[-1]["diagnostics"]
    assert set(stats["activations"]) == {f"conv{i}" for i in range(1, 5)} | {f"bn{i}" for i in range(1, 6)} | {
        "fc1", "fc2"}  # fmt: skip
    for layer in stats["activations"].values():
        assert layer["std"] > 0 and 0 <= layer["dead_fraction"] <= 1
    for module in stats["parameters"].values():
        assert module["grad_norm"] > 0 and 0 < module["update_ratio"] < 1
    assert (out / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"

    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train_loss", "train_accuracy", "test_accuracy", "diagnostics/parameters/conv1/grad_norm"} <= set(
        tags["scalars"]
    )
    assert [e.step for e in events.Scalars("train_loss")] == [1, 2]
    assert [e.value for e in events.Scalars("train_loss")] == pytest.approx([r["train_loss"] for r in history])
    assert {"activations/conv1", "gradients/fc2"} <= set(tags["histograms"])
    histogram = events.Histograms("activations/conv1")[-1].histogram_value
    assert histogram.num == 20 * 32 * 32 * 32  # conv1 on the probe batch: all 20 training images here
    assert sum(histogram.bucket) == histogram.num


def test_instruments_as_a_fit_callback_from_python(tmp_path):
    train = jaxdl.load("digits", "train")
    task = jaxdl.Task(jaxdl.SmallMLP(), jaxdl.classification_loss, unit_pixels)
    state, key = jaxdl.init_state(task, optax.sgd(0.1), train, jax.random.key(0))
    instruments = Instruments(task, train.arrays(32), every=2)
    result = jaxdl.fit(task, state, train, epochs=4, batch_size=32, key=key, hooks=[instruments],
                       log=lambda line: None)  # fmt: skip
    assert ["diagnostics" in r for r in result.history] == [False, True, False, True]
    assert set(result.history[1]["diagnostics"]["parameters"]) == {"fc1", "fc2"}
    json.dumps(result.history)  # plain numbers: history.jsonl can hold them
