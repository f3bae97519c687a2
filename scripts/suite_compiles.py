"""Where the test suite's XLA compiling goes: every program compiled in pytest's processes, by size and test.

    JAXDL_SUITE_COMPILES=compiles/ PYTHONPATH=scripts python -m pytest -p suite_compiles   # a pytest plugin
    python scripts/suite_compiles.py compiles/ [--top 15]

As a plugin (``-p suite_compiles``, with ``scripts/`` on ``PYTHONPATH``) it records, in each pytest
process (xdist's workers too; not the subprocesses that tests start: notebooks' kernels, the command
line run as a program), each compile that missed the compilation cache: its seconds, a hash of the
program and its compile options, and the test that asked for it. It wraps
``jax._src.compiler.backend_compile_and_load``, a private function: a tool for a developer, not part of
jaxdl. As a script it prints the total, how much of it compiled a program that had been compiled
before in the run (what a cache could still save), the count and seconds by compile time, and the
modules and tests that compile most.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import pytest

ENV = "JAXDL_SUITE_COMPILES"  # the folder each process writes its compiles-<worker>.json to
BUCKETS = (0.1, 0.25, 0.5, 1.0, float("inf"))

_records: list[tuple[str | None, float, str]] = []
_current_test: list[str | None] = [None]


def _install() -> None:
    from jax._src import cache_key, compiler

    compile_and_load = compiler.backend_compile_and_load

    def recorded(backend, module, executable_devices, options, host_callbacks):
        start = time.perf_counter()
        try:
            return compile_and_load(backend, module, executable_devices, options, host_callbacks)
        finally:
            seconds = time.perf_counter() - start
            # the program without its source locations, as JAX's cache keys it: the same operation run
            # eagerly from two lines is one program
            ir = cache_key._canonicalize_ir(module, cache_key.IgnoreCallbacks.NO)
            program = hashlib.sha1(ir + options.SerializeAsString()).hexdigest()
            _records.append((_current_test[0], seconds, program[:16]))

    compiler.backend_compile_and_load = recorded


def pytest_configure(config):
    if ENV not in os.environ:
        raise pytest.UsageError(f"suite_compiles: set {ENV} to the folder for the records")
    _install()


def pytest_runtest_logstart(nodeid, location):
    _current_test[0] = nodeid


def pytest_runtest_logfinish(nodeid, location):
    _current_test[0] = None  # a module fixture's teardown after the last test is outside any test


def pytest_sessionfinish(session):
    folder = Path(os.environ[ENV])
    folder.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    (folder / f"compiles-{worker}.json").write_text(json.dumps(_records))


def report(folder: Path, top: int) -> str:
    records = [r for f in sorted(folder.glob("compiles-*.json")) for r in json.loads(f.read_text())]
    if not records:
        raise ValueError(f"no compiles-*.json in {folder}")
    seen: set[str] = set()
    repeats = 0.0
    counts, seconds = collections.Counter(), collections.Counter()
    modules, tests = collections.Counter(), collections.Counter()
    for test, s, program in records:
        if program in seen:
            repeats += s
        seen.add(program)
        bucket = next(b for b in BUCKETS if s < b)
        counts[bucket] += 1
        seconds[bucket] += s
        modules[(test or "(outside a test)").split("::")[0]] += s
        tests[test or "(outside a test)"] += s
    total = sum(seconds.values())
    lines = [
        f"{len(records)} compiles, {total:.1f} s; {len(seen)} distinct programs; "
        f"{repeats:.1f} s compiled a program again",
        "",
        "| compile time | programs | seconds |",
        "| --- | --- | --- |",
    ]
    low = 0.0
    for bucket in BUCKETS:
        label = f"{low:g}-{bucket:g} s" if bucket != float("inf") else f">= {low:g} s"
        lines.append(f"| {label} | {counts[bucket]} | {seconds[bucket]:.1f} |")
        low = bucket
    lines += ["", "| seconds | module |", "| --- | --- |"]
    lines += [f"| {s:.1f} | {m} |" for m, s in modules.most_common(top)]
    lines += ["", "| seconds | test |", "| --- | --- |"]
    lines += [f"| {s:.1f} | {t} |" for t, s in tests.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help=f"the folder {ENV} named during the test run")
    parser.add_argument("--top", type=int, default=15, help="modules and tests to list")
    args = parser.parse_args(argv)
    try:
        print(report(args.folder, args.top))
    except ValueError as e:
        print(f"suite_compiles.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
