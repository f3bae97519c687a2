"""What the image experiments share: loading splits, training through ``fit``, evaluating, reporting."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import jax
import numpy as np
import optax

from jaxdl import data as data_lib
from jaxdl import plots
from jaxdl.config import setting
from jaxdl.data.dataset import as_arrays
from jaxdl.rundir import RunDir
from jaxdl.train import parallel
from jaxdl.train.fit import FitResult, fit
from jaxdl.train.instruments import Instruments
from jaxdl.train.state import init_state
from jaxdl.train.steps import steps_per_epoch
from jaxdl.train.task import Task


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """What the engine reads, for every experiment trained by ``fit``; configs inherit it and
    redeclare a field to change its default or help text."""

    epochs: int = setting(1, "training epochs", ge=1)
    batch_size: int = setting(32, "examples per step", ge=1)
    seed: int = setting(0, "PRNG seed: initialisation, per-step randomness and shuffling", ge=0)
    keep_checkpoints: int = setting(2, "checkpoints kept (one per epoch, one more on a stop)", ge=1)
    chunk_seconds: float = setting(
        10.0, "longest a stop request (SIGTERM, Ctrl-C) waits: epochs run in compiled chunks this long", gt=0
    )
    devices: int = setting(0, "devices each batch is split over (0: every device JAX sees)", ge=0)
    precision: Literal["float32", "bfloat16"] = setting(
        "float32", "compute dtype; bfloat16 is mixed precision with float32 parameters"
    )
    diagnostics: bool = setting(
        False, "per-layer statistics (activations, gradients, update ratios) in history.jsonl and diagnostics.png"
    )
    diagnostics_every: int = setting(1, "measure them after every this many epochs", ge=1)
    tensorboard: bool = setting(False, "write TensorBoard event files to RUN/tensorboard (same as --tensorboard)")

    def check(self) -> None:
        # Before anything is written: the devices exist and the batch splits over them.
        parallel.check_batch_size(self.batch_size, parallel.data_mesh(self.devices))


def unit_pixels(batch, key, train):
    """uint8 -> [0, 1], torchvision's ``ToTensor``."""
    return {**batch, "inputs": data_lib.normalize(batch["inputs"], "unit")}


def train_and_test(
    config: EngineSettings,
    run_dir: RunDir,
    task: Task,
    optimizer: Callable[[int], optax.GradientTransformation],
    train: dict[str, np.ndarray] | data_lib.Dataset,
    test: dict[str, np.ndarray] | data_lib.Dataset,
    *,
    val: dict[str, np.ndarray] | data_lib.Dataset | None = None,
    patience: int | None = None,
    title: str = "",
) -> tuple[FitResult, dict[str, Any]]:
    """Initialises from ``config.seed``, fits, evaluates on ``test``; returns the result and metrics.

    ``optimizer(steps_per_epoch)`` builds the optax transformation (a schedule's
    length comes from it). ``task`` runs in ``config.precision`` on
    ``config.devices`` devices. A run is fixed by its seed (see :func:`init_state`).
    """
    train = as_arrays(train)
    task = dataclasses.replace(task, compute_dtype=config.precision)
    tx = optimizer(steps_per_epoch(len(train["labels"]), config.batch_size))
    state, shuffle_key = init_state(task, tx, train, jax.random.key(config.seed), batch_size=config.batch_size)
    instruments = None
    if config.diagnostics or config.tensorboard:
        probe = {k: v[: max(config.batch_size, 100)] for k, v in train.items()}
        instruments = Instruments(
            task, probe, every=config.diagnostics_every if config.diagnostics else 0,
            tensorboard_dir=run_dir.path / "tensorboard" if config.tensorboard else None,
        )  # fmt: skip
    try:
        result = fit(
            task,
            state,
            train,
            epochs=config.epochs,
            batch_size=config.batch_size,
            key=shuffle_key,
            val_data=val,
            run_dir=run_dir,
            keep_checkpoints=config.keep_checkpoints,
            patience=patience,
            resume=run_dir.resume,
            mesh=parallel.data_mesh(config.devices),
            chunk_seconds=config.chunk_seconds,
            callbacks=[instruments] if instruments else (),
        )
        test_metrics = result.evaluate(test)
        if instruments:
            instruments.write_scalars({f"test_{k}": v for k, v in test_metrics.items()}, result.history[-1]["epoch"])
    finally:
        if instruments:
            instruments.close()
    if any("diagnostics" in r for r in result.history):
        run_dir.save_figure(plots.diagnostics(result.history, title=f"{title}: layer statistics"), "diagnostics.png")
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
    curves = plots.epoch_curves(result.history, names, title=title, test=test_metrics, step_losses=result.step_losses)
    run_dir.save_figure(curves, "curves.png")
    return result, metrics
