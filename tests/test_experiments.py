"""Every experiment end to end at its smallest settings: each claimed metric exists, and what each claims holds.

Runs are cached for the module: the claims test and the experiment-specific tests read the same run.
"""

import contextlib
import dataclasses
import os
import sys
import tempfile
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_figure, built_once

from jaxdl import experiments, reproduce
from jaxdl.cli import main
from jaxdl.data.catalog import CIFAR10_CLASSES
from jaxdl.experiments import mnist_vae
from jaxdl.results import RunResult
from jaxdl.rundir import read_history, read_json
from jaxdl.train.checkpoint import Checkpoints

# The claims' values at the smallest settings are properties of the pipeline, not of XLA's machine code:
# compiled at -O0 like the other property modules (tests/conftest.py). The tests of the command line and
# the tour (test_cli, test_reproduce, test_compilation_cache, ...) compile at the default level, as users do.
pytestmark = pytest.mark.xla_o0

TIMINGS = ("seconds", "examples_per_second", "compile_seconds", "train_seconds", "seconds_per_epoch", "compile")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, image_folder):
    return {
        "cifar10": image_folder(tmp_path_factory.mktemp("cifar"), CIFAR10_CLASSES, 32, "RGB", {"train": 2, "test": 1}),
        "mnist": image_folder(tmp_path_factory.mktemp("mnist"), [str(d) for d in range(10)], 28, "L",
                              {"train": 3, "test": 2}),
    }  # fmt: skip


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDL_CACHE_DIR", str(tmp_path / "cache"))


@contextlib.contextmanager
def stderr_of_process():
    """What the process writes to file descriptor 2 meanwhile (XLA's C++ warnings too), in ``.text``."""
    result = types.SimpleNamespace(text="")
    with tempfile.TemporaryFile() as file:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(file.fileno(), 2)
        try:
            yield result
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            file.seek(0)
            result.text = file.read().decode(errors="replace")
            sys.stderr.write(result.text)


@pytest.fixture(scope="module")
def run_of(tiny_data):
    """``run_of(experiment, *settings)``: (run directory, metrics) of a run at the experiment's smallest
    settings plus ``settings``, on tiny data where it reads a data set; each run once per test run
    (see ``built_once``), its standard error in ``run_of.stderr(experiment, *settings)``."""

    def folder(name, settings, data):
        def build(folder):
            experiment = experiments.get(name)
            data_args = ["--data", str(tiny_data[data])] if data else []
            overrides = [a for s in (*experiment.smallest, *settings) for a in ("--set", s)]
            with stderr_of_process() as stderr:
                assert main(["run", name, "--out", str(folder / "run"), *data_args, *overrides]) == 0
            (folder / "stderr.txt").write_text(stderr.text)

        return built_once("-".join(["run", name, *settings]).replace("/", "_"), build)

    def run(name, *settings, data=None):
        out = folder(name, settings, data) / "run"
        return out, RunResult.read(out)

    run.stderr = lambda name, *settings: (folder(name, settings, None) / "stderr.txt").read_text()
    return run


# Claims whose target the smallest settings cannot show, and why; every other judged claim must meet
# its target at the smallest settings too.
NOT_JUDGED_AT_SMALLEST = {
    # the tutorial's exact figures after 1,000 epochs; the smallest run trains 50
    ("blobs-tutorial-init", "logged_accuracy"): "50 of the tutorial's 1,000 epochs",
    ("blobs-tutorial-init", "logged_loss"): "50 of the tutorial's 1,000 epochs",
    # accuracies and losses on CIFAR-10 and MNIST: the smallest runs read 2-3 random images per class
    ("cifar10-mlp", "test_accuracy"): "20 random training images",
    ("cifar10-cnn-tutorial", "test_accuracy"): "20 random training images",
    ("cifar10-cnn", "test_accuracy"): "20 random training images",
    ("cifar10-speedrun", "accuracy_at_budget"): "20 random training images",
    ("cifar10-speedrun", "seconds_to_target"): "20 random training images do not reach 75.52% (the figure is None)",
    ("mnist-vae-tutorial", "test_loss"): "30 random images: a loss near 784 log 2",
    ("mnist-vae", "test_loss"): "30 random images: a loss near 784 log 2",
    ("universal-approximation", "error_ratio_1d"): "few steps per width (test_universal_approximation checks > 2)",
    # timings of functions 30 wide, as noisy as the machine: test_autodiff_modes_small_sweep checks what they
    # count (the passes each mode makes), and the tour judges the timings at the tutorial's sizes
    ("autodiff-modes", "time_ratio_n_max_m_min"): "timings of 30-wide functions",
    ("autodiff-modes", "time_ratio_n_min_m_max"): "timings of 30-wide functions",
    ("autodiff-modes", "grad_jvp_over_vjp"): "timings of a 4-8-1 network",
    # FG-A's gap to backprop: the smallest run trains one epoch of 3 steps on 30 images
    ("forward-learning", "gap_fg_a_points"): "30 random training images",
    ("forward-learning-cifar10", "gap_fg_a_points"): "20 random training images",
    # where the scalar engine's tutorial run diverges: 2 samples end before it does (the metric is None)
    ("scalar-engine-tutorial", "diverged_at_sample"): "2 of the tutorial's samples",
}


