"""Seeds and settings as a batch axis: replicas trained by jax.vmap equal single runs, fail alone,
stop alone, resume, and report intervals; grids are checked before anything runs."""

import json

import chex
import jax
import numpy as np
import optax
import pytest
from conftest import assert_figure

from jaxdl import config as config_lib
from jaxdl import data as D
from jaxdl import stats
from jaxdl.cli import main
from jaxdl.config import Sweep
from jaxdl.errors import JaxdlError
from jaxdl.experiments import cifar10
from jaxdl.experiments.common import ReplicaPlan, unit_pixels
from jaxdl.models import CNN, SmallMLP
from jaxdl.results import RunResult
from jaxdl.rundir import RunDir, read_history, read_json
from jaxdl.train.fit import fit
from jaxdl.train.replicas import init_replicas, injected, replica
from jaxdl.train.state import init_state
from jaxdl.train.task import Task, classification_loss

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)


@pytest.fixture(scope="module")
def digits():
    ds = D.load("digits", "train")
    return {"inputs": ds.inputs[:256], "labels": ds.labels[:256]}


def quiet(_):
    pass


@pytest.mark.slow
def test_replica_i_equals_the_single_run_of_seed_i_with_batch_norm_and_dropout(digits):
    # The CNN has batch norm (running statistics in the state) and dropout (per-step keys).
    # SGD with momentum: Adam's g / sqrt(v) turns rounding of a near-zero gradient into a full step.
    task = Task(CNN(), classification_loss, unit_pixels)
    tx, seeds = optax.sgd(0.05, momentum=0.9), [3, 8]
    state, keys = init_replicas(task, tx, digits, seeds)
    together = fit(task, state, digits, epochs=2, batch_size=32, key=keys, val_data=digits, log=quiet)
    scores = together.evaluate(digits)
    assert scores["accuracy"].shape == (2,)
    for i, seed in enumerate(seeds):
        single_state, shuffle_key = init_state(task, tx, digits, jax.random.key(seed))
        alone = fit(task, single_state, digits, epochs=2, batch_size=32, key=shuffle_key, val_data=digits, log=quiet)
        mine = replica(together.state, i)
        chex.assert_trees_all_close(mine.params, alone.state.params, atol=2e-6, rtol=1e-5)
        chex.assert_trees_all_close(mine.batch_stats, alone.state.batch_stats, atol=2e-6, rtol=1e-5)
        assert int(mine.step) == int(alone.state.step) == 16
        for record, single in zip(together.history, alone.history, strict=True):
            for key in ("train_loss", "val_loss", "val_accuracy"):
                assert record["replicas"][key][i] == pytest.approx(single[key], rel=1e-5, abs=1e-6)
        assert scores["loss"][i] == pytest.approx(alone.evaluate(digits)["loss"], rel=1e-5)
    # the seeds differ, so the replicas do
    assert not np.allclose(replica(together.state, 0).params["fc2"]["kernel"],
                           replica(together.state, 1).params["fc2"]["kernel"])  # fmt: skip


def test_injected_learning_rates_equal_runs_built_with_each_rate(digits):
    task = Task(SmallMLP(), classification_loss, unit_pixels)
    rates = [0.05, 0.2]
    tx = injected(lambda lr: optax.sgd(lr, momentum=0.9), lr=0.1)
    state, keys = init_replicas(task, tx, digits, [0, 0], hyperparams={"lr": rates})
    together = fit(task, state, digits, epochs=2, batch_size=32, key=keys, log=quiet)
    for i, lr in enumerate(rates):
        single_state, shuffle_key = init_state(task, optax.sgd(lr, momentum=0.9), digits, jax.random.key(0))
        alone = fit(task, single_state, digits, epochs=2, batch_size=32, key=shuffle_key, log=quiet)
        chex.assert_trees_all_close(replica(together.state, i).params, alone.state.params, atol=1e-6, rtol=1e-5)


