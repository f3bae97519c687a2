"""``jaxdl runs [DIR]``: the runs under a folder, one line each, newest first.

A run is a folder holding ``config.json``. Its status: ``running`` while a
process holds its lock, ``finished`` once ``metrics.json`` is written,
``stopped`` with checkpoints to resume from (Ctrl-C, SIGTERM, a crash after an
epoch), ``failed`` otherwise. Reading imports no JAX and writes nothing.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
from pathlib import Path
from typing import Any

from jaxdl.errors import JaxdlError, printable
from jaxdl.locks import held
from jaxdl.results import RunResult
from jaxdl.rundir import LOCK_FILE

# the figures a line shows, first found first: a claim's usual metric, then the training loss
FIGURES = ("test_accuracy", "test_loss", "val_accuracy", "val_loss", "train_accuracy", "train_loss")


def find_runs(root: Path) -> list[Path]:
    """Every run folder under ``root`` (a grid's own runs are inside it and not listed again).

    Args:
      root: the folder to search.

    Returns:
      The folders holding a ``config.json``, in the order of a sorted walk.
    """
    runs = []
    for folder, dirnames, filenames in os.walk(root):
        if "config.json" in filenames:
            runs.append(Path(folder))
            dirnames.clear()
        dirnames.sort()
    return runs


def describe(path: Path) -> dict[str, Any]:
    """A run's experiment, start time, status, key figures and the command that continues it.

    Args:
      path: a run folder.

    Returns:
      ``{"path", "experiment", "started", "status", "figures", "resume"}``: status is "running",
      "finished", "stopped" or "failed"; ``resume`` is a command line for a stopped run, else "".
    """
    config = _read(path / "config.json") or {}
    experiment = config.get("experiment", "?")
    started = _dt.datetime.fromtimestamp((path / "config.json").stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    metrics = _figures(path / "metrics.json")
    epochs = config.get("config", {}).get("epochs")
    checkpoints = [p for p in (path / "checkpoints").glob("*") if p.name.isdigit()]
    if held(path / LOCK_FILE):
        status = "running"
    elif metrics is not None:
        status = "finished"
    elif checkpoints:
        status = "stopped"
    else:
        status = "failed"
    figures = metrics if metrics is not None else _last_history(path)
    shown = [f"{k} {_format(k, figures[k])}" for k in FIGURES if isinstance(figures.get(k), int | float)][:2]
    if status == "stopped":
        shown.insert(0, f"epoch {figures.get('epoch', '?')}/{epochs}" if epochs else "")
    resume = f"jaxdl run {experiment} --out {shlex.quote(str(path))} --resume" if status == "stopped" else ""
    return {"path": path, "experiment": experiment, "started": started, "status": status,
            "figures": ", ".join(s for s in shown if s), "resume": resume}  # fmt: skip


def _figures(path: Path) -> dict[str, Any] | None:
    """The figures of a ``metrics.json`` (any format this version reads), or None."""
    data = _read(path)
    try:
        return RunResult.from_json(data).figures if data is not None else None
    except (JaxdlError, TypeError):
        return None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _last_history(path: Path) -> dict[str, Any]:
    try:
        lines = (path / "history.jsonl").read_text().splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if isinstance(record, dict):
            return record
    return {}


def _format(key: str, value: float) -> str:
    return f"{100 * value:.2f}%" if key.endswith("accuracy") else f"{value:.4g}"


def main(root: str) -> int:
    """``jaxdl runs [DIR]``: prints the runs under ``root``, newest first, one line each.

    Args:
      root: the folder of runs.

    Returns:
      The exit status, 0.

    Raises:
      JaxdlError: ``root`` is not a folder.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise JaxdlError(f"{folder} is not a folder of runs (jaxdl run writes them to runs/NAME/TIMESTAMP)")
    rows = sorted((describe(p) for p in find_runs(folder)), key=lambda r: r["started"], reverse=True)
    if not rows:
        print(f"no runs under {printable(str(folder))}")
        return 0
    width = max(len(printable(str(r["path"]))) for r in rows)
    kind = max(len(r["experiment"]) for r in rows)
    print(f"{'started':<16}  {'status':<8}  {'experiment':<{kind}}  {'run':<{width}}  figures")
    for r in rows:
        line = f"{r['started']:<16}  {r['status']:<8}  {r['experiment']:<{kind}}  {printable(str(r['path'])):<{width}}"
        print(f"{line}  {r['figures']}".rstrip())
        if r["resume"]:
            print(f"{'':<16}  to resume: {r['resume']}")
    return 0