# experiments whose smallest run takes over about 5 s on 2 cores (in a full run): their tests are marked slow
SLOW = {"curvature", "forward-gradient", "forward-learning", "regularization", "cifar10-cnn", "activations",
        "cifar10-speedrun", "cifar10-mlp",
        "minibatch-sgd", "monte-carlo",
        "autodiff-modes", "optimizers", "mnist-vae", "universal-approximation", "scalar-engine"}  # fmt: skip


def marks_of(experiment: str) -> list:
    """The marks of a test that reads ``experiment``'s runs: ``slow`` where that experiment's run is."""
    return [pytest.mark.slow] if experiment in SLOW else []


def reads(experiment: str):
    """Decorates a test that reads ``experiment``'s runs with :func:`marks_of`'s marks."""

    def mark(test):
        for m in marks_of(experiment):
            test = m(test)
        return test

    return mark


@pytest.mark.parametrize(
    "tour_run", [pytest.param(t, id=t.name, marks=marks_of(t.experiment)) for t in reproduce.tour()]
)
def test_every_claim_is_computed_and_meets_its_target_where_the_smallest_settings_allow(tour_run, run_of):
    _, metrics = run_of(tour_run.experiment, *tour_run.run.settings, data=tour_run.run.data)
    for claim in tour_run.run.claims:
        if (tour_run.name, claim.metric) in NOT_JUDGED_AT_SMALLEST:
            assert claim.metric in metrics, f"{tour_run.name}: no metric {claim.metric!r}"
            continue
        value = claim.value(metrics)
        assert np.isfinite(value), f"{tour_run.name}: {claim.metric!r} is {value}"
        if claim.target is not None:
            assert claim.target.met_by(value), f"{tour_run.name}: {claim.metric} = {value}, target {claim.target.text}"


def _engine_run_files(out, metrics, epochs):
    for key in ("train_seconds", "compile_seconds", "examples_per_second", "epochs_run"):
        assert key in metrics, key
    assert metrics["epochs_run"] == epochs
    assert_figure(out / "curves.png", (1089, 436))
    assert any(p.name.isdigit() for p in (out / "checkpoints").iterdir())  # numbered by optimizer step


@pytest.mark.parametrize("name, settings", [
    pytest.param(name, settings, marks=marks_of(name))
    for name, settings in (("cifar10-mlp", ()), ("cifar10-cnn", ()), ("cifar10-cnn", ("recipe=tutorial",)))
])  # fmt: skip
def test_cifar10_experiments_fit_the_tiny_training_set(name, settings, run_of):
    out, metrics = run_of(name, *settings, data="cifar10")
    _engine_run_files(out, metrics, epochs=3)
    # 20 random images, 3 epochs of 2 steps: memorising them lowers the training loss
    losses = [r["train_loss"] for r in read_history(out / "history.jsonl")]
    assert losses[-1] < losses[0], losses
    assert metrics["test_accuracy"] in {k / 10 for k in range(11)}  # exactly the 10 test images


@reads("mnist-mlp")
def test_mnist_mlp_validates_on_images_it_does_not_test_on(run_of):
    out, metrics = run_of("mnist-mlp", data="mnist")
    _engine_run_files(out, metrics, epochs=1)
    assert "val_loss" in metrics
    # smallest: n_val=8 of the 20 test images validate, the other 12 test
    assert metrics["test_accuracy"] in {k / 12 for k in range(13)}


