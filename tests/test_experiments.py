"""Smoke tests: every training experiment runs end to end on tiny image folders made here."""

import numpy as np
import pytest
from PIL import Image

from jaxdl.cli import main
from jaxdl.data.catalog import CIFAR10_CLASSES
from jaxdl.rundir import read_json

COMMON = ["--set", "epochs=1", "--set", "batch_size=8"]


def _folder(root, classes, size, mode, per_split):
    rng = np.random.default_rng(0)
    n = 0
    for split, count in per_split.items():
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for _ in range(count):
                shape = (size, size, 3) if mode == "RGB" else (size, size)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(
                    root / split / cls / f"{n}.png"
                )
                n += 1
    return root


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("cifar"), CIFAR10_CLASSES, 32, "RGB", {"train": 2, "test": 1})


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    return _folder(
        tmp_path_factory.mktemp("mnist"), [str(d) for d in range(10)], 28, "L", {"train": 3, "test": 2}
    )


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDL_CACHE_DIR", str(tmp_path / "cache"))


def _run(name, data, out, *extra):
    assert main(["run", name, "--data", str(data), "--out", str(out), *COMMON, *extra]) == 0
    metrics = read_json(out / "metrics.json")
    for key in ("train_seconds", "compile_seconds", "examples_per_second", "epochs_run"):
        assert key in metrics, key
    assert metrics["epochs_run"] == 1
    assert (out / "curves.png").exists() and (out / "checkpoints" / "1").is_dir()
    return metrics


@pytest.mark.parametrize("name, extra", [("cifar10-mlp", []), ("cifar10-cnn", []),
                                         ("cifar10-cnn", ["--set", "recipe=tutorial"])])  # fmt: skip
def test_cifar10_experiments(name, extra, tiny_cifar, tmp_path):
    metrics = _run(name, tiny_cifar, tmp_path / "run", *extra)
    assert 0.0 <= metrics["test_accuracy"] <= 1.0


def test_mnist_mlp(tiny_mnist, tmp_path):
    metrics = _run("mnist-mlp", tiny_mnist, tmp_path / "run", "--set", "n_train=24", "--set", "n_val=8")
    assert "val_loss" in metrics and 0.0 <= metrics["test_accuracy"] <= 1.0


def test_mnist_vae_conditional_with_a_2d_latent_space(tiny_mnist, tmp_path):
    out = tmp_path / "run"
    metrics = _run("mnist-vae", tiny_mnist, out, "--set", "conditional=true", "--set", "latents=2")
    assert metrics["test_loss"] > 0 and metrics["test_kl"] >= 0
    for figure in ("samples.png", "reconstructions.png", "latent_space.png"):
        assert (out / figure).exists(), figure


def test_resume_continues_and_checks_the_settings(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "mnist-mlp", "--data", str(tiny_mnist), "--out", str(out), "--set", "n_train=24",
            "--set", "n_val=8", "--set", "batch_size=8", "--set", "epochs=2"]  # fmt: skip
    assert main(args) == 0
    assert main([*args, "--resume"]) == 0  # nothing left to train: it reports the run as it stands
    assert "resumed from the checkpoint of epoch 2" in capsys.readouterr().out
    assert main([*args, "--resume", "--set", "lr=0.5"]) == 2
    assert "setting lr is 0.5 but the run" in capsys.readouterr().err
