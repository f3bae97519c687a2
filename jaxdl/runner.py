"""Running one experiment: resolve its settings, open its run directory, run it, write its metrics.

The command line (:mod:`jaxdl.cli`) and the tour (:mod:`jaxdl.reproduce`) both
call :func:`run_experiment`; it is also the Python way to run a registered
experiment:

    >>> path, result = run_experiment("blobs", ["epochs=100", "seeds=0"], out="runs/b")
    >>> result["test_accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jaxdl import config as config_lib
from jaxdl import experiments
from jaxdl.compilation_cache import CompileClock
from jaxdl.data import local_copies
from jaxdl.errors import Finished, JaxdlError
from jaxdl.results import Group, RunResult
from jaxdl.rundir import RunDir, default_run_path, environment, read_json


def run_experiment(
    name: str,
    overrides: Sequence[str] = (),
    *,
    seed: int | None = None,
    seeds: int | None = None,
    data: str | None = None,
    data_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    resume: bool = False,
    tensorboard: bool = False,
    distributed: dict[str, Any] | None = None,
) -> tuple[str, RunResult]:
    """Resolves the config, runs the experiment and writes its run directory.

    Args:
      name: a registered experiment (``jaxdl.experiments.names()``).
      overrides: ``"key=value"`` settings.
      seed: shorthand for the ``seed`` setting (None: as ``overrides`` or the default say).
      seeds: shorthand for the ``seeds`` setting, for an experiment that has one.
      data: shorthand for the ``data`` setting (a local copy of the data set it reads).
      data_dir: a folder of local data copies, searched before ``$JAXDL_DATA_DIR`` for this run only.
      out: the run directory (default ``runs/NAME/TIMESTAMP``).
      overwrite: allow ``out`` to hold an earlier run.
      resume: continue the run in ``out`` from its newest checkpoint (``resumable`` experiments).
      tensorboard: write TensorBoard event files (the engine's ``tensorboard`` setting).
      distributed: ``coordinator``, ``num_processes``, ``process_id`` (None: from the environment):
        join a multi-process run first; process 0 writes the run directory, all write checkpoints.

    Returns:
      The run directory's path and what the run measured (also written to its ``metrics.json``).

    Raises:
      JaxdlError: a mistake in the request, before anything is written (a failure later keeps the files).
    """
    experiment = experiments.get(name)
    overrides = [*overrides, *_shorthands(experiment, seed=seed, seeds=seeds, data=data, tensorboard=tensorboard)]
    _check_request(experiment, out=out, overwrite=overwrite, resume=resume, distributed=distributed)
    writer = _join(distributed) if distributed is not None else True  # process 0 writes the files
    if resume and (Path(out) / "config.json").is_file():  # else RunDir says there is no run to resume
        overrides = [*_settings_of_the_run(experiment, read_json(Path(out) / "config.json")), *overrides]
    plan = Plan.of(experiment, overrides)
    run_dir = RunDir(out or default_run_path(name), overwrite=overwrite, resume=resume, writer=writer)
    record = {"experiment": name, "config": config_lib.to_dict(plan.config), "environment": environment()}
    if plan.sequential:
        record.update(grid=plan.given)
    try:
        if resume:
            _check_resumable(run_dir, record, plan)
        else:
            run_dir.write_json("config.json", record)
        result = _execute(experiment, plan, run_dir, data_dir)
    except BaseException as e:
        if run_dir.discard_if_not_started():  # a retry of the corrected command must not be refused
            e.discarded_run = str(run_dir.path)  # type: ignore[attr-defined]  # what the CLI's last line says
        raise
    finally:
        run_dir.close()
    return str(run_dir.path), result


def _join(distributed: dict[str, Any]) -> bool:
    """Joins a multi-process run before any JAX computation; True for the process that writes files (0)."""
    import jax

    from jaxdl.train.parallel import initialize_distributed

    initialize_distributed(**distributed)  # checks included
    return jax.process_index() == 0


def _execute(experiment: experiments.Experiment, plan: Plan, run_dir: RunDir, data_dir: Any) -> RunResult:
    """Runs the plan's programs (one, or a grid's in turn) and writes ``metrics.json``."""
    clock = CompileClock()
    with local_copies(data_dir):
        if plan.sequential:
            result = _run_grid(experiment, plan, run_dir)
        else:
            result = RunResult.of(experiment.run(plan.config, run_dir))
            if plan.given:
                result.sweep_table = sweep_outputs(run_dir, result.groups, plan.given)
    result.compile = clock.read()  # JAX's own compiling in this run: see CompileClock
    run_dir.write_json("metrics.json", result.to_json())
    return result


def _shorthands(experiment: experiments.Experiment, **given: Any) -> list[str]:
    """The ``key=value`` settings that the shorthand arguments (``seed``, ``seeds``, ``data``,
    ``tensorboard``) stand for; one the experiment has no setting for is refused in one line."""
    fields = {f.name for f in dataclasses.fields(experiment.config)}
    why = {"seeds": "trains no network over seeds", "data": "reads no data set",
           "tensorboard": "does not train with the engine"}  # fmt: skip
    overrides = []
    for key, value in given.items():
        if value is None or value is False:
            continue
        if key not in fields:
            raise JaxdlError(f"experiment {experiment.name} {why.get(key, 'has no such setting')}, so {{{key}}} "
                             "does not apply")  # fmt: skip
        overrides.append(f"{key}={'true' if value is True else value}")
    return overrides


def _check_request(experiment: experiments.Experiment, *, out, overwrite, resume, distributed) -> None:
    """The run-directory arguments agree with each other and with the experiment, before anything runs."""
    if resume and not experiment.resumable:
        raise JaxdlError(
            f"experiment {experiment.name} keeps no checkpoints, so {{resume}} does not apply; start a new run"
        )
    if resume and not out:
        raise JaxdlError("{resume} needs {out}: the directory of the run to continue")
    if resume and overwrite:
        raise JaxdlError("{resume} and {overwrite} contradict each other; choose one")
    if distributed is not None and not out:
        raise JaxdlError("{distributed} needs {out}: every process must name the same run directory")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one command runs, resolved once: the settings, and a grid (``--set KEY=A,B``) split into the
    keys the experiment trains side by side in one vmapped program (``config.sweep``, a typed
    :class:`~jaxdl.config.Sweep`) and those that run one program after another (``programs``).

    Attributes:
      config: the settings of the run (of its first program, for a sequential grid), seeds and sweep
        included: what the experiment receives.
      given: every grid key and its values as given, in order.
      sequential: the grid keys run one program after another.
      programs: ``(sequential settings, config)`` per program, in order; one for a run without them.
    """

    config: Any
    given: dict[str, list[str]]
    sequential: dict[str, list[str]]
    programs: list[tuple[dict[str, str], Any]]

    @classmethod
    def of(cls, experiment: experiments.Experiment, overrides: list[str]) -> Plan:
        """Resolves ``key=value`` overrides (grids included) for ``experiment``; raises JaxdlError.

        Args:
          experiment: the experiment to run.
          overrides: ``"key=value"`` settings; ``key=A,B`` on a number or choice is a grid.

        Returns:
          The plan: grid keys in ``experiment.vmapped`` become the config's sweep, the others
          one program per combination.

        Raises:
          JaxdlError: a grid for an experiment that does not train with the engine, or any
            setting :func:`jaxdl.config.split_grid` refuses.
        """
        plain, grid = config_lib.split_grid(experiment.config, overrides)
        if grid and "sweep" not in {f.name for f in dataclasses.fields(experiment.config)}:
            given = ", ".join(f"{key}={','.join(values)}" for key, values in grid.items())
            raise JaxdlError(
                f"experiment {experiment.name} does not train with the engine, so it takes no grid ({given}); "
                "give one value per setting"
            )
        sweep = config_lib.Sweep.of({k: v for k, v in grid.items() if k in experiment.vmapped})
        sequential = {k: v for k, v in grid.items() if k not in sweep.keys()}
        programs = []
        for values in itertools.product(*sequential.values()):
            combo = dict(zip(sequential, values, strict=True))
            settings = [*plain, *(f"{k}={v}" for k, v in combo.items())]
            programs.append((combo, config_lib.resolve(experiment.config, settings, sweep=sweep)))
        config = config_lib.resolve(experiment.config, plain, sweep=sweep) if sequential else programs[0][1]
        return cls(config, grid, sequential, programs)


