"""What the image experiments share: loading splits, training through ``fit``, evaluating, reporting."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import optax

from jaxdl import data as data_lib
from jaxdl import plots, stats
from jaxdl.data.dataset import as_arrays
from jaxdl.errors import JaxdlError
from jaxdl.experiments.settings import EngineSettings
from jaxdl.results import Group, RunResult
from jaxdl.rundir import RunDir
from jaxdl.train import parallel
from jaxdl.train.fit import FitResult, Hook, fit
from jaxdl.train.instruments import Instruments
from jaxdl.train.replicas import init_replicas, injected, replica
from jaxdl.train.steps import steps_per_epoch
from jaxdl.train.task import Task


@dataclasses.dataclass(frozen=True)
class ReplicaPlan:
    """What each replica of a run is: its seed and its swept settings (the same seeds for every setting).

    Attributes:
      seeds: replica i's PRNG seed.
      settings: replica i's swept settings, ``{name: value}`` (``{}`` without a sweep).
    """

    seeds: list[int]
    settings: list[dict[str, float]]

    @classmethod
    def of(cls, config: EngineSettings) -> ReplicaPlan:
        """The replicas of ``config``: every combination of its sweep times its seeds.

        Args:
          config: the run's settings; ``seed``, ``seeds`` and ``sweep`` are read.

        Returns:
          The plan, the seeds ``seed, seed+1, ...`` varying fastest, so each setting's
          replicas are consecutive.
        """
        combos = config.sweep.combinations()
        seeds = [config.seed + j for j in range(config.seeds)]
        return cls([s for _ in combos for s in seeds], [c for c in combos for _ in seeds])

    def __len__(self) -> int:
        return len(self.seeds)

    def groups(self) -> list[tuple[dict[str, float], list[int]]]:
        """Each swept setting's replicas: ``[(settings, replica indices), ...]`` in order.

        Returns:
          One ``(settings, indices)`` pair per combination of the sweep (a single pair
          ``({}, all indices)`` without one).
        """
        out: list[tuple[dict[str, float], list[int]]] = []
        for i, settings in enumerate(self.settings):
            if not out or out[-1][0] != settings:
                out.append((settings, []))
            out[-1][1].append(i)
        return out


def unit_pixels(batch, key, train):
    """uint8 -> [0, 1], torchvision's ``ToTensor``: a :class:`~jaxdl.train.task.Task`'s ``preprocess``.

    Args:
      batch: the batch; ``batch["inputs"]`` holds uint8 images.
      key: the step's PRNG key (unused: nothing random).
      train: whether the step trains (unused: the same either way).

    Returns:
      The batch with ``"inputs"`` as floats in [0, 1], its other keys unchanged.
    """
    return {**batch, "inputs": data_lib.normalize(batch["inputs"], "unit")}


def train_and_test(
    config: EngineSettings,
    run_dir: RunDir,
    task: Task,
    optimizer: Callable[[Any, int], optax.GradientTransformation],
    train: dict[str, np.ndarray] | data_lib.Dataset,
    test: dict[str, np.ndarray] | data_lib.Dataset,
    *,
    val: dict[str, np.ndarray] | data_lib.Dataset | None = None,
    patience: int | None = None,
    hooks: Sequence[Hook] = (),
    title: str = "",
) -> tuple[FitResult, RunResult]:
    """Initialises from ``config.seed``, fits, evaluates on ``test``; returns the result and metrics.

    ``optimizer(config, steps_per_epoch)`` builds the optax transformation (a
    schedule's length comes from the second argument). ``task`` runs in
    ``config.precision`` on ``config.devices`` devices. A run is fixed by its
    seed (see :func:`init_state`).

    With ``config.seeds`` > 1 or a ``config.sweep``, every (setting, seed) is a
    replica of one vmapped program (:mod:`jaxdl.train.replicas`): the swept
    settings reach ``optimizer`` as traced values through
    :func:`jaxdl.train.injected`. The metrics then hold each replica's figures
    (``replicas``), and each swept setting's mean and 95% interval (``groups``);
    without a sweep, the top-level figures are the means over seeds and
    ``intervals`` their intervals.

    Args:
      config: the run's settings (epochs, batch size, seeds, sweep, devices, ...).
      run_dir: where the checkpoints, history and figures go; ``run_dir.resume`` resumes.
      task: the model, its loss and its preprocessing.
      optimizer: ``optimizer(config, steps_per_epoch) -> optax transformation``.
      train: the training examples (arrays or a Dataset), with ``"labels"``.
      test: the test examples, evaluated once after training.
      val: validation examples, evaluated after every epoch (early stopping watches their loss).
      patience: epochs without a lower validation loss before stopping; None: never.
      hooks: :func:`jaxdl.train.fit`'s hooks, called after every epoch (before the instruments).
      title: the figures' title.

    Returns:
      ``(fit's result, the run's figures)``: ``test_*``, the last epoch's ``train_*``/``val_*``
      and how the run went (epochs, timings, devices).
    """
    train = as_arrays(train)
    task = dataclasses.replace(task, compute_dtype=config.precision)
    if config.api == "nnx":  # the NNX twin behind Linen's interface: the engine and its state are unchanged
        from jaxdl.models.nnx_models import AsLinen, has_twin

        if not has_twin(task.model):
            raise JaxdlError(f"api=nnx: {type(task.model).__name__} has no Flax NNX twin yet; use api=linen")
        task = dataclasses.replace(task, model=AsLinen(task.model))
    plan = ReplicaPlan.of(config)
    state, keys = _initial_state(config, task, optimizer, plan, train)
    instruments = _instruments(config, run_dir, task, train)  # one run only (EngineSettings.check)
    if len(plan) > 1:
        print(f"training {len(plan)} replicas in one program: seeds {plan.seeds[0]}-{plan.seeds[-1]}"
              + (f" x {config.sweep}" if config.sweep.as_dict() else ""))  # fmt: skip
    try:
        result = fit(
            task, state, train, epochs=config.epochs, batch_size=config.batch_size, key=keys, val_data=val,
            run_dir=run_dir, keep_checkpoints=config.keep_checkpoints, patience=patience, resume=run_dir.resume,
            mesh=parallel.data_mesh(config.devices), chunk_seconds=config.chunk_seconds,
            hooks=[*hooks, *([instruments] if instruments else [])],
        )  # fmt: skip
        test_metrics = result.evaluate(test)
        if instruments:
            instruments.write_scalars({f"test_{k}": v for k, v in test_metrics.items()}, result.history[-1]["epoch"])
    finally:
        if instruments:
            instruments.close()
    # How the figures are reported: one run's own (a group of one), or each replica's with each setting's means.
    if len(plan) == 1:
        return result, _one_run_figures(run_dir, result, test_metrics, title)
    return result, _replica_figures(config, run_dir, result, test_metrics, plan, title)


def _initial_state(config, task, optimizer, plan, train) -> tuple[Any, jax.Array]:
    """The replicas' initial state and shuffling keys (:func:`init_replicas`, the swept settings injected);
    one run's without the replica axis, the shape in which :func:`fit` takes, reports and returns one run."""
    steps = steps_per_epoch(len(train["labels"]), config.batch_size)
    swept = config.sweep.as_dict()
    if swept:  # the swept values live in the optimizer state, one per replica
        tx = injected(lambda **values: optimizer(dataclasses.replace(config, **values), steps),
                      **{k: getattr(config, k) for k in swept})  # fmt: skip
        hyperparams = {k: [s[k] for s in plan.settings] for k in swept}
    else:
        tx, hyperparams = optimizer(config, steps), None
    state, keys = init_replicas(task, tx, train, plan.seeds, batch_size=config.batch_size, hyperparams=hyperparams)
    if len(plan) == 1:
        return replica(state, 0), keys[0]
    return state, keys


def _instruments(config, run_dir: RunDir, task: Task, train: dict[str, np.ndarray]) -> Instruments | None:
    """The layer statistics and TensorBoard hook the settings ask for, or None."""
    if not (config.diagnostics or config.tensorboard):
        return None
    probe = {k: v[: max(config.batch_size, 100)] for k, v in train.items()}
    return Instruments(
        task, probe, every=config.diagnostics_every if config.diagnostics else 0,
        tensorboard_dir=run_dir.path / "tensorboard" if config.tensorboard else None,
    )  # fmt: skip


def _one_run_figures(run_dir: RunDir, result: FitResult, test_metrics: dict[str, float], title: str) -> RunResult:
    """One run's figures: its test metrics and last epoch's, a group of one; its curves and diagnostics."""
    if any("diagnostics" in r for r in result.history):
        run_dir.save_figure(plots.diagnostics(result.history, title=f"{title}: layer statistics"), "diagnostics.png")
    last = result.history[-1]
    figures = {f"test_{k}": v for k, v in test_metrics.items()}
    figures.update({k: v for k, v in last.items() if k.startswith(("train_", "val_"))})  # the epoch's record
    # one replica: a group of one, as each setting of a grid of several is
    group = Group({}, {k: stats.interval([v]) for k, v in figures.items()})
    figures.update(_run_figures(result))
    names = ("loss", "accuracy") if "train_accuracy" in last else ("loss",)
    curves = plots.epoch_curves(result.history, names, title=title, test=test_metrics, step_losses=result.step_losses)
    run_dir.save_figure(curves, "curves.png")
    return RunResult(figures, groups=[group])


def _run_figures(result: FitResult) -> dict[str, Any]:
    """How the run went: epochs, early stop, timings, devices."""
    return {
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "train_seconds": result.train_seconds,
        "compile_seconds": result.compile_seconds,
        "examples_per_second": result.examples_per_second,
        "seconds_per_epoch": result.train_seconds / max(len(result.history), 1),
        "devices": result.fns.mesh.size,
        "processes": jax.process_count(),
    }


def _replica_figures(config, run_dir, result, test_metrics, plan, title) -> RunResult:
    """Several replicas' figures: each replica's, each swept setting's mean and interval; the table and curves."""
    swept = config.sweep.as_dict()
    title += f" (swept: {config.sweep})" if swept else ""
    test_metrics = {f"test_{k}": v for k, v in test_metrics.items()}
    last = result.history[-1]
    per_replica = {**test_metrics, **{k: np.array(v, float) for k, v in last["replicas"].items()}}
    replicas = []
    for i, (seed, settings) in enumerate(zip(plan.seeds, plan.settings, strict=True)):
        row = {"seed": seed, **settings, "diverged": bool(result.diverged[i])}
        row.update({k: (None if result.diverged[i] or not np.isfinite(v[i]) else float(v[i]))
                    for k, v in per_replica.items()})  # fmt: skip
        replicas.append(row)
    groups = [Group(settings, {k: stats.interval([replicas[i][k] for i in members]) for k in per_replica})
              for settings, members in plan.groups()]  # fmt: skip
    metrics = RunResult({}, replicas=replicas, groups=groups, sweep=swept)
    if not swept:  # the claims' figures: means over seeds
        metrics.figures.update({k: v["mean"] for k, v in groups[0].intervals.items()})
        metrics.intervals.update(groups[0].intervals)
    metrics.figures.update(seeds=config.seeds, num_replicas=len(plan), diverged=int(result.diverged.sum()))
    metrics.figures.update(_run_figures(result))
    for line in replica_table(metrics, [k for k in test_metrics]):
        print(line)
    names = ("loss", "accuracy") if "train_accuracy" in last else ("loss",)
    run_dir.save_figure(
        plots.replica_curves(result.history, names, plan.groups(), test=test_metrics, title=title), "curves.png"
    )
    return metrics


def replica_table(metrics: RunResult, names: list[str]) -> list[str]:
    """Log lines: each replica's figures, then each setting's mean +- 95% half-width.

    Args:
      metrics: a run of several replicas.
      names: the figures shown, e.g. ``["test_loss", "test_accuracy"]``.

    Returns:
      The lines, without newlines.
    """
    swept = list(metrics.sweep)
    lines = ["  ".join(["seed", *swept, *names])]
    for row in metrics.replicas:
        values = [_fmt(row[k], k) for k in names]
        lines.append("  ".join([str(row["seed"]), *(f"{row[k]:g}" for k in swept), *values]))
    for group in metrics.groups:
        where = ", ".join(f"{k}={v:g}" for k, v in group.settings.items()) or "mean over seeds"
        figures = "; ".join(
            f"{k} {stats.format_interval(group.intervals[k], _FORMATS.get(k.split('_', 1)[-1], '{:.4f}'))}"
            for k in names
        )
        lines.append(f"{where}: {figures}")
    return lines


_FORMATS = {"accuracy": "{:.2%}", "loss": "{:.4f}"}


def _fmt(value: float | None, name: str) -> str:
    return "diverged" if value is None else _FORMATS.get(name.split("_", 1)[-1], "{:.4f}").format(value)
