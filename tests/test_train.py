"""The training engine: steps, compiled epochs, exact masked evaluation, resume, NaN, early stopping."""

import shutil
import signal

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl import data as D
from jaxdl.errors import JaxdlError, Stopped
from jaxdl.experiments import mnist_vae
from jaxdl.experiments.common import unit_pixels
from jaxdl.models import CNN, VAE, SmallMLP, vae_loss
from jaxdl.rundir import RunDir, read_history
from jaxdl.train.checkpoint import Checkpoints
from jaxdl.train.fit import ChunkSizer, EarlyStopper, EarlyStopping, Hook, _Run, fit
from jaxdl.train.state import TrainState, init_state
from jaxdl.train.steps import averages, make_epoch_fns, make_train_step
from jaxdl.train.task import Task, classification_loss

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)


@pytest.fixture(scope="module")
def digits():
    ds = D.load("digits", "train")
    return {"inputs": ds.inputs[:256], "labels": ds.labels[:256]}


def make_state(task, data, tx, seed=0):
    return init_state(task, tx, data, jax.random.key(seed))[0]


def test_optimizer_steps_converge_on_a_quadratic():
    # A least-squares problem as a Task: the step must drive the loss towards 0.
    target = jnp.array([1.0, -2.0, 0.5])

    def quadratic(outputs, batch):
        return jnp.sum(jnp.square(outputs - target[None]), axis=-1), {}

    import flax.linen as nn

    class Params(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            return jnp.broadcast_to(self.param("w", nn.initializers.zeros, (3,)), (x.shape[0], 3))

    task = Task(Params(), quadratic)
    batch = {"inputs": jnp.zeros((4, 1)), "labels": jnp.zeros(4, jnp.int32), "mask": jnp.ones(4, bool)}
    for tx in (optax.sgd(0.1), optax.sgd(0.05, momentum=0.9), optax.adam(0.1)):
        state = TrainState.create(task.init(jax.random.PRNGKey(0), batch), tx, jax.random.PRNGKey(1))
        step = make_train_step(task)
        for _ in range(300):
            state, sums = step(state, batch)
        np.testing.assert_allclose(state.params["w"], target, atol=1e-3)
        assert int(state.step) == 300


def test_epoch_compiles_once_and_learns(digits):
    # the loss is traced twice, for the metrics' shapes and when the steps first compile;
    # later epochs must not retrace it
    task = Task(SmallMLP(), chex.assert_max_traces(classification_loss, n=2), unit_pixels)
    state = make_state(task, digits, optax.sgd(0.1))
    fns = make_epoch_fns(task, 32, 256)
    data, state = fns.place_train(digits), fns.place(state)
    losses = []
    for epoch in range(3):
        state, sums = fns.train_epoch(state, data, fns.place(jax.random.PRNGKey(epoch)))
        losses.append(averages(sums)["loss"])
    assert fns.train_steps._cache_size() == 1  # no recompilation after the first epoch
    assert losses[-1] < losses[0]
    assert int(state.step) == 3 * 8


def test_masked_evaluation_counts_every_example_once(digits):
    task = Task(SmallMLP(), classification_loss, unit_pixels)
    state = make_state(task, digits, optax.sgd(0.1))
    data = {k: jnp.asarray(v[:100]) for k, v in digits.items()}  # 100 = 3 batches of 32 + 4
    fns = make_epoch_fns(task, 32, 100)
    got = averages(fns.evaluate(state, data))
    logits = task.model.apply({"params": state.params}, D.normalize(data["inputs"], "unit"))
    losses, metrics = classification_loss(logits, data)
    assert got["loss"] == pytest.approx(float(losses.mean()), rel=1e-5)
    assert got["accuracy"] == pytest.approx(float(metrics["accuracy"].mean()))


def test_evaluation_draws_fresh_noise_for_every_batch(digits):
    # a VAE's test loss samples z; the same draws in every batch would average 32 draws, not 320
    task = Task(VAE(latents=2, hidden=8, features=64), vae_loss, mnist_vae.flat_unit_pixels)
    data = {"inputs": jnp.asarray(digits["inputs"][:32]), "labels": jnp.asarray(digits["labels"][:32])}
    state = make_state(task, data, optax.adam(1e-3))
    fns = make_epoch_fns(task, 32, 320)
    sums = fns.evaluate(state, {k: jnp.tile(v, (10,) + (1,) * (v.ndim - 1)) for k, v in data.items()})
    one_batch = fns.evaluate(state, data)
    # ten copies of one batch: with fresh noise per batch the total is not ten times one batch's
    assert float(sums["loss"]) != pytest.approx(10 * float(one_batch["loss"]), rel=1e-6)
    assert float(sums["count"]) == 320


def _cnn_fit(digits, run_dir, epochs, resume=False):
    task = Task(CNN(), classification_loss, unit_pixels)
    state = make_state(task, digits, optax.adam(1e-3))
    return fit(task, state, digits, epochs=epochs, batch_size=32, key=jax.random.PRNGKey(7), val_data=digits,
               run_dir=run_dir, resume=resume, keep_checkpoints=1, log=lambda s: None)  # fmt: skip


@pytest.mark.slow
def test_resume_ends_bitwise_equal_to_an_uninterrupted_run(digits, tmp_path):
    # A CNN: batch-norm statistics, dropout keys and Adam's state must all resume.
    straight = _cnn_fit(digits, RunDir(tmp_path / "a"), epochs=2)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text("{}")
    _cnn_fit(digits, RunDir(tmp_path / "b", overwrite=True), epochs=1)  # "interrupted" after epoch 1
    resumed = _cnn_fit(digits, RunDir(tmp_path / "b", resume=True), epochs=2, resume=True)
    assert resumed.epochs_run == 1 and len(resumed.history) == 2
    chex.assert_trees_all_equal(straight.state.params, resumed.state.params)
    chex.assert_trees_all_equal(straight.state.batch_stats, resumed.state.batch_stats)
    assert [r["epoch"] for r in read_history(tmp_path / "b" / "history.jsonl")] == [1, 2]
    assert [p.name for p in (tmp_path / "b" / "checkpoints").iterdir()] == ["16"]  # the newest 1: step 16


def test_nan_loss_names_epoch_and_step_and_keeps_the_last_good_checkpoint(digits, tmp_path):
    task = Task(SmallMLP(), classification_loss, unit_pixels)
    blow_up = optax.scale_by_schedule(lambda step: jnp.where(step >= 10, 1e30, 1.0))  # 8 steps per epoch
    state = make_state(task, digits, optax.chain(optax.sgd(0.1), blow_up, blow_up))
    with pytest.raises(JaxdlError, match=r"became (nan|inf) at epoch 2, step \d+; the last good checkpoint is step 8"):
        fit(task, state, digits, epochs=3, batch_size=32, key=jax.random.PRNGKey(0),
            run_dir=RunDir(tmp_path), log=lambda s: None)  # fmt: skip
    assert (tmp_path / "checkpoints" / "8").is_dir() and not (tmp_path / "checkpoints" / "16").exists()


def test_early_stopping_on_validation_loss(digits, tmp_path):
    task = Task(SmallMLP(), classification_loss, unit_pixels)
    state = make_state(task, digits, optax.sgd(0.2))
    contrary = {"inputs": digits["inputs"], "labels": (digits["labels"] + 1) % 10}  # fitting train hurts this
    lines = []
    result = fit(task, state, digits, epochs=20, batch_size=32, key=jax.random.PRNGKey(0),
                 val_data=contrary, patience=2, log=lines.append)  # fmt: skip
    assert result.stopped_early and result.epochs_run < 20
    assert "early stopping" in lines[-1]


def test_typed_and_raw_keys_train_alike(digits):
    task = Task(SmallMLP(), classification_loss, unit_pixels)
    results = []
    for make_key in (jax.random.key, jax.random.PRNGKey):
        state, shuffle_key = init_state(task, optax.sgd(0.1), digits, make_key(3))
        results.append(fit(task, state, digits, epochs=1, batch_size=32, key=shuffle_key, log=lambda s: None))
    chex.assert_trees_all_equal(results[0].state.params, results[1].state.params)
    assert results[0].state.key.dtype == jnp.uint32  # stored raw, so a checkpoint holds plain arrays


def test_fit_takes_a_dataset_and_evaluates_one(digits):
    train, test = D.load("digits", "train"), D.load("digits", "test")
    task = Task(SmallMLP(), classification_loss, unit_pixels)
    state, shuffle_key = init_state(task, optax.adam(3e-3), train, jax.random.key(0))
    result = fit(task, state, train, epochs=2, batch_size=64, key=shuffle_key, log=lambda s: None)
    scores = result.evaluate(test)
    assert set(scores) == {"loss", "accuracy"} and scores["accuracy"] > 0.7


class _CountEpochs(Hook):
    """A hook of one's own: counts the epochs into their records, stops after ``stop_after``, and keeps its
    count in the checkpoints."""

    name = "counted"

    def __init__(self, stop_after=None):
        self.count, self.stop_after = 0, stop_after

    def after_epoch(self, end):
        self.count += 1
        end.record["counted"] = self.count
        if self.count == self.stop_after:
            end.active[:] = False

    def saved(self):
        return self.count

    def restore(self, saved):
        self.count = saved


def test_a_hook_of_ones_own_adds_to_the_record_stops_training_and_resumes_with_its_state(digits, tmp_path):
    task = Task(SmallMLP(), classification_loss, unit_pixels)
    state = make_state(task, digits, optax.sgd(0.1))
    run = dict(batch_size=32, key=jax.random.PRNGKey(0), log=lambda s: None)  # noqa: C408
    stopped = fit(task, state, digits, epochs=5, hooks=[_CountEpochs(stop_after=2)], **run)
    assert stopped.stopped_early and stopped.epochs_run == 2
    assert [r["counted"] for r in stopped.history] == [1, 2]
    fit(task, state, digits, epochs=2, hooks=[_CountEpochs()], run_dir=RunDir(tmp_path), **run)
    (tmp_path / "config.json").write_text("{}")  # what marks a run directory (written by the runner)
    resumed = fit(task, state, digits, epochs=4, hooks=[_CountEpochs()], run_dir=RunDir(tmp_path, resume=True),
                  resume=True, **run)  # fmt: skip
    assert [r["counted"] for r in resumed.history] == [1, 2, 3, 4]  # the count came back from the checkpoint
    assert [r["counted"] for r in read_history(tmp_path / "history.jsonl")] == [1, 2, 3, 4]


def test_checkpoint_records_of_the_format_before_resume_and_a_newer_format_is_refused():
    hooks = [EarlyStopper(patience=3, replicas=1, log=print, numbered=False)]
    run = _Run(1)
    before = {"epoch": 2, "steps_done": 8, "history": [{"epoch": 1}, {"epoch": 2}],  # one run's record, before 2026-12
              "early_stopping": {"patience": 3, "best_loss": 0.5, "best_epoch": 1, "bad_epochs": 1}}  # fmt: skip
    run.restore(before, steps_per_epoch=8, hooks=hooks)
    assert (run.epoch, run.steps_done, run.active.tolist(), run.diverged.tolist()) == (3, 0, [True], [False])
    assert hooks[0].stoppers == [EarlyStopping(patience=3, best_loss=0.5, best_epoch=1, bad_epochs=1)]
    again = _Run(1)
    again.restore(run.record(2, 8, None, hooks), steps_per_epoch=8, hooks=hooks)  # this format round-trips
    assert (again.epoch, again.history, hooks[0].stoppers[0].best_loss) == (3, before["history"], 0.5)
    with pytest.raises(JaxdlError, match="^a checkpoint record of format 4; this jaxdl reads formats 1 to 3$"):
        _Run(1).restore({**before, "format": 4}, steps_per_epoch=8, hooks=hooks)


def _as_written_before(record, old_format):
    """A format-3 record of one run as jaxdl wrote it before: format 2 kept a partial epoch's step sums
    as ``(steps,)``, not ``(steps, 1)``; format 1 also had no ``format``, ``active`` or ``diverged``,
    and kept early stopping as one dict."""
    record = {k: v for k, v in record.items() if k != "state_sha256"}
    record["format"] = 2
    record["step_sums"] = {k: [[row[0] for row in rows], dtype] for k, (rows, dtype) in record["step_sums"].items()}
    if old_format == 1:
        del record["format"], record["active"], record["diverged"]
        record["early_stopping"] = record["early_stopping"][0]
    return record


@pytest.mark.slow
@pytest.mark.parametrize("old_format", [2, 1])
def test_a_single_runs_checkpoint_of_an_older_format_resumes_mid_epoch_bitwise(digits, tmp_path, monkeypatch,
                                                                               old_format):  # fmt: skip
    # The state is saved as the caller holds it in every format (one run: no replica axis); only the
    # record changed. A checkpoint rewritten with the older record must resume where it was cut, and
    # the run must end as an uncut one does.
    task = Task(SmallMLP(), classification_loss, unit_pixels)
    state = make_state(task, digits, optax.adam(1e-3))
    run = dict(epochs=3, batch_size=32, key=jax.random.PRNGKey(3), val_data=digits, patience=5,  # noqa: C408
               chunk_seconds=1e-6, log=lambda s: None)  # fmt: skip
    uncut = fit(task, state, digits, **run)
    observe, chunks = ChunkSizer.observe, []

    def observe_then_signal(self, steps, seconds):  # every step is a chunk; stop after 11: epoch 2, step 3 of 8
        observe(self, steps, seconds)
        chunks.append(steps)
        if len(chunks) == 11:
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(ChunkSizer, "observe", observe_then_signal)
    (tmp_path / "config.json").write_text("{}")  # what marks a run directory (written by the runner)
    with pytest.raises(Stopped):
        fit(task, state, digits, run_dir=RunDir(tmp_path, overwrite=True), **run)
    monkeypatch.setattr(ChunkSizer, "observe", observe)
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    saved, record = checkpoints.restore(11, state)
    assert record["format"] == 3 and np.shape(record["step_sums"]["loss"][0]) == (8, 1)
    shutil.rmtree(tmp_path / "checkpoints" / "11")
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    checkpoints.save(11, saved, _as_written_before(record, old_format))
    checkpoints.close()
    lines = []
    resumed = fit(task, state, digits, run_dir=RunDir(tmp_path, resume=True), resume=True,
                  **{**run, "log": lines.append})  # fmt: skip
    assert lines[0].startswith("resumed from checkpoint 11 (epoch 2, step 3 of 8)")
    chex.assert_trees_all_equal(resumed.state.params, uncut.state.params)
    assert [_without_seconds(r) for r in resumed.history] == [_without_seconds(r) for r in uncut.history]
    assert resumed.step_losses.shape == (16,) and resumed.diverged is None  # the 2 epochs it finished


def _without_seconds(record):
    return {k: v for k, v in record.items() if k not in ("seconds", "examples_per_second")}


class _AfterEpoch(Hook):
    """Runs ``action(end)`` after epoch ``at``."""

    def __init__(self, at, action):
        self.at, self.action = at, action

    def after_epoch(self, end):
        if end.epoch == self.at:
            self.action(end)


def _power_cut(end):
    raise RuntimeError("the machine died")


@pytest.mark.slow
def test_checkpoint_every_saves_the_nth_epochs_the_last_and_any_stop_and_a_crash_resumes_from_the_last(
    digits, tmp_path
):
    task = Task(SmallMLP(), classification_loss, unit_pixels)
    state = make_state(task, digits, optax.adam(1e-3))
    run = dict(epochs=5, batch_size=32, key=jax.random.PRNGKey(3), keep_checkpoints=9, checkpoint_every=2,  # noqa: C408
               log=lambda s: None)  # fmt: skip

    def fit_in(name, hooks=(), resume=False):
        if not resume:
            (tmp_path / name).mkdir()
            (tmp_path / name / "config.json").write_text("{}")  # what marks a run directory
        run_dir = RunDir(tmp_path / name, overwrite=not resume, resume=resume)
        return fit(task, state, digits, run_dir=run_dir, hooks=hooks, resume=resume, **run)

    def saved(name):  # steps, newest first; 8 steps per epoch
        return Checkpoints(tmp_path / name / "checkpoints").steps()

    uncut = fit_in("uncut")
    assert saved("uncut") == [40, 32, 16]  # epochs 2 and 4, and the last
    with pytest.raises(RuntimeError, match="died"):  # between the saved epochs 2 and 4: epoch 3 is lost
        fit_in("cut", [_AfterEpoch(3, _power_cut)])
    assert saved("cut") == [16]
    resumed = fit_in("cut", resume=True)
    chex.assert_trees_all_equal(resumed.state.params, uncut.state.params)
    assert [r["epoch"] for r in read_history(tmp_path / "cut" / "history.jsonl")] == [1, 2, 3, 4, 5]
    with pytest.raises(Stopped):  # a stop request after epoch 3 saves epoch 3
        fit_in("stopped", [_AfterEpoch(3, lambda end: signal.raise_signal(signal.SIGTERM))])
    assert saved("stopped") == [24, 16]
    early = fit_in("early", [_AfterEpoch(3, lambda end: end.active.fill(False))])  # stopped early: saved
    assert early.epochs_run == 3 and saved("early") == [24, 16]
    for bad in (0, 2.5, True):
        with pytest.raises(JaxdlError, match=f"checkpoint_every must be a whole number of epochs, .*; got {bad}$"):
            fit(task, state, digits, **{**run, "checkpoint_every": bad})