@reads("mnist-vae")
def test_mnist_vae_conditional_with_a_2d_latent_space(run_of):
    out, metrics = run_of("mnist-vae", "conditional=true", "latents=2", data="mnist")
    # random pixels: the reconstruction term is near 784 log 2 = 543 nats, the KL small and positive
    assert 400 < metrics["test_reconstruction"] < 700 and 0 <= metrics["test_kl"] < 50
    assert metrics["test_loss"] == pytest.approx(metrics["test_reconstruction"] + metrics["test_kl"], rel=1e-5)
    for figure, size in (("samples.png", (1221, 1763)), ("reconstructions.png", (1221, 899)),
                         ("latent_space.png", (666, 516)), ("curves.png", (582, 436))):  # fmt: skip
        assert_figure(out / figure, size)


@pytest.mark.parametrize("recipe, first_lr", [("tutorial", 1e-3), ("improved", 3e-3 / 25)])
def test_vae_recipes_differ_in_the_learning_rate_only(recipe, first_lr):
    tx = mnist_vae.optimizer(mnist_vae.Config(recipe=recipe), steps_per_epoch=100)
    params = {"w": jnp.zeros(3)}
    updates, _ = tx.update({"w": jnp.array([1.0, -2.0, 0.5])}, tx.init(params), params)
    # Adam's first step moves each parameter by the learning rate against its gradient's sign;
    # the one-cycle schedule starts at peak_lr / 25 and the constant recipe at lr.
    np.testing.assert_allclose(updates["w"], [-first_lr, first_lr, -first_lr], rtol=1e-4)