def _run_grid(experiment: experiments.Experiment, plan: Plan, run_dir: RunDir) -> RunResult:
    """Each combination of the sequential grid keys as a run of its own in ``RUN/KEY=V,...``, then
    the sweep's outputs from all of them. A resumed grid skips the runs that finished."""
    groups, runs = [], []
    for combo, config in plan.programs:
        name = ",".join(f"{k}={v}" for k, v in combo.items())
        sub_path = run_dir.path / name
        done = sub_path / "metrics.json"
        print(f"--- {experiment.name} {name}")
        if run_dir.resume and done.is_file():
            metrics = RunResult.read(done)
            print(f"finished earlier: {done}")
        else:
            resume = run_dir.resume and (sub_path / "config.json").is_file()
            sub = RunDir(sub_path, overwrite=not resume, resume=resume)
            try:
                if not resume:
                    sub.write_json("config.json", {"experiment": experiment.name, "config": config_lib.to_dict(config)})
                metrics = RunResult.of(experiment.run(config, sub))
                sub.write_json("metrics.json", metrics.to_json())
            finally:
                sub.close()
        settings = {k: _number(v) for k, v in combo.items()}
        runs.append({"settings": settings, "run_dir": name})
        groups += [Group({**settings, **g.settings}, g.intervals) for g in metrics.groups]
    return RunResult({}, groups=groups, runs=runs, sweep_table=sweep_outputs(run_dir, groups, plan.given))


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def sweep_outputs(run_dir: RunDir, groups: list[Group], grid: dict[str, list[str]]) -> list[str]:
    """``sweep.json``, a table in the log and, per swept setting, a figure of the test metric against it.

    Args:
      run_dir: where the table and figures go.
      groups: each setting of the grid with its figures' intervals over seeds.
      grid: the grid as given, ``{key: [value text, ...]}``.

    Returns:
      The table's lines, as printed.
    """
    from jaxdl import plots, stats

    metric = next((m for m in ("test_accuracy", "test_loss") if m in groups[0].intervals), None)
    names = [m for m in ("test_accuracy", "test_loss") if m in groups[0].intervals]
    run_dir.write_json("sweep.json", {"grid": grid, "metrics": names,
                                      "groups": [dataclasses.asdict(g) for g in groups]})  # fmt: skip
    lines = ["sweep: " + " x ".join(f"{k} ({len(v)})" for k, v in grid.items())]
    for group in groups:
        where = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in group.settings.items())
        figures = "; ".join(
            f"{m} {stats.format_interval(group.intervals[m], '{:.2%}' if m.endswith('accuracy') else '{:.4f}')}"
            for m in names
        )
        lines.append(f"  {where}: {figures}")
    print("\n".join(lines))
    if metric is not None:
        for key in grid:
            if all(isinstance(g.settings.get(key), float) for g in groups):
                run_dir.save_figure(plots.sweep(key, groups, metric), f"sweep_{key}.png")
    return lines


