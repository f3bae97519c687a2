"""The ``jaxdl`` command: ``jaxdl list`` and ``jaxdl run NAME [options]``.

Mistakes a user can fix (an unknown experiment, a bad ``--set``, a path that
cannot be written, a loss that turns NaN) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxdl.errors import JaxdlError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line, like every other jaxdl error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="run directory (default: runs/NAME/TIMESTAMP)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config setting; repeatable (see --help-config)",
    )
    parser.add_argument("--seed", type=int, help="PRNG seed (same as --set seed=N)")
    parser.add_argument(
        "--overwrite", action="store_true", help="allow --out to be a directory that holds a run"
    )
    parser.add_argument("--help-config", action="store_true", help="list the experiment's settings and exit")


def build_parser(prog: str = "jaxdl") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="Deep-learning basics in functional JAX.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the experiments")
    run = sub.add_parser("run", help="run an experiment")
    run.add_argument("name", help="experiment name (see `jaxdl list`)")
    _add_run_options(run)
    return parser


def run_experiment(
    name: str,
    overrides: Sequence[str] = (),
    *,
    seed: int | None = None,
    out: str | None = None,
    overwrite: bool = False,
) -> tuple[str, dict]:
    """Resolves the config, runs the experiment and writes its run directory.

    Returns:
      The run directory's path and the metrics.

    Raises:
      JaxdlError: any mistake in the request, before anything is written where
        possible; a failure during the run keeps what was already written.
    """
    from jaxdl import config as config_lib
    from jaxdl import experiments
    from jaxdl.rundir import RunDir, default_run_path, environment

    experiment = experiments.get(name)
    overrides = list(overrides)
    if seed is not None:
        overrides.append(f"seed={seed}")
    config = config_lib.resolve(experiment.config, overrides)
    run_dir = RunDir(out or default_run_path(name), overwrite=overwrite)
    run_dir.write_json(
        "config.json",
        {"experiment": name, "config": config_lib.to_dict(config), "environment": environment()},
    )
    metrics = experiment.run(config, run_dir)
    run_dir.write_json("metrics.json", metrics)
    return str(run_dir.path), metrics


def _summary(metrics: dict) -> str:
    """The scalar metrics, one per line (lists stay in metrics.json)."""
    lines = []
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        lines.append(f"  {key:<24} {value:.4g}" if isinstance(value, float) else f"  {key:<24} {value}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = "jaxdl") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        if args.command == "list":
            from jaxdl import experiments

            for name in experiments.names():
                print(f"{name:<24} {experiments.get(name).description}")
            return 0
        if args.help_config:
            from jaxdl import config as config_lib
            from jaxdl import experiments

            print(f"settings of {args.name} (--set KEY=VALUE):")
            print("\n".join(config_lib.help_lines(experiments.get(args.name).config)))
            return 0
        path, metrics = run_experiment(
            args.name, args.overrides, seed=args.seed, out=args.out, overwrite=args.overwrite
        )
    except JaxdlError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; files already written are kept", file=sys.stderr)
        return 130
    print(f"wrote {path}\n{_summary(metrics)}")
    return 0


def run_script(name: str) -> None:
    """Entry point of ``python experiments/NAME.py``: the options of ``jaxdl run NAME``."""
    sys.exit(main(["run", name, *sys.argv[1:]], prog=f"experiments/{name}.py"))


if __name__ == "__main__":
    sys.exit(main())
