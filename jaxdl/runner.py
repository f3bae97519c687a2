"""Running one experiment: resolve its settings, open its run directory, run it, write its metrics.

The command line (:mod:`jaxdl.cli`) and the tour (:mod:`jaxdl.reproduce`) both
call :func:`run_experiment`; it is also the Python way to run a registered
experiment:

    >>> path, metrics = run_experiment("blobs", ["epochs=100", "num_seeds=0"], out="runs/b")
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from jaxdl import config as config_lib
from jaxdl import experiments
from jaxdl.data import local_copies
from jaxdl.errors import JaxdlError
from jaxdl.rundir import RunDir, default_run_path, environment, read_json


def run_experiment(
    name: str,
    overrides: Sequence[str] = (),
    *,
    seed: int | None = None,
    data: str | None = None,
    data_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    resume: bool = False,
    tensorboard: bool = False,
    distributed: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Resolves the config, runs the experiment and writes its run directory.

    Args:
      name: a registered experiment (``jaxdl.experiments.names()``).
      overrides: ``"key=value"`` settings.
      seed, data: shorthands for the ``seed`` and ``data`` settings.
      data_dir: a folder of local data copies, searched before ``$JAXDL_DATA_DIR``
        for this run only.
      out: the run directory (default ``runs/NAME/TIMESTAMP``).
      overwrite: allow ``out`` to hold an earlier run.
      resume: continue the run in ``out`` from its newest checkpoint; only
        experiments declared ``resumable`` can.
      tensorboard: write TensorBoard event files (the ``tensorboard`` setting of the
        experiments that train with the engine).
      distributed: ``coordinator``, ``num_processes``, ``process_id`` (None values
        are read from the environment): join a multi-process run first; process
        0 writes the run directory, all processes write its checkpoints.

    Returns:
      The run directory's path and the metrics.

    Raises:
      JaxdlError: any mistake in the request, before anything is written; a
        failure during the run keeps what was already written.
    """
    experiment = experiments.get(name)
    overrides = list(overrides)
    if seed is not None:
        overrides.append(f"seed={seed}")
    if data is not None:
        if "data" not in {f.name for f in dataclasses.fields(experiment.config)}:
            raise JaxdlError(f"experiment {name} reads no data set, so {{data}} does not apply")
        overrides.append(f"data={data}")
    if tensorboard:
        if "tensorboard" not in {f.name for f in dataclasses.fields(experiment.config)}:
            raise JaxdlError(f"experiment {name} does not train with the engine, so {{tensorboard}} does not apply")
        overrides.append("tensorboard=true")
    if resume and not experiment.resumable:
        raise JaxdlError(f"experiment {name} keeps no checkpoints, so {{resume}} does not apply; start a new run")
    if resume and not out:
        raise JaxdlError("{resume} needs {out}: the directory of the run to continue")
    if resume and overwrite:
        raise JaxdlError("{resume} and {overwrite} contradict each other; choose one")
    if distributed is not None and not out:
        raise JaxdlError("{distributed} needs {out}: every process must name the same run directory")
    writer = True  # only process 0 of a multi-process run writes files
    if distributed is not None:
        import jax

        from jaxdl.train.parallel import initialize_distributed

        initialize_distributed(**distributed)  # before any JAX computation, checks included
        writer = jax.process_index() == 0
    config = config_lib.resolve(experiment.config, overrides)
    run_dir = RunDir(out or default_run_path(name), overwrite=overwrite, resume=resume, writer=writer)
    record = {"experiment": name, "config": config_lib.to_dict(config), "environment": environment()}
    try:
        if resume:
            _check_same_run(run_dir, record)
        else:
            run_dir.write_json("config.json", record)
        with local_copies(data_dir):
            metrics = experiment.run(config, run_dir)
        run_dir.write_json("metrics.json", metrics)
    except BaseException:
        run_dir.discard_if_not_started()  # a retry of the corrected command must not be refused
        raise
    finally:
        run_dir.close()
    return str(run_dir.path), metrics


def _check_same_run(run_dir: RunDir, record: dict[str, Any]) -> None:
    """A resumed run must have the experiment and settings of the run it continues."""
    saved = read_json(run_dir.path / "config.json")
    if saved.get("experiment") != record["experiment"]:
        raise JaxdlError(
            f"{{resume}}: {run_dir.path} holds a {saved.get('experiment')} run, not {record['experiment']}"
        )
    for key, value in record["config"].items():
        if saved["config"].get(key) != value:
            raise JaxdlError(
                f"{{resume}}: setting {key} is {value!r} but the run in {run_dir.path} used "
                f"{saved['config'].get(key)!r}; resume with the same settings"
            )