def _settings_of_the_run(experiment: experiments.Experiment, saved: dict[str, Any]) -> list[str]:
    """The ``key=value`` settings that the command of a run gave (its config.json's values that differ from
    the defaults, its grid as ``KEY=A,B``): a resumed run needs none of them again."""
    defaults = config_lib.to_dict(experiment.config())
    given = {k: v for k, v in saved.get("config", {}).items() if k in defaults and v != defaults[k]}
    grid = {**_saved_sweep(saved).as_dict(), **saved.get("grid", {})}
    return [*config_lib.as_overrides(given), *(f"{k}={','.join(map(str, values))}" for k, values in grid.items())]


def _saved_sweep(saved: dict[str, Any]) -> config_lib.Sweep:
    """The sweep of a saved config.json: ``{key: [value, ...]}``, or before format 2 the text
    ``"KEY=A,B;KEY=C"``."""
    sweep = saved.get("config", {}).get("sweep") or {}
    if isinstance(sweep, str):
        sweep = {key: values.split(",") for key, _, values in (part.partition("=") for part in sweep.split(";"))}
    return config_lib.Sweep.of(sweep)


def _check_resumable(run_dir: RunDir, record: dict[str, Any], plan: Plan) -> None:
    """A resumed run has the experiment and settings of the run it continues, but for more ``epochs``
    where its settings allow; one with nothing to add raises :class:`Finished` and changes nothing. An
    extended run's config.json gets its new ``epochs``."""
    saved = read_json(run_dir.path / "config.json")
    before, after = saved.get("config", {}).get("epochs"), record["config"].get("epochs")
    if before is not None and after != before:
        if after < before:
            raise JaxdlError(
                f"{{resume}}: the run in {run_dir.path} trains {before} epochs; epochs={after} would cut it"
            )
        reason = plan.config.fixed_length() if hasattr(plan.config, "fixed_length") else None
        reason = reason or ("each setting of a grid is a run of its own" if plan.sequential else None)
        if reason:
            raise JaxdlError(f"{{resume}}: cannot extend the run in {run_dir.path} to {after} epochs: {reason}")
        record = {**record, "config": {**record["config"], "epochs": before}}  # checked below as the same run
    if isinstance(saved.get("config", {}).get("sweep"), str):  # written before the sweep was typed
        saved = {**saved, "config": {**saved["config"], "sweep": _saved_sweep(saved).as_dict()}}
    _check_same_run(saved, record, run_dir)
    if after == before and (run_dir.path / "metrics.json").is_file():
        raise Finished(
            f"{run_dir.path} is finished: its {before} epoch{'s are' if before != 1 else ' is'} trained, and no "
            "file was changed; "
            f"to train longer, resume with --set epochs=N (N > {before})"
        )
    if after != before:
        run_dir.write_json("config.json", {**saved, "config": {**saved["config"], "epochs": after}})


def _check_same_run(saved: dict[str, Any], record: dict[str, Any], run_dir: RunDir) -> None:
    """A resumed run must have the experiment and settings of the run it continues."""
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
