"""Whole runs, as a user feels them: first and second `jaxdl run`, and the blob tutorial's own PyTorch script.

    python scripts/time_runs.py [--rounds 3] [--torch-python PY] [--json out.json]
    python scripts/time_runs.py --experiment mnist-vae --set epochs=1 --rounds 1

Each round, from process start to exit, one after another on this machine:
  - `jaxdl run EXPERIMENT` (default blobs) with an empty compilation cache (a first run),
  - the same again with the cache the first one filled (a second run),
  - for blobs with --torch-python (an interpreter that has torch, scikit-learn
    and matplotlib; jaxdl's environment has no PyTorch): the blob tutorial's
    code as one script (scripts/torch_blobs_tutorial.py: the same 1000 epochs
    and its two figures, without jaxdl's 64-seed study),
  - `jaxdl list`, the start-up of a command that needs no JAX, and
    `jaxdl run EXPERIMENT --help-config`.
It prints each round's seconds, their medians, the speed-up of each jaxdl run
over the tutorial's script (median of the rounds' paired ratios), and what
each jaxdl run reported of its compiling (metrics.json's "compile": XLA's
compiling or cache loads, and JAX's tracing and lowering).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jaxdl.results import RunResult

JAXDL = [sys.executable, "-m", "jaxdl.cli"]
TUTORIAL = Path(__file__).with_name("torch_blobs_tutorial.py")


def timed(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of ``command`` from start to exit; its output is discarded, a failure raised."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds


def one_round(folder: Path, args: argparse.Namespace) -> dict:
    env = {**os.environ, "JAXDL_COMPILATION_CACHE": str(folder / "xla"), "MPLBACKEND": "Agg"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the cache under test is this round's own
    settings = [f"--set={s}" for s in args.set]
    row = {}
    for run in ("first", "second"):
        out = folder / run
        row[f"{run}_s"] = timed([*JAXDL, "run", args.experiment, "--out", str(out), *settings], env)
        row[f"{run}_compile"] = RunResult.read(out).compile
    if args.torch_python:
        row["torch_s"] = timed([args.torch_python, str(TUTORIAL), str(folder / "torch")], env)
    row["list_s"] = timed([*JAXDL, "list"], env)
    row["help_config_s"] = timed([*JAXDL, "run", args.experiment, "--help-config"], env)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--experiment", default="blobs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to jaxdl run")
    parser.add_argument("--torch-python", help="python with torch, scikit-learn and matplotlib (blobs only)")
    parser.add_argument("--json", help="also write the rounds here")
    args = parser.parse_args()
    if args.torch_python and args.experiment != "blobs":
        parser.error("--torch-python times the blob tutorial's script: only with --experiment blobs")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    rows = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            rows.append(row := one_round(Path(folder), args))
        figures = ", ".join(f"{k} {v:.2f}" for k, v in row.items() if k.endswith("_s"))
        print(f"round {i + 1}: {figures}", flush=True)

    def median(key):
        return statistics.median(r[key] for r in rows)

    print(f"\n{'command':<42}{'seconds':>9}{'vs tutorial':>13}   compiling (XLA s / programs / from cache)")
    for run in ("first", "second"):
        line = f"{f'jaxdl run {args.experiment}, {run} run':<42}{median(run + '_s'):>9.2f}"
        if args.torch_python:
            line += f"{statistics.median(r['torch_s'] / r[run + '_s'] for r in rows):>12.2f}x"
        else:
            line += f"{'':>13}"
        c = rows[len(rows) // 2][f"{run}_compile"]
        trace = statistics.median(r[f"{run}_compile"]["trace_s"] + r[f"{run}_compile"]["lower_s"] for r in rows)
        line += f"   {median_xla(rows, run):.2f} / {c['programs']} / {c['cache_hits']}; tracing+lowering {trace:.2f} s"
        print(line)
    if args.torch_python:
        print(f"{'tutorial PyTorch script':<42}{median('torch_s'):>9.2f}")
    print(f"{'jaxdl list':<42}{median('list_s'):>9.2f}")
    print(f"{f'jaxdl run {args.experiment} --help-config':<42}{median('help_config_s'):>9.2f}")
    second, first = median_xla(rows, "second"), median_xla(rows, "first")
    print(f"\nsecond run's XLA compiling: {100 * second / first:.1f}% of the first run's")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def median_xla(rows: list[dict], run: str) -> float:
    return statistics.median(r[f"{run}_compile"]["xla_s"] for r in rows)


if __name__ == "__main__":
    main()
