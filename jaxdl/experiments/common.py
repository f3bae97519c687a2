"""What the image experiments share: loading splits, training through ``fit``, evaluating, reporting."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import jax
import numpy as np
import optax

from jaxdl import data as data_lib
from jaxdl import plots
from jaxdl.config import setting
from jaxdl.rundir import RunDir
from jaxdl.train import parallel
from jaxdl.train.fit import FitResult, fit
from jaxdl.train.state import TrainState
from jaxdl.train.steps import averages
from jaxdl.train.task import Task


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """Settings of every experiment trained by ``fit``; their configs inherit them."""

    keep_checkpoints: int = setting(2, "checkpoints kept (one per epoch)", ge=1)
    devices: int = setting(0, "devices each batch is split over (0: every device JAX sees)", ge=0)
    precision: Literal["float32", "bfloat16"] = setting(
        "float32", "compute dtype; bfloat16 is mixed precision with float32 parameters"
    )

    def check(self) -> None:
        # Before anything is written: the devices exist and the batch splits over them.
        parallel.check_batch_size(self.batch_size, parallel.data_mesh(self.devices))


def unit_pixels(batch, key, train):
    """uint8 -> [0, 1], torchvision's ``ToTensor``."""
    return {**batch, "inputs": data_lib.normalise(batch["inputs"], "unit")}


def arrays(ds: data_lib.Dataset, limit: int | None = None) -> dict[str, np.ndarray]:
    """The ``{"inputs", "labels"}`` dict the engine takes, optionally the first ``limit`` examples."""
    part = slice(None, limit)
    return {"inputs": ds.inputs[part], "labels": ds.labels[part]}


def train_and_test(
    config: EngineSettings,
    run_dir: RunDir,
    task: Task,
    tx: optax.GradientTransformation,
    train: dict[str, np.ndarray],
    test: dict[str, np.ndarray],
    *,
    val: dict[str, np.ndarray] | None = None,
    patience: int | None = None,
    title: str = "",
) -> tuple[FitResult, dict[str, Any]]:
    """Initialises from ``config.seed``, fits, evaluates on ``test``; returns the result and metrics.

    ``task`` runs in ``config.precision`` on ``config.devices`` devices. Keys: ``PRNGKey(seed)``
    splits into initialisation, per-step (dropout, sampling) and shuffling keys, so a run is fixed
    by its seed.
    """
    task = dataclasses.replace(task, compute_dtype=config.precision)
    init_key, step_key, data_key = jax.random.split(jax.random.PRNGKey(config.seed), 3)
    sample = {name: array[: config.batch_size] for name, array in train.items()}
    sample["mask"] = np.ones(len(sample["labels"]), bool)
    state = TrainState.create(task.init(init_key, sample), tx, step_key)
    result = fit(
        task,
        state,
        train,
        epochs=config.epochs,
        batch_size=config.batch_size,
        key=data_key,
        val_data=val,
        run_dir=run_dir,
        keep_checkpoints=config.keep_checkpoints,
        patience=patience,
        resume=run_dir.resume,
        mesh=parallel.data_mesh(config.devices),
    )
    test_metrics = averages(result.fns.evaluate(result.state, result.fns.place(test)))
    last = result.history[-1]
    metrics = {f"test_{k}": v for k, v in test_metrics.items()}
    metrics.update({k: v for k, v in last.items() if k.startswith(("train_", "val_"))})
    metrics.update(
        epochs_run=len(result.history),
        stopped_early=result.stopped_early,
        train_seconds=result.train_seconds,
        compile_seconds=result.compile_seconds,
        examples_per_second=result.examples_per_second,
        seconds_per_epoch=result.train_seconds / max(result.epochs_run, 1),
        devices=result.fns.mesh.size,
        processes=jax.process_count(),
    )
    names = ("loss", "accuracy") if "train_accuracy" in last else ("loss",)
    run_dir.save_figure(plots.epoch_curves(result.history, names, title=title, test=test_metrics), "curves.png")
    return result, metrics
