"""The test suite's time, from the output of ``pytest --durations=0``: totals and the slowest tests.

    python -m pytest --durations=0 > before.txt   # on one commit
    python -m pytest --durations=0 > after.txt    # on another, on the same machine, back to back
    python scripts/suite_durations.py before.txt after.txt [--top 20]

For each file it prints the suite's wall time (pytest's closing line), the sum of
the per-test phases (setup, call, teardown: a module fixture's work lands in the
setup of the first test that asks for it), the count of tests, and the ``--top``
slowest tests with their seconds. With two files it also prints the ratio of
their wall times.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s (setup|call|teardown)\s+(\S.*)$")
_CLOSING = re.compile(r"^=* ?(\d+ (?:passed|failed).*) in (\d+(?:\.\d+)?)s")


def parse(text: str) -> tuple[float | None, str, dict[str, float]]:
    """(wall seconds, pytest's closing counts, seconds per test id summed over its phases)."""
    per_test: dict[str, float] = collections.defaultdict(float)
    wall, counts = None, ""
    for line in text.splitlines():
        if m := _DURATION.match(line.strip()):
            per_test[m[3]] += float(m[1])
        elif m := _CLOSING.match(line.strip()):
            counts, wall = m[1], float(m[2])
    return wall, counts, dict(per_test)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="saved output of pytest --durations=0")
    parser.add_argument("--top", type=int, default=20, help="slowest tests listed per file (default 20)")
    args = parser.parse_args(argv)
    walls = []
    for path in args.files:
        try:
            wall, counts, per_test = parse(path.read_text(errors="replace"))
        except OSError as e:
            parser.error(f"cannot read {path}: {e.strerror}")
        if not per_test:
            parser.error(f"{path} holds no --durations lines; run pytest with --durations=0")
        walls.append(wall)
        print(f"{path}: {counts or '(no closing line)'}; wall {wall or 0:.0f} s, "
              f"tests' phases {sum(per_test.values()):.0f} s over {len(per_test)} tests")  # fmt: skip
        print(f"  {'s':>7}  test")
        for test, seconds in sorted(per_test.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"  {seconds:7.1f}  {test}")
    if len(walls) == 2 and all(walls):
        print(f"wall time, {args.files[1]} over {args.files[0]}: {walls[1] / walls[0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
