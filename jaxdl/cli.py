"""The ``jaxdl`` command: ``jaxdl list`` and ``jaxdl run NAME [options]``.

Mistakes a user can fix (an unknown experiment, a bad ``--set``, a path that
cannot be written, a loss that turns NaN) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from collections.abc import Sequence

from jaxdl.errors import Finished, JaxdlError, Stopped, printable
from jaxdl.results import RunResult

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
        "--seeds",
        type=int,
        help="train N replicas (seeds seed..seed+N-1) together under jax.vmap and report mean +- 95%% interval "
        "(engine runs; same as --set seeds=N)",
    )
    parser.add_argument("--data", help="local copy of the data set (same as --set data=PATH)")
    parser.add_argument("--overwrite", action="store_true", help="allow --out to be a directory that holds a run")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument(
        "--tensorboard", action="store_true", help="write TensorBoard event files to RUN/tensorboard (engine runs)"
    )
    parser.add_argument("--help-config", action="store_true", help="list the experiment's settings and exit")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars and no stage lines (decoding, compiling); results stay"
    )
    dist = parser.add_argument_group(
        "multi-process (jax.distributed)",
        "start the same command in every process, with the same --out on a shared file system",
    )
    dist.add_argument("--distributed", action="store_true", help="join a multi-process run first")
    dist.add_argument("--coordinator", help="HOST:PORT of process 0 (default: $JAX_COORDINATOR_ADDRESS)")
    dist.add_argument("--num-processes", type=int, help="process count (default: $JAX_NUM_PROCESSES)")
    dist.add_argument("--process-id", type=int, help="this process's index (default: $JAX_PROCESS_ID)")


def build_parser(prog: str = "jaxdl") -> argparse.ArgumentParser:
    """The command line's parser: ``list``, ``runs``, ``run``, ``reproduce`` and ``data``.

    Building it imports no JAX. Its usage errors print one line and exit with status 2.

    Args:
      prog: the program name in usage and error lines.

    Returns:
      The parser; ``parse_args`` gives the subcommand in ``command``.
    """
    parser = _Parser(prog=prog, description="Deep-learning basics in functional JAX.")
    from jaxdl import __version__  # jaxdl/__init__.py imports no JAX

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the experiments")
    runs = sub.add_parser("runs", help="list past runs: experiment, date, status, figures, how to resume")
    runs.add_argument("dir", nargs="?", default="runs", help="folder of runs (default: runs)")
    run = sub.add_parser("run", help="run an experiment")
    run.add_argument("name", help="experiment name (see `jaxdl list`)")
    _add_run_options(run)

    tour = sub.add_parser("reproduce", help="run every tutorial claim and write a report (RESULTS.md, index.html)")
    tour.add_argument("--quick", action="store_true", help="small settings: the whole tour in a few minutes")
    tour.add_argument("--data-dir", help="folder of local data copies (instead of $JAXDL_DATA_DIR)")
    tour.add_argument("--out", help="report directory (default: runs/reproduce/TIMESTAMP)")
    tour.add_argument("--only", nargs="+", metavar="RUN", help="only these runs (names as in RESULTS.md)")
    tour.add_argument("--overwrite", action="store_true", help="allow --out to hold an earlier report")
    tour.add_argument("--strict", action="store_true", help="exit 1 when a judged claim misses its target "
                      "(a failed run always does)")  # fmt: skip
    tour.add_argument(
        "--notebooks", help="folder of executed tutorial notebooks to link (scripts/build_notebooks.py OUT)"
    )

    data = sub.add_parser("data", help="inspect the data sets")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    for name, help_text in (
        ("info", "counts per split and class, shape, dtype, pixel mean/std, cache location"),
        ("show", "write a PNG grid of examples with their labels"),
    ):
        p = data_sub.add_parser(name, help=help_text)
        p.add_argument("name", help="data set: " + ", ".join(_dataset_names()))
        p.add_argument("--data", help="local copy: image folder, .tar.gz of one, or IDX folder")
        p.add_argument(
            "--split",
            help="only this split (default: every split)" if name == "info" else "split to draw from (default: train)",
        )
        if name == "show":
            p.add_argument("--count", type=int, default=32, help="examples to draw (default 32)")
            p.add_argument("--seed", type=int, default=0, help="which examples (default 0)")
            p.add_argument("--out", help="PNG path (default: runs/data/NAME-SPLIT.png)")
    return parser


def _dataset_names() -> list[str]:
    from jaxdl.data.catalog import DATASETS

    return list(DATASETS)


def _summary(result: RunResult) -> str:
    """The scalar figures, one per line (lists stay in metrics.json), and what compiling took."""
    lines = []
    for key, value in result.figures.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        lines.append(f"  {key:<24} {value:.4g}" if isinstance(value, float) else f"  {key:<24} {value}")
    if compile_ := result.compile:
        lines.append(
            f"  compiling: XLA {compile_['xla_s']:.2f} s for {compile_['programs']} programs "
            f"({compile_['cache_hits']} loaded from the cache), tracing and lowering "
            f"{compile_['trace_s'] + compile_['lower_s']:.2f} s"
        )
    return "\n".join(lines)


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside a training loop's chunks: unwinds like Ctrl-C."""


def _terminate(number, frame):
    raise _Terminated


