"""Smoke tests: every training experiment runs end to end on tiny image folders made here."""

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxdl.cli import main
from jaxdl.data.catalog import CIFAR10_CLASSES
from jaxdl.experiments import mnist_vae
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
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / split / cls / f"{n}.png")
                n += 1
    return root


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("cifar"), CIFAR10_CLASSES, 32, "RGB", {"train": 2, "test": 1})


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("mnist"), [str(d) for d in range(10)], 28, "L", {"train": 3, "test": 2})


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


@pytest.mark.parametrize("recipe, first_lr", [("tutorial", 1e-3), ("improved", 3e-3 / 25)])
def test_vae_recipes_differ_in_the_learning_rate_only(recipe, first_lr):
    tx = mnist_vae.optimizer(mnist_vae.Config(recipe=recipe), steps_per_epoch=100)
    params = {"w": jnp.zeros(3)}
    updates, _ = tx.update({"w": jnp.array([1.0, -2.0, 0.5])}, tx.init(params), params)
    # Adam's first step moves each parameter by the learning rate against its gradient's sign;
    # the one-cycle schedule starts at peak_lr / 25 and the constant recipe at lr.
    np.testing.assert_allclose(updates["w"], [-first_lr, first_lr, -first_lr], rtol=1e-4)


def test_resume_continues_and_checks_the_settings(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "mnist-mlp", "--data", str(tiny_mnist), "--out", str(out), "--set", "n_train=24",
            "--set", "n_val=8", "--set", "batch_size=8", "--set", "epochs=2"]  # fmt: skip
    assert main(args) == 0
    assert main([*args, "--resume"]) == 0  # nothing left to train: it reports the run as it stands
    assert "resumed from the checkpoint of epoch 2" in capsys.readouterr().out
    assert main([*args, "--resume", "--set", "lr=0.5"]) == 2
    assert "setting lr is 0.5 but the run" in capsys.readouterr().err


def test_autodiff_modes_small_sweep(tmp_path):
    out = tmp_path / "run"
    args = ["run", "autodiff-modes", "--out", str(out), "--set", "sizes=1,30", "--set", "hidden=8",
            "--set", "repeats=1", "--set", "loss_sizes=4,8,1", "--set", "remat_depth=2"]  # fmt: skip
    assert main(args) == 0
    metrics = read_json(out / "metrics.json")
    assert metrics["points"] == 4
    assert metrics["flop_ratio_n_max_m_min"] > 1 > metrics["flop_ratio_n_min_m_max"]  # (F1) vs (R1) FLOPs
    assert metrics["residual_bytes_checkpointed"] < metrics["residual_bytes"]
    assert (out / "mode_ratios.png").exists()


def test_scratch_mlp_curves_coincide(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "scratch-mlp", "--out", str(out), "--set", "epochs=3"]) == 0
    metrics = read_json(out / "metrics.json")
    assert metrics["max_loss_curve_gap"] < 1e-12 and metrics["max_param_difference"] < 1e-12