def test_a_diverged_replica_is_masked_and_the_others_train_on(digits, tmp_path):
    task = Task(SmallMLP(), classification_loss, unit_pixels)
    tx = injected(lambda lr: optax.sgd(lr), lr=0.1)
    state, keys = init_replicas(task, tx, digits, [0, 1, 2], hyperparams={"lr": [0.1, 1e30, 0.1]})
    lines = []
    result = fit(task, state, digits, epochs=3, batch_size=32, key=keys, run_dir=RunDir(tmp_path), log=lines.append)
    assert result.diverged.tolist() == [False, True, False]
    assert any(line.startswith("replica 1 diverged") for line in lines)
    history = read_history(tmp_path / "history.jsonl")
    assert all(r["replicas_counted"] == 2 and np.isfinite(r["train_loss"]) for r in history)
    assert history[-1]["replicas"]["train_loss"][1] is None
    last = history[-1]
    assert last["train_loss"] == pytest.approx(np.mean([last["replicas"]["train_loss"][i] for i in (0, 2)]))
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # the healthy ones learned

    state, keys = init_replicas(task, tx, digits, [0, 1], hyperparams={"lr": [1e30, 1e30]})
    with pytest.raises(JaxdlError, match="the loss of every replica became non-finite by epoch 1"):
        fit(task, state, digits, epochs=2, batch_size=32, key=keys, log=quiet)


def test_early_stopping_stops_each_replica_alone(digits):
    # lr 0: the validation loss never improves, so that replica stops after `patience` epochs and is
    # frozen (its step count stops); lr 0.05 keeps improving and trains every epoch.
    task = Task(SmallMLP(), classification_loss, unit_pixels)
    tx = injected(lambda lr: optax.sgd(lr), lr=0.05)
    state, keys = init_replicas(task, tx, digits, [0, 0], hyperparams={"lr": [0.0, 0.05]})
    lines = []
    result = fit(task, state, digits, epochs=6, batch_size=32, key=keys, val_data=digits, patience=2, log=lines.append)
    assert result.epochs_run == 6 and not result.stopped_early
    assert np.asarray(result.state.step).tolist() == [3 * 8, 6 * 8]
    assert any(line.startswith("early stopping replica 0") for line in lines)
    frozen = [r["replicas"]["train_loss"][0] for r in result.history]
    assert frozen[3:] == [frozen[2]] * 3  # a frozen replica keeps its last training figures


@pytest.mark.slow
def test_replicas_resume_bitwise_equal_to_an_uninterrupted_run(digits, tmp_path):
    task = Task(CNN(), classification_loss, unit_pixels)

    def run(path, epochs, resume=False):
        state, keys = init_replicas(task, optax.adam(1e-3), digits, [0, 1])
        return fit(task, state, digits, epochs=epochs, batch_size=32, key=keys, val_data=digits, keep_checkpoints=1,
                   run_dir=RunDir(path, overwrite=not resume, resume=resume), resume=resume, log=quiet)  # fmt: skip

    straight = run(tmp_path / "a", 2)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text("{}")
    run(tmp_path / "b", 1)
    resumed = run(tmp_path / "b", 2, resume=True)
    assert resumed.epochs_run == 1 and len(resumed.history) == 2
    chex.assert_trees_all_equal(jax.tree.leaves(straight.state), jax.tree.leaves(resumed.state))


def test_interval_is_the_student_t_interval():
    summary = stats.interval([1.0, 3.0])  # mean 2, s = sqrt(2), t(0.975, 1) = 12.706
    assert summary["mean"] == 2.0 and summary["n"] == 2
    assert summary["half_width"] == pytest.approx(12.7062 * np.sqrt(2) / np.sqrt(2), rel=1e-4)
    five = stats.interval([0.5, 0.52, 0.51, 0.49, None, float("nan")])
    assert five["n"] == 4 and five["excluded"] == 2
    assert five["half_width"] == pytest.approx(3.1824 * np.std([0.5, 0.52, 0.51, 0.49], ddof=1) / 2, rel=1e-4)
    one = stats.interval([0.7])
    assert one["half_width"] is None and stats.format_interval(one, "{:.1%}") == "70.0% (N=1)"
    assert stats.format_interval(five, "{:.2%}").endswith("(N=4, 2 diverged)")


@pytest.mark.parametrize("dof", [1, 2, 3, 7, 31, 63, 1000])
def test_student_t_quantile_is_scipys(dof):
    from scipy.special import stdtrit

    for p in (0.5, 0.6, 0.9, 0.975, 0.995, 0.999999):
        assert stats.student_t_quantile(p, dof) == pytest.approx(float(stdtrit(dof, p)), rel=1e-10, abs=1e-12)
    with pytest.raises(ValueError, match="0.5 <= p < 1"):
        stats.student_t_quantile(0.2, dof)


