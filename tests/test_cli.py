"""The `jaxdl` command: listing, runs and their directories, and one-line errors."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from jaxdl.cli import main
from jaxdl.results import RunResult
from jaxdl.rundir import read_history, read_json

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "epochs=50", "--set", "seeds=3", "--set", "log_every=25"]
TIMINGS = {
    "compile_seconds",
    "train_seconds",
    "seconds_per_epoch",
    "examples_per_second",
    "seeds_compile_seconds",
    "seeds_wall_seconds",
}


def test_the_command_line_compiles_what_users_run():
    # no xla_o0 mark here (tests/conftest.py): the runs below compile at XLA's default optimisation level
    assert not jax.config.read("jax_disable_most_optimizations")
    assert os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS") != "true"


def test_list_shows_every_experiment(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("blobs ")
    assert "tutorial 0" in out


def test_run_writes_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "blobs", "--out", str(out), "--seed", "3", *SMALL]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # no progress bar when stderr is not a terminal
    assert captured.out.splitlines()[0].startswith("Epoch 25 loss ")
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "decision_boundary.png",
        "history.jsonl",
        "loss_accuracy.png",
        "metrics.json",
        "seed_accuracy.png",
    ]
    config = read_json(out / "config.json")
    assert config["experiment"] == "blobs"
    assert config["config"]["seed"] == 3 and config["config"]["epochs"] == 50
    assert config["environment"]["versions"]["jax"]
    assert config["environment"]["devices"]
    history = read_history(out / "history.jsonl")
    assert [h["epoch"] for h in history] == list(range(1, 51))
    metrics = RunResult.read(out)
    for key in (
        "train_accuracy",
        "train_loss",
        "train_seconds",
        "compile_seconds",
        "seed_accuracy_mean",
        "seed_accuracy_std",
    ):
        assert isinstance(metrics[key], float), key
    assert len(metrics["seed_accuracies"]) == 3


@pytest.mark.slow
def test_same_command_twice_gives_identical_metrics(tmp_path):
    runs = []
    for name in ("a", "b"):
        assert main(["run", "blobs", "--out", str(tmp_path / name), *SMALL]) == 0
        metrics = RunResult.read(tmp_path / name)
        runs.append({k: v for k, v in metrics.items() if k not in TIMINGS})
    assert runs[0] == runs[1]
    assert (tmp_path / "a" / "history.jsonl").read_text() == (tmp_path / "b" / "history.jsonl").read_text()


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text('{"keep": 1}')
    assert main(["run", "blobs", "--out", str(out), *SMALL]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text()) == {"keep": 1}


def test_loss_that_becomes_nan_stops_with_a_message_and_keeps_the_history(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "blobs", "--out", str(out), "--set", "lr=1e38", "--set", "epochs=20", "--set", "seeds=0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "the loss became nan at epoch" in err and "lower lr" in err
    assert (out / "config.json").exists()
    history = read_history(out / "history.jsonl")
    assert history and history[-1]["loss"] is None  # NaN is stored as null


def _status(args):
    """main()'s exit status, whether it returns it or argparse exits."""
    try:
        return main(args)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nope"], "unknown experiment 'nope'"),
        (["run", "blobs", "--set", "lr=-1"], "setting lr must be > 0, got -1.0"),
        (["run", "blobs", "--set", "epochs=abc"], "setting epochs: expected int, got 'abc'"),
        (["run", "blobs", "--set", "epochs=0"], "setting epochs must be >= 1"),
        (["run", "blobs", "--set", "init=tutorial", "--set", "hidden=4"], "init=tutorial needs hidden=5"),
        (["run", "blobs", "--seed", "x"], "invalid int value: 'x'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["run", "mnist-mlp", "--set", "devices=4"], "devices=4, but JAX sees 1 cpu device"),
        (["run", "mnist-mlp", "--set", "batch_size=0"], "setting batch_size must be >= 1"),
        (["run", "mnist-mlp", "--set", "precision=float16"], "setting precision"),
        (["run", "mnist-mlp", "--process-id", "1"], "--process-id need --distributed"),
        (["run", "blob"], "unknown experiment 'blob'; did you mean 'blobs'?"),
        (["run", "blobs", "--set", "lrr=0.1"], "unknown setting 'lrr'; did you mean 'lr'?"),
        (
            ["run", "mnist-vae", "--set", "lr=1e-9"],
            "setting lr applies only with recipe=tutorial; this run uses recipe=improved",
        ),
        (
            ["run", "cifar10-cnn", "--set", "recipe=tutorial", "--set", "peak_lr=0.1"],
            "setting peak_lr applies only with recipe=improved",
        ),
        (["run", "blobs", "--resume"], "experiment blobs keeps no checkpoints, so --resume does not apply"),
        (["run", "mnist-mlp", "--resume"], "--resume needs --out"),
    ],
)
def test_bad_input_is_one_line_and_status_2(args, message, capsys, tmp_path):
    if args[0] == "run" and "--resume" not in args:
        args = [*args, "--out", str(tmp_path / "r")]
    assert _status(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()  # a rejected request writes nothing


@pytest.mark.slow
def test_console_script_and_experiment_script(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    bad = subprocess.run(
        [sys.executable, "-m", "jaxdl.cli", "run", "blobs", "--set", "lr=-1"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "jaxdl: error: setting lr must be > 0, got -1.0"
    ok = subprocess.run(
        [sys.executable, "-m", "jaxdl", "run", "blobs", "--out", str(tmp_path / "r"), *SMALL],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert "Epoch 50 loss" in ok.stdout
    assert (tmp_path / "r" / "metrics.json").exists()


def test_data_info_and_show(tmp_path, capsys):
    assert main(["data", "info", "digits"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["train"][1:3] == ["1437", "(8,"] and rows["test"][1] == "360"
    assert " 9 9" in out  # a row per class
    png = tmp_path / "digits.png"
    assert main(["data", "show", "digits", "--out", str(png), "--count", "12"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "info", "nope"], "unknown dataset 'nope'"),
        (["data", "info", "mnist", "--data", "/no/such/file.tar.gz"], "does not exist"),
        (["data", "show", "digits", "--count", "0"], "--count must be >= 1"),
        (["data", "info", "digits", "--split", "val"], "digits has no split 'val'"),
        (["run", "blobs", "--data", "x"], "experiment blobs reads no data set"),
        (["run", "blobs", "--tensorboard"], "experiment blobs does not train with the engine, so --tensorboard"),
    ],
)
def test_data_errors_are_one_line_and_status_2(args, message, capsys):
    assert _status(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_index_is_generated_from_the_experiments_declarations():
    from jaxdl import experiments

    assert experiments.build_index() == (ROOT / "jaxdl" / "experiments" / "_index.py").read_text(), (
        "jaxdl/experiments/_index.py is out of date: run python scripts/build_index.py"
    )


def test_distributed_needs_a_shared_run_directory(capsys):
    assert _status(["run", "mnist-mlp", "--distributed"]) == 2
    assert "--distributed needs --out" in capsys.readouterr().err


def test_resume_of_an_experiment_without_checkpoints_is_refused_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "blobs", "--out", str(out), *SMALL]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["run", "blobs", "--out", str(out), "--resume", *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "jaxdl: error: experiment blobs keeps no checkpoints, so --resume does not apply; start a new run"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_run_that_fails_before_training_leaves_nothing_to_refuse_a_retry(tmp_path, capsys):
    out = tmp_path / "run"
    for _ in range(2):  # the second attempt must not be refused as "already holds a run"
        assert main(["run", "mnist-mlp", "--out", str(out), "--data", str(tmp_path / "no-such-copy")]) == 2
        assert "--data " in capsys.readouterr().err and not out.exists()
    out.mkdir()  # a directory the user made is kept, emptied of what the run wrote
    assert main(["run", "mnist-mlp", "--out", str(out), "--data", str(tmp_path / "no-such-copy")]) == 2
    assert out.is_dir() and not any(out.iterdir())


def test_library_errors_name_arguments_and_the_cli_names_options(tmp_path, capsys):
    from jaxdl.errors import JaxdlError
    from jaxdl.rundir import RunDir

    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(JaxdlError) as error:
        RunDir(tmp_path)
    assert str(error.value) == (
        f"out {tmp_path} already holds a run (metrics.json); choose another or pass overwrite=True"
    )
    assert error.value.cli_message() == (
        f"--out {tmp_path} already holds a run (metrics.json); choose another or pass --overwrite"
    )


def test_the_registry_describes_each_experiment_as_its_module_does():
    from jaxdl import experiments

    for name in experiments.names():
        assert experiments.describe(name) == experiments.get(name).description, name
        assert experiments.settings_of(name) is experiments.get(name).config, name


@pytest.mark.parametrize(
    "args",
    [["list"], ["data", "info", "digits"], ["run", "blobz"], ["run", "cifar10-cnn", "--help-config"]]
    + [["run", "mnist-vae", "--help-config"], ["run", "forward-gradient", "--help-config"]],
)
def test_commands_that_need_no_jax_import_none(args):
    code = (
        "import contextlib, io, sys\n"
        "from jaxdl.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    status = main({args!r})\n"
        "print(status, sorted(m for m in ('jax', 'flax', 'optax', 'orbax') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split(" ", 1)[1].strip() == "[]", done.stdout


def test_version_license_and_type_marker(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"jaxdl {metadata.version('jaxdl')}\n"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (ROOT / "jaxdl" / "py.typed").is_file()
    assert '"jaxdl" = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()  # shipped with the package


def test_a_run_that_fails_or_is_stopped_before_it_starts_leaves_no_folder_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default run path: runs/NAME/TIMESTAMP
    assert main(["run", "cifar10-mlp", "--data", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # not even runs/cifar10-mlp/

    import jaxdl.runner
    from jaxdl import experiments

    def interrupted(config, run_dir):
        raise KeyboardInterrupt  # Ctrl-C while the data are read, before any file of the run

    blobs = experiments.get("blobs")
    monkeypatch.setattr(jaxdl.runner.experiments, "get", lambda name: dataclasses.replace(blobs, run=interrupted))
    assert main(["run", "blobs", "--out", str(tmp_path / "r")]) == 128 + 2
    err = capsys.readouterr().err
    assert err == f"jaxdl: stopped by Ctrl-C; before the run started; its folder {tmp_path / 'r'} was removed\n"
    assert list(tmp_path.iterdir()) == []


def test_a_short_cifar10_run_says_how_it_differs_from_the_tutorials():
    from jaxdl.experiments.cifar10 import _against_the_tutorial
    from jaxdl.experiments.settings import CNNConfig

    short = _against_the_tutorial(0.6105, CNNConfig(epochs=1, train_size=5000), 0.7552, tutorial_epochs=10)
    assert short == (
        "test accuracy 61.05% after 1 epoch on 5,000 images (the tutorial: 75.52% after 10 epochs on 50,000)"
    )
    same = _against_the_tutorial(0.7489, CNNConfig(epochs=10), 0.7552, tutorial_epochs=10)
    assert same == "test accuracy 74.89% (tutorial 75.52%)"


def test_runs_lists_past_runs_with_status_figures_and_how_to_resume(tmp_path, capsys):
    from jaxdl.locks import FileLock

    def run(name, experiment, files):
        folder = tmp_path / "runs" / experiment / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"experiment": experiment, "config": {"epochs": 5}}))
        for file, text in files.items():
            (folder / file).parent.mkdir(parents=True, exist_ok=True)
            (folder / file).write_text(text)
        return folder

    run("a", "cifar10-mlp", {"metrics.json": json.dumps({"test_accuracy": 0.5037, "test_loss": 1.43})})
    stopped = run(
        "b", "cifar10-cnn", {"checkpoints/400/x": "", "history.jsonl": '{"epoch": 2, "train_loss": 1.2}\n{"ep'}
    )
    run("c", "mnist-vae", {})
    running = run("d", "mnist-mlp", {})
    lock = FileLock(running / ".jaxdl.lock")
    lock.acquire()
    try:
        assert main(["runs", str(tmp_path / "runs")]) == 0
    finally:
        lock.release()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["started", "status", "experiment", "run", "figures"]
    rows = {line.split()[3]: line for line in lines[1:] if not line.strip().startswith("to resume")}
    assert rows["cifar10-mlp"].split()[2:] == ["finished", "cifar10-mlp", str(tmp_path / "runs/cifar10-mlp/a"),
                                               "test_accuracy", "50.37%,", "test_loss", "1.43"]  # fmt: skip
    assert rows["cifar10-cnn"].split()[2:] == ["stopped", "cifar10-cnn", str(stopped), "epoch", "2/5,", "train_loss",
                                               "1.2"]  # fmt: skip
    assert rows["mnist-vae"].split()[2] == "failed" and rows["mnist-mlp"].split()[2] == "running"
    assert f"to resume: jaxdl run cifar10-cnn --out {stopped} --resume" in [line.strip() for line in lines]
    assert not (running / ".jaxdl.lock").exists()  # released; listing took nothing
    assert main(["runs", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == (
        f"jaxdl: error: {tmp_path / 'nowhere'} is not a folder of runs (jaxdl run writes them to runs/NAME/TIMESTAMP)\n"
    )