def test_scalar_engine_agrees_with_numpy_and_jax_and_reports_divergence(tiny_mnist, tmp_path):
    base = ["run", "scalar-engine", "--data", str(tiny_mnist), "--set", "n_train=2", "--set", "n_test=5"]
    assert main([*base, "--out", str(tmp_path / "a"), "--set", "init=torch"]) == 0
    learned = read_json(tmp_path / "a" / "metrics.json")
    assert learned["max_param_difference_jax"] < 1e-9 and learned["max_param_difference_numpy"] < 1e-9
    # The tutorial's init with a far too large rate: the loss leaves the floats within a few samples.
    assert main([*base, "--out", str(tmp_path / "b"), "--set", "n_train=6", "--set", "lr=1e6"]) == 0
    assert read_json(tmp_path / "b" / "metrics.json")["diverged_at_sample"] is not None


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "autodiff-modes", "--set", "sizes=1,x"], "setting sizes must be comma-separated integers"),
        (["run", "scratch-mlp", "--set", "classes=3,3"], "setting classes needs two different digits"),
    ],
)
def test_autodiff_experiment_settings_are_checked(args, message, capsys, tmp_path):
    assert main([*args, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def test_universal_approximation_error_falls_with_width(tmp_path):
    out = tmp_path / "run"
    args = ["run", "universal-approximation", "--out", str(out), "--set", "widths=1,16", "--set", "steps=1500",
            "--set", "points=40"]  # fmt: skip
    assert main(args) == 0
    metrics = read_json(out / "metrics.json")
    assert metrics["max_error_1d_n16"] < metrics["max_error_1d_n1"]
    assert (out / "fits.png").exists()


def test_minibatch_sgd_gradient_is_unbiased_with_variance_one_over_b(tmp_path):
    out = tmp_path / "run"
    args = ["run", "minibatch-sgd", "--out", str(out), "--set", "draws=500", "--set", "epochs=2",
            "--set", "sgd_batches=100,1000"]  # fmt: skip
    assert main(args) == 0
    metrics = read_json(out / "metrics.json")
    assert metrics["unbiased_max_abs_z"] < 4.5
    assert -1.2 < metrics["variance_slope_small_batches"] < -0.8
    assert (out / "minibatch.png").exists()


def test_activations_show_vanishing_sigmoid_gradients_and_identical_zero_init_units(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "activations", "--out", str(out), "--set", "depth=8", "--set", "steps=5"]) == 0
    metrics = read_json(out / "metrics.json")
    assert metrics["sigmoid_first_over_last_at_init"] < 1e-3 < metrics["relu_first_over_last_at_init"]
    assert metrics["zeros_unit_spread_after_training"] == 0.0
    assert metrics["init_he_x_3_first_over_last"] > 0 and (out / "gradient_norms.png").exists()


def test_optimizers_saddle_and_range_test(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "optimizers", "--out", str(out), "--set", "steps=100", "--set", "range_steps=60"]) == 0
    metrics = read_json(out / "metrics.json")
    assert metrics["saddle_gd_final"] == pytest.approx(0.0, abs=1e-6)  # exactly on the saddle's ridge
    assert metrics["saddle_noisy_final"] < -0.5
    assert metrics["quadratic_lbfgs_final_value"] < 1e-6
    assert 1e-4 < metrics["range_test_suggested_lr"] < 10
    assert (out / "trajectories.png").exists() and (out / "lr_range_test.png").exists()


def test_regularisation_dropout_and_early_stopping_shrink_the_gap(tmp_path):
    out = tmp_path / "run"
    args = ["run", "regularisation", "--out", str(out), "--set", "n_train=100", "--set", "n_val=200",
            "--set", "epochs=40", "--set", "batch_size=25", "--set", "patience=3"]  # fmt: skip
    assert main(args) == 0
    metrics = read_json(out / "metrics.json")
    for name in ("none", "dropout", "weight_decay", "early_stopping", "clipping"):
        assert 0.0 <= metrics[f"{name}_val_accuracy"] <= 1.0
    # Unregularised, the MLP memorises the 20 wrong labels; dropout and early stopping do not.
    assert metrics["none_accuracy_gap"] > 0.15
    for name in ("dropout", "early_stopping"):
        assert metrics[f"{name}_loss_gap"] < metrics["none_loss_gap"] / 2
    assert metrics["early_stopping_epochs_run"] < 40
    assert (out / "regularisation.png").exists()


def test_noisy_labels_flips_exactly_the_fraction_asked():
    from jaxdl.experiments.regularisation import noisy_labels

    labels = np.arange(1000) % 10
    noisy = noisy_labels(labels, 0.2, seed=3)
    assert (noisy != labels).sum() == 200 and noisy.min() >= 0 and noisy.max() <= 9
    np.testing.assert_array_equal(noisy, noisy_labels(labels, 0.2, seed=3))
    np.testing.assert_array_equal(noisy_labels(labels, 0.0, seed=3), labels)