def test_replica_plan_gives_every_setting_the_same_seeds():
    config = cifar10.MLPConfig(seed=5, seeds=2, sweep=Sweep.of({"lr": [0.001, 0.003]}))
    plan = ReplicaPlan.of(config)
    assert plan.seeds == [5, 6, 5, 6]
    assert plan.settings == [{"lr": 0.001}, {"lr": 0.001}, {"lr": 0.003}, {"lr": 0.003}]
    assert plan.groups() == [({"lr": 0.001}, [0, 1]), ({"lr": 0.003}, [2, 3])]


@pytest.mark.parametrize("overrides, message", [
    (["lr=1e-3,"], "setting lr: empty value in the grid"),
    (["lr=1e-3,1e-3"], "repeats a value"),
    (["lr=1e-3,-1"], "setting lr must be > 0, got -1.0"),
    (["lr=1e-3,fast"], "setting lr: expected float, got 'fast'"),
    (["lrate=1e-3,3e-3"], "unknown setting 'lrate'"),
    (["recipe=tutorial", "peak_lr=1e-3,3e-3"], "applies only with recipe=improved"),
])  # fmt: skip
def test_bad_grids_fail_before_anything_runs(overrides, message):
    with pytest.raises(JaxdlError, match=message):
        config_lib.split_grid(cifar10.CNNConfig if "recipe=tutorial" in overrides else cifar10.MLPConfig, overrides)


def test_grid_errors_on_the_command_line_are_one_line_with_exit_2(tmp_path, capsys):
    for argv in (["run", "cifar10-mlp", "--set", "lr=1e-3,"], ["run", "blobs", "--set", "lr=1,2"],
                 ["run", "monte-carlo", "--seeds", "2"], ["run", "cifar10-mlp", "--set", "sweep=lr=1"]):  # fmt: skip
        assert main([*argv, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_vmapped_grid_times_seeds_writes_the_sweep(tmp_path, image_folder):
    data = image_folder(tmp_path / "mnist", [str(d) for d in range(10)], 28, "L", {"train": 3, "test": 3})
    out = tmp_path / "run"
    settings = ("epochs=2", "batch_size=8", "n_train=24", "n_val=8", "lr=0.01,0.1")
    argv = ["run", "mnist-mlp", "--out", str(out), "--data", str(data), "--seeds", "2",
            *[a for s in settings for a in ("--set", s)]]  # fmt: skip
    assert main(argv) == 0
    metrics = RunResult.read(out)
    assert metrics["num_replicas"] == 4 and [r["seed"] for r in metrics.replicas] == [0, 1, 0, 1]
    assert [g.settings for g in metrics.groups] == [{"lr": 0.01}, {"lr": 0.1}]
    assert metrics.groups[0].intervals["test_accuracy"]["n"] == 2
    sweep = read_json(out / "sweep.json")
    assert sweep["grid"] == {"lr": ["0.01", "0.1"]} and len(sweep["groups"]) == 2
    assert_figure(out / "sweep_lr.png", (715, 495))  # 6.5 x 4.5 inches at 110 dpi
    assert_figure(out / "curves.png", (1089, 436))
    assert read_json(out / "config.json")["config"]["sweep"] == {"lr": [0.01, 0.1]}
    assert len(read_history(out / "history.jsonl")[0]["replicas"]["train_loss"]) == 4


def test_a_run_whose_config_json_holds_the_sweep_as_text_still_resumes(tmp_path):
    # config.json before the sweep was typed: "sweep": "lr=0.01,0.1"; a finished run is left as it was
    from jaxdl.errors import Finished
    from jaxdl.runner import run_experiment

    config = {**config_lib.to_dict(cifar10.MLPConfig(seeds=2, epochs=1)), "sweep": "lr=0.01,0.1"}
    out = tmp_path / "old"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"experiment": "cifar10-mlp", "config": config}))
    (out / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5}))
    with pytest.raises(Finished, match="is finished: its 1 epoch is trained"):
        run_experiment("cifar10-mlp", resume=True, out=out)
    assert json.loads((out / "config.json").read_text())["config"]["sweep"] == "lr=0.01,0.1"