@pytest.mark.slow
def test_a_run_cut_after_epoch_1_resumes_to_the_uncut_run(tiny_data, tmp_path, monkeypatch, capsys):
    args = ["run", "mnist-mlp", "--data", str(tiny_data["mnist"]), "--set", "n_train=24", "--set", "n_val=8",
            "--set", "batch_size=8", "--set", "epochs=3", "--set", "patience=3"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "uncut")]) == 0

    save = Checkpoints.save

    def save_then_cut(self, step, state, record):
        save(self, step, state, record)
        if record["epoch"] == 1:
            raise KeyboardInterrupt  # the machine goes away after epoch 1's checkpoint

    monkeypatch.setattr(Checkpoints, "save", save_then_cut)
    assert main([*args, "--out", str(tmp_path / "cut")]) == 130
    assert not (tmp_path / "cut" / "metrics.json").exists()
    monkeypatch.setattr(Checkpoints, "save", save)
    assert main([*args, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    assert "resumed from checkpoint 3 (end of epoch 1)" in capsys.readouterr().out

    def without_timings(record):
        return {k: v for k, v in record.items() if not k.endswith(TIMINGS)}

    uncut, resumed = (RunResult.read(tmp_path / d) for d in ("uncut", "cut"))
    assert without_timings(resumed) == without_timings(uncut) and uncut["epochs_run"] == 3
    histories = [read_history(tmp_path / d / "history.jsonl") for d in ("uncut", "cut")]
    assert [without_timings(r) for r in histories[1]] == [without_timings(r) for r in histories[0]]


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_resume_reads_the_runs_settings_leaves_a_finished_run_untouched_and_extends_it(tiny_data, tmp_path, capsys):
    settings = ["--data", str(tiny_data["mnist"]), "--set", "n_train=24", "--set", "n_val=8", "--set", "batch_size=8",
                "--set", "patience=5"]  # fmt: skip
    assert main(["run", "mnist-mlp", *settings, "--set", "epochs=3", "--out", str(tmp_path / "uncut")]) == 0
    assert main(["run", "mnist-mlp", *settings, "--set", "epochs=2", "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    before = _files(tmp_path / "r")
    # nothing retyped, nothing to add: no file changes, one line says so
    assert main(["run", "mnist-mlp", "--out", str(tmp_path / "r"), "--resume"]) == 0
    assert capsys.readouterr().out == (
        f"jaxdl: {tmp_path / 'r'} is finished: its 2 epochs are trained, and no file was changed; "
        "to train longer, resume with --set epochs=N (N > 2)\n"
    )
    assert _files(tmp_path / "r") == before
    assert main(["run", "mnist-mlp", "--out", str(tmp_path / "r"), "--resume", "--set", "epochs=1"]) == 2
    assert "the run in" in capsys.readouterr().err and _files(tmp_path / "r") == before
    # more epochs: the run goes on, as the run trained for 3 from the start did
    assert main(["run", "mnist-mlp", "--out", str(tmp_path / "r"), "--resume", "--set", "epochs=3"]) == 0
    assert "resumed from checkpoint" in capsys.readouterr().out
    assert read_json(tmp_path / "r" / "config.json")["config"]["epochs"] == 3

    def without_timings(record):
        return {k: v for k, v in record.items() if not k.endswith(TIMINGS)}

    extended, uncut = (RunResult.read(tmp_path / d) for d in ("r", "uncut"))
    assert without_timings(extended) == without_timings(uncut) and extended["epochs_run"] == 3
    history = read_history(tmp_path / "r" / "history.jsonl")
    assert extended["train_seconds"] == pytest.approx(sum(r["seconds"] for r in history))  # all 3 epochs


def test_a_one_cycle_schedule_cannot_be_extended():
    from jaxdl.experiments.settings import CNNConfig, VAEConfig

    for config in (CNNConfig(), VAEConfig()):
        assert config.fixed_length() == (
            "the improved recipe's one-cycle learning-rate schedule spans the epochs the run began with"
        )
        assert dataclasses.replace(config, recipe="tutorial").fixed_length() is None


def test_resume_checks_the_settings(tiny_data, tmp_path, capsys):
    args = ["run", "mnist-mlp", "--data", str(tiny_data["mnist"]), "--out", str(tmp_path / "r"),
            "--set", "n_train=24", "--set", "n_val=8", "--set", "batch_size=8", "--set", "epochs=1"]  # fmt: skip
    assert main(args) == 0
    assert main([*args, "--resume", "--set", "lr=0.5"]) == 2
    assert "setting lr is 0.5 but the run" in capsys.readouterr().err


@reads("autodiff-modes")
def test_autodiff_modes_small_sweep(run_of):
    out, metrics = run_of("autodiff-modes")
    assert metrics["points"] == 4
    assert metrics["flop_ratio_n_max_m_min"] > 1 > metrics["flop_ratio_n_min_m_max"]  # (F1) vs (R1) FLOPs
    assert metrics["residual_bytes_checkpointed"] < metrics["residual_bytes"]
    assert_figure(out / "mode_ratios.png", (1308, 516))


@reads("scratch-mlp")
def test_scratch_mlp_curves_coincide(run_of):
    _, metrics = run_of("scratch-mlp")
    assert metrics["max_loss_curve_gap"] < 1e-12 and metrics["max_param_difference"] < 1e-12


@reads("scalar-engine")
def test_scalar_engine_agrees_with_numpy_and_jax_and_reports_divergence(run_of):
    _, learned = run_of("scalar-engine", "init=torch", data="mnist")
    assert learned["max_param_difference_jax"] < 1e-9 and learned["max_param_difference_numpy"] < 1e-9
    assert learned["jax_speedup_over_scalar"] > 10
    # The tutorial's init with a far too large rate: the loss leaves the floats within a few samples.
    _, diverged = run_of("scalar-engine", "n_train=6", "lr=1e6", data="mnist")
    assert 1 <= diverged["diverged_at_sample"] <= 6


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "autodiff-modes", "--set", "sizes=1,x"], "setting sizes: expected comma-separated int, got '1,x'"),
        (["run", "autodiff-modes", "--set", "sizes=1,0"], "setting sizes must be >= 1, got 0"),
        (
            ["run", "curvature", "--set", "networks=mlp,rnn"],
            "setting networks: expected comma-separated one of mlp|cnn",
        ),
        (["run", "scratch-mlp", "--set", "classes=3,3"], "setting classes needs two different digits"),
    ],
)
def test_autodiff_experiment_settings_are_checked(args, message, capsys, tmp_path):
    assert main([*args, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


@reads("universal-approximation")
def test_universal_approximation_error_falls_with_width(run_of):
    out, metrics = run_of("universal-approximation")
    assert metrics["max_error_1d_n16"] < metrics["max_error_1d_n1"]
    assert metrics["error_ratio_1d"] > 2
    assert_figure(out / "fits.png", (1199, 450))


def test_universal_approximation_trains_each_padded_width_as_it_would_alone():
    from jaxdl.experiments import universal_approximation as ua

    x, fine, key = ua._grid(20, 1), ua._grid(80, 1), jax.random.key(0)
    settings = {"target": ua.target_1d, "dim": 1, "steps": 30, "lr": 3e-2}
    params, errors, masks = ua._fit_widths(x, fine, key, widths=(2, 5), **settings)
    assert masks.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    # the 2-wide network's three padded units got zero gradients: Adam left them at exactly zero
    assert not np.any(params["dense0"]["w"][0, :, 2:]) and not np.any(params["dense0"]["b"][0, 2:])
    assert not np.any(params["dense1"]["w"][0, 2:])
    alone, alone_errors, _ = ua._fit_widths(x, fine, key, widths=(2,), **settings)
    np.testing.assert_allclose(params["dense0"]["w"][0, :, :2], alone["dense0"]["w"][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(errors[0], alone_errors[0], rtol=1e-5)


@reads("minibatch-sgd")
def test_minibatch_sgd_gradient_is_unbiased_with_variance_one_over_b(run_of):
    out, metrics = run_of("minibatch-sgd")
    assert metrics["unbiased_max_abs_z"] < 4.5
    assert -1.2 < metrics["variance_slope_small_batches"] < -0.8
    assert_figure(out / "minibatch.png", (1638, 450))


@reads("monte-carlo")
def test_monte_carlo_is_unbiased_and_consistent(run_of):
    _, metrics = run_of("monte-carlo")
    assert metrics["expectation_max_abs_z"] < 4
    assert -0.6 < metrics["rmse_slope"] < -0.4
    assert metrics["gradient_score_baseline_variance"] < metrics["gradient_score_variance"]
    assert abs(metrics["gan_loss_mean_m4096"] - metrics["gan_loss_true"]) < 4 * metrics["gan_loss_std_m4096"]


@reads("activations")
def test_activations_show_vanishing_sigmoid_gradients_and_identical_zero_init_units(run_of):
    out, metrics = run_of("activations")
    assert metrics["sigmoid_first_over_last_at_init"] < 1e-3 < metrics["relu_first_over_last_at_init"]
    assert metrics["zeros_unit_spread_after_training"] == 0.0
    assert metrics["init_he_x_3_first_over_last"] > 0
    assert_figure(out / "gradient_norms.png", (1748, 483))


@reads("optimizers")
def test_optimizers_saddle_and_range_test(run_of):
    out, metrics = run_of("optimizers")
    assert metrics["saddle_gd_final"] == pytest.approx(0.0, abs=1e-6)  # exactly on the saddle's ridge
    assert metrics["saddle_noisy_final"] < -0.5
    assert metrics["quadratic_lbfgs_final_value"] < 1e-6
    assert 1e-4 < metrics["range_test_suggested_lr"] < 10
    assert_figure(out / "trajectories.png", (1419, 538))
    assert_figure(out / "lr_range_test.png", (628, 434))


@reads("regularization")
def test_regularization_dropout_and_early_stopping_shrink_the_gap(run_of):
    out, metrics = run_of("regularization")
    # Unregularised, the MLP memorises the 20 wrong labels; dropout and early stopping do not,
    # and both validate better.
    assert metrics["none_accuracy_gap"] > 0.15
    for name in ("dropout", "early_stopping"):
        assert metrics[f"{name}_loss_gap"] < metrics["none_loss_gap"] / 2
        assert metrics[f"{name}_val_accuracy"] > metrics["none_val_accuracy"]
    assert metrics["early_stopping_epochs_run"] < 40
    assert_figure(out / "regularization.png", (2188, 692))


def test_noisy_labels_flips_exactly_the_fraction_asked():
    from jaxdl.experiments.regularization import noisy_labels

    labels = np.arange(1000) % 10
    noisy = noisy_labels(labels, 0.2, seed=3)
    assert (noisy != labels).sum() == 200 and noisy.min() >= 0 and noisy.max() <= 9
    np.testing.assert_array_equal(noisy, noisy_labels(labels, 0.2, seed=3))
    np.testing.assert_array_equal(noisy_labels(labels, 0.0, seed=3), labels)


@reads("forward-gradient")
def test_forward_gradient_is_unbiased_with_the_predicted_variance_and_slower_per_step_of_progress(run_of):
    out, metrics = run_of("forward-gradient", data="cifar10")
    assert metrics["worst_max_abs_z_over_bound"] < 1.2  # 500 draws here; the tour's 2,000 are held to 1
    for name in ("blobs", "digits"):  # (n + 1) |g|^2, within the sampling error of 500 draws
        assert abs(np.log(metrics[f"{name}_variance"] / metrics[f"{name}_variance_theory"])) < 0.3
    assert metrics["digits_parameters"] == 64 * 32 + 32 + 32 * 10 + 10
    assert metrics["digits_backprop_final_loss"] < metrics["digits_forward_final_loss"]
    assert_figure(out / "forward_gradient.png", (1638, 813))


@reads("forward-learning")
def test_forward_learning_trains_every_method_over_seeds_and_measures_each_estimators_cosine(run_of):
    out, metrics = run_of("forward-learning", data="mnist")
    methods = ("backprop", "lg-bp", "fg-w", "fg-a", "heads")
    for method in methods:
        summary = metrics.intervals[f"{method}_test_accuracy"]
        assert summary["n"] == 2 and np.isclose(summary["mean"], metrics[f"{method}_test_accuracy"])
        assert metrics[f"{method}_ms_per_step"] > 0 and metrics[f"{method}_temp_bytes"] > 0
    # 16 units in 16 groups: activity perturbation has 1 direction per example and head, weight perturbation 785
    assert metrics["cosine_activity_k1"] > 3 * metrics["cosine_weight_k1"]
    assert metrics["cosine_weight_k2"] > metrics["cosine_weight_k1"]
    records = read_history(out / "history.jsonl")
    assert {(r["method"], r["epoch"]) for r in records} == {(m, e) for m in methods for e in (0, 1)}
    assert [r["seed"] for r in metrics.replicas] == [0, 1]
    assert 0 < metrics["cosine_activity_end_k1"] <= 1 and 0 < metrics["cosine_weight_end_k1"] <= 1
    assert_figure(out / "forward_learning.png", (1308, 483))


def test_forward_learning_flattens_cifar10_to_3072_inputs_standardised_per_channel(tiny_data):
    from jaxdl.experiments.forward_learning import _images
    from jaxdl.experiments.settings import ForwardLearningConfig

    config = ForwardLearningConfig(dataset="cifar10", data=str(tiny_data["cifar10"]))
    x, y, x_test, y_test = _images(config, np.random.default_rng(0))
    assert x.shape == (20, 3072) and x_test.shape == (10, 3072) and x.dtype == np.float32
    assert sorted(y.tolist()) == sorted(list(range(10)) * 2) and y_test.dtype == np.int32
    channels = x.reshape(20, 32, 32, 3)  # by the training images' statistics: mean 0 and deviation 1 per channel
    np.testing.assert_allclose(channels.mean((0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(channels.std((0, 1, 2)), 1, atol=1e-3)
    # tuning reads held-out training images in place of the test split
    x, _, x_val, _ = _images(dataclasses.replace(config, validation=5), np.random.default_rng(0))
    assert len(x) == 15 and len(x_val) == 5 and not any((x == row).all(1).any() for row in x_val)


@reads("forward-learning")
def test_forward_learning_trains_the_same_blocked_mlp_on_cifar10_and_writes_its_figure(run_of):
    out, metrics = run_of("forward-learning", "dataset=cifar10", data="cifar10")
    _, mnist = run_of("forward-learning", data="mnist")
    # the same network but the first dense layer, 3072 inputs wide instead of 784
    assert metrics["parameters"] - mnist["parameters"] == (3072 - 784) * 16
    for method in ("backprop", "lg-bp", "fg-w", "fg-a", "heads"):
        assert metrics.intervals[f"{method}_test_accuracy"]["n"] == 2
        assert 0 <= metrics[f"{method}_test_accuracy"] <= 1 and metrics[f"{method}_ms_per_step"] > 0
    # 16 units in 16 groups: a random sign along each unit gives the exact local gradient, up to rounding
    assert np.isfinite(metrics["gap_fg_a_points"]) and 0 < metrics["cosine_activity_k1"] <= 1 + 1e-6
    assert read_json(out / "config.json")["config"]["dataset"] == "cifar10"
    assert {r["epoch"] for r in read_history(out / "history.jsonl")} == {0, 1}
    assert_figure(out / "forward_learning.png", (1308, 483))


@reads("curvature")
def test_curvature_finds_the_exact_top_eigenvalues_and_costs_every_order(run_of):
    out, metrics = run_of("curvature", data="cifar10")
    assert metrics["lanczos_exact_max_relative_error"] < 1e-6
    for name in ("mlp", "cnn"):
        top = metrics[f"{name}_top_eigenvalues"]
        assert len(top) == 3 and top == sorted(top, reverse=True)
        costs = metrics[f"{name}_hvp_costs"]
        assert set(costs) == {"fwd-over-rev", "rev-over-fwd", "rev-over-rev", "fwd-over-fwd (v'Hv)",
                              "gradient (reference)"}  # fmt: skip
        assert all(c["ms"] > 0 and c["temp_mb"] >= 0 for c in costs.values())
    assert_figure(out / "spectrum.png", (1638, 450))
    assert_figure(out / "slices.png", (1639, 450))
    # the batch is an argument of every program: XLA folded no constant for seconds while compiling
    assert "Constant folding" not in run_of.stderr("curvature"), run_of.stderr("curvature")


@pytest.mark.slow
def test_a_run_logs_each_stage_before_training_and_quiet_silences_them(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JAXDL_CACHE_DIR", str(tmp_path / "cache"))  # the data decoded afresh
    args = ["run", "mnist-mlp", "--data", str(tiny_data["mnist"]), "--set", "n_train=24", "--set", "n_val=8",
            "--set", "batch_size=8"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()  # not a terminal: stage lines, no bars
    stages = [line for line in captured.out.splitlines() if line.startswith(("decoding", "cached", "compil"))]
    assert [s.split(" ")[0] for s in stages] == ["decoding", "cached", "decoding", "cached", "compiling", "compiled"]
    assert stages[0] == (
        f"decoding mnist train from {tiny_data['mnist']} (the first time only: the arrays are then cached)"
    )
    assert stages[1].startswith(f"cached mnist train in {tmp_path / 'cache'}/mnist-train-")
    assert stages[1].endswith(" MiB)")
    assert "training:" not in captured.err and "\r" not in captured.err
    assert main([*args, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert not [line for line in out.splitlines() if line.startswith(("decoding", "cached", "compil"))]
    assert "epoch 1/3" in out and "wrote" in out  # the run's own lines stay


def test_the_training_bar_moves_every_chunk_with_the_running_loss_and_speed():
    import io

    from tqdm import tqdm

    from jaxdl.train.fit import _show

    bar = tqdm(total=10, file=io.StringIO(), disable=False)
    sums = {"loss": np.array([4.0, 2.0, 6.0, 0.0]), "count": np.array([2.0, 2.0, 2.0, 0.0])}
    _show(bar, 3, 32, 0, 2, 0.5, sums)  # steps 0-1 of epoch 3: mean loss 6 / 4, 64 examples in 0.5 s
    assert bar.n == 2 and bar.postfix == "epoch 3, loss 1.5000, 128 ex/s"
    _show(bar, 3, 32, 2, 3, 0.25, sums)
    assert bar.n == 3 and bar.postfix == "epoch 3, loss 2.0000, 128 ex/s"


@pytest.mark.parametrize("name, data", [
    pytest.param(name, data, marks=[pytest.mark.slow])  # two runs each
    for name, data in (("cifar10-mlp", "cifar10"), ("cifar10-cnn", "cifar10"), ("mnist-vae", "mnist"))
])  # fmt: skip
def test_api_nnx_trains_the_twin_to_the_linen_runs_figures(name, data, run_of):
    # the same initialisation (Linen's, loaded into the twin) and the same noise: the same figures, bit for bit
    _, linen = run_of(name, data=data)
    out, nnx = run_of(name, "api=nnx", data=data)
    assert read_json(out / "config.json")["config"]["api"] == "nnx"

    def figures(metrics):
        return {
            k: v for k, v in metrics.items() if k.startswith(("test_", "train_", "val_")) and not k.endswith(TIMINGS)
        }

    assert figures(nnx) == figures(linen) and figures(linen)


def test_api_nnx_without_a_twin_is_refused_in_one_line(tiny_data, tmp_path, capsys):
    args = ["run", "cifar10-speedrun", "--out", str(tmp_path / "run"), "--data", str(tiny_data["cifar10"])]
    assert main([*args, *(a for s in ("epochs=1", "widths=4,4,4", "api=nnx") for a in ("--set", s))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("api=nnx: SpeedrunNet has no Flax NNX twin yet; use api=linen") and len(err.splitlines()) == 1


def test_the_experiments_compile_at_o0_in_this_process_and_its_subprocesses():
    assert jax.config.read("jax_disable_most_optimizations")
    assert os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] == "true"