def _stopped_line(e: Stopped, args: argparse.Namespace, prog: str) -> str:
    """The stop message; for a resumable run, with the exact command that finishes it."""
    from jaxdl import experiments

    if args.command != "run":
        return f"{e.cli_message().split(';')[0]}; files already written are kept"
    if not experiments.get(args.name).resumable:
        return f"{e.cli_message().split(';')[0]}; experiment {args.name} keeps no checkpoints to resume; run it again"
    command = ["python", prog] if prog.startswith("experiments/") else [prog, "run", args.name]
    command += ["--out", shlex.quote(args.out or e.run_dir), *(f"--set {shlex.quote(o)}" for o in args.overrides)]
    command += [
        f"--{k} {shlex.quote(str(getattr(args, k)))}" for k in ("seed", "seeds", "data") if getattr(args, k) is not None
    ]
    command += ["--tensorboard"] if args.tensorboard else []
    return e.cli_message().replace("run the same command with --resume", "run: " + " ".join([*command, "--resume"]))


def main(argv: Sequence[str] | None = None, prog: str = "jaxdl") -> int:
    """Runs one ``jaxdl`` command, turning every error a user can fix into one line on stderr.

    SIGTERM ends a run as Ctrl-C does, keeping its files (inside training, at a step
    boundary after a checkpoint).

    Args:
      argv: the arguments after the program name (None: ``sys.argv[1:]``).
      prog: the program name in messages and in the command that resumes a stopped run.

    Returns:
      The exit status: 0 on success (or a resume with nothing to add), 1 for a
      ``reproduce`` tour with a failed run (or, with ``--strict``, a missed claim), 2 for
      a usage error or a fixable failure, 128 + the signal's number for a stopped run.
    """
    args = build_parser(prog).parse_args(argv)
    # SIGTERM (a cluster's preemption, `kill`) ends a run like Ctrl-C: cleanly, keeping its files;
    # during training, fit stops at a step boundary and saves a checkpoint first.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_sigterm = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        if args.command == "reproduce":
            return _reproduce(args)
        if args.command != "run" or args.help_config:
            return _show(args)
        path, metrics = _run(args)
    except Finished as e:  # a resume with nothing to add
        print(f"{prog}: {e.cli_message()}")
        return 0
    except Stopped as e:
        print(f"{prog}: {_stopped_line(e, args, prog)}", file=sys.stderr)
        return e.exit_status
    except JaxdlError as e:
        print(f"{prog}: error: {e.cli_message()}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `jaxdl data info mnist | head`
        sys.stdout = None
        return 0
    except KeyboardInterrupt as e:
        name, number = ("SIGTERM", signal.SIGTERM) if isinstance(e, _Terminated) else ("Ctrl-C", signal.SIGINT)
        discarded = getattr(e, "discarded_run", None)
        kept = (
            f"before the run started; its folder {discarded} was removed"
            if discarded
            else "files already written are kept"
        )
        print(f"{prog}: stopped by {name}; {kept}", file=sys.stderr)
        return 128 + number
    except OSError as e:  # a full disk, a read-only or vanished folder: what the machine refused
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: error: {where}{e.strerror or e}; files already written are kept", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_sigterm)
    print(f"wrote {printable(str(path))}\n{_summary(metrics)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    """The commands that only read: ``list``, ``runs``, ``data``, ``run NAME --help-config`` (no JAX)."""
    from jaxdl import experiments

    if args.command == "list":
        for name in experiments.names():
            print(f"{name:<24} {experiments.describe(name)}")
        return 0
    if args.command == "runs":
        from jaxdl import runs_cli

        return runs_cli.main(args.dir)
    if args.command == "data":
        from jaxdl import data_cli

        return data_cli.main(args)
    from jaxdl import config as config_lib

    print(f"settings of {args.name} (--set KEY=VALUE):")
    print("\n".join(config_lib.help_lines(experiments.settings_of(args.name))))
    return 0


def _run(args: argparse.Namespace) -> tuple[str, RunResult]:
    """``jaxdl run NAME``: the run directory's path and what the run measured."""
    if not args.distributed and (args.coordinator or args.num_processes is not None or args.process_id is not None):
        raise JaxdlError("--coordinator, --num-processes and --process-id need --distributed")
    from jaxdl import compilation_cache, experiments

    experiments.settings_of(args.name)  # an unknown name is refused before JAX is imported
    compilation_cache.enable()
    from jaxdl.progress import quiet
    from jaxdl.runner import run_experiment  # imports JAX: only for a run

    distributed = {"coordinator": args.coordinator, "num_processes": args.num_processes, "process_id": args.process_id}
    with quiet(args.quiet):
        return run_experiment(
            args.name,
            args.overrides,
            seed=args.seed,
            seeds=args.seeds,
            data=args.data,
            out=args.out,
            overwrite=args.overwrite,
            resume=args.resume,
            tensorboard=args.tensorboard,
            distributed=distributed if args.distributed else None,
        )


def _reproduce(args: argparse.Namespace) -> int:
    from jaxdl import compilation_cache

    compilation_cache.enable()
    from jaxdl.reproduce import failed_runs, missed_claims, reproduce, summary  # imports every experiment
    from jaxdl.rundir import default_run_path

    out = args.out or str(default_run_path("reproduce"))
    results = reproduce(out, quick=args.quick, data_dir=args.data_dir, only=args.only, overwrite=args.overwrite,
                        notebooks=args.notebooks)  # fmt: skip
    print(f"wrote {printable(out)}/index.html and RESULTS.md ({len(results['rows'])} claims: {summary(results)}; "
          f"{results['seconds']:.0f} s)")  # fmt: skip
    failed, missed = failed_runs(results), missed_claims(results)
    if failed:  # a tour in a script or CI must tell a broken tour from a good one
        print(f"jaxdl reproduce: {len(failed)} of {len({r['run'] for r in results['rows']})} runs failed: "
              f"{', '.join(failed)}", file=sys.stderr)  # fmt: skip
        return 1
    if args.strict and missed:
        print(f"jaxdl reproduce: {len(missed)} judged claims miss their target (--strict): "
              f"{', '.join(dict.fromkeys(r['run'] for r in missed))}", file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
