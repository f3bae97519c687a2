"""``jaxdl reproduce``: every tutorial claim, run and checked, written up as RESULTS.md and index.html.

Each :class:`Run` is one ``jaxdl run`` with the tutorial's settings (and
smaller ones under ``--quick``); each of its :class:`Claim` rows reads one
figure from the run's ``metrics.json`` and sets it beside the tutorial's.
A run that cannot start (its data set is not available) is skipped with the
reason; a run that fails is reported as failed; the tour always finishes.

The report directory holds ``results.json`` (the rows, machine readable:
``scripts/readme_table.py`` builds the README's table from it),
``RESULTS.md``, a self-contained ``index.html`` (figures embedded) and one run
directory per run under ``runs/``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import html
import io
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jaxdl.errors import JaxdlError

REPORT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Claim:
    """One row: a tutorial's statement, its figure, and how to read jaxdl's from ``metrics.json``.

    ``metric`` names a key of ``metrics.json`` or computes the figure from the
    whole dict; ``target`` (with ``target_text``) says whether the figure
    meets what the issue that built the experiment asked for.
    """

    source: str  # "seed 001"
    statement: str
    tutorial: str  # the tutorial's figure, as text
    metric: str | Callable[[dict[str, Any]], float]
    fmt: str = "{:.4g}"
    target: Callable[[float], bool] | None = None
    target_text: str = ""

    def value(self, metrics: dict[str, Any]) -> float:
        if callable(self.metric):
            return float(self.metric(metrics))
        if self.metric not in metrics:
            raise KeyError(f"metrics.json has no {self.metric!r}")
        return float(metrics[self.metric])


@dataclasses.dataclass(frozen=True)
class Run:
    """One experiment run of the tour and the claims it checks."""

    name: str  # unique: the run directory's name
    experiment: str
    settings: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()  # further settings under --quick
    data: str | None = None  # data set it needs, checked before it starts
    claims: tuple[Claim, ...] = ()


def at_least(x: float) -> Callable[[float], bool]:
    return lambda v: v >= x


def at_most(x: float) -> Callable[[float], bool]:
    return lambda v: v <= x


def between(lo: float, hi: float) -> Callable[[float], bool]:
    return lambda v: lo <= v <= hi


PERCENT = "{:.2%}"

RUNS: tuple[Run, ...] = (
    Run("blobs-tutorial-init", "blobs", ("init=tutorial",), claims=(
        Claim("seed 000", "Linear(2,5)-Linear(5,1)-sigmoid, SGD lr 5e-4, 1000 full-batch epochs on make_blobs, "
              "from the tutorial's initial weights: last logged accuracy", "92.90%", "logged_accuracy", PERCENT,
              between(0.9285, 0.9295), "= 92.90%"),
        Claim("seed 000", "... and its last logged loss", "0.2125", "logged_loss", "{:.4f}",
              between(0.21245, 0.21255), "= 0.2125"),
    )),
    Run("blobs", "blobs", claims=(
        Claim("seed 000", "the same network from 64 random initialisations (vmap): mean train accuracy",
              "92.90% (one initialisation)", "seed_accuracy_mean", PERCENT),
    )),
    Run("autodiff-modes", "autodiff-modes", claims=(
        Claim("seed 000", "forward mode costs one pass per input, reverse one per output: "
              "jacfwd / jacrev time for f: R^1000 -> R^1", "forward slower", "time_ratio_n_max_m_min", "{:.3g}x",
              at_least(1.0), "> 1"),
        Claim("seed 000", "... and for f: R^1 -> R^1000", "forward faster", "time_ratio_n_min_m_max", "{:.3g}x",
              at_most(1.0), "< 1"),
        Claim("seed 000", "a loss gradient: n jvps against one vjp (time ratio)", "reverse mode wins",
              "grad_jvp_over_vjp", "{:.3g}x", at_least(1.0), "> 1"),
    )),
    Run("scratch-mlp", "scratch-mlp", claims=(
        Claim("seed 003", "hand-written backprop in NumPy against the same network in JAX: largest loss-curve gap",
              "(same maths)", "max_loss_curve_gap", "{:.2g}", at_most(1e-6), "<= 1e-6"),
    )),
    Run("scalar-engine-tutorial", "scalar-engine", quick=("n_train=6",), data="mnist", claims=(
        Claim("seed 004", "the scalar engine's MLP(784, [64, 32, 10]) with the tutorial's init and lr 0.05: "
              "sample at which the loss stops being finite", "(run never finished)", "diverged_at_sample", "{:.0f}"),
    )),
    Run("scalar-engine-torch", "scalar-engine", ("init=torch",), quick=("n_train=6",), data="mnist", claims=(
        Claim("seed 004", "scalar engine, NumPy and jax.jit from PyTorch's init: largest parameter difference",
              "(same maths)", "max_param_difference_jax", "{:.2g}", at_most(1e-6), "<= 1e-6"),
        Claim("seed 004", "seconds per sample: scalar engine over jax.jit", "", "jax_speedup_over_scalar",
              "{:,.0f}x", at_least(100.0), ">= 100x"),
    )),
    Run("monte-carlo", "monte-carlo", claims=(
        Claim("seed 000", "the Monte Carlo estimate is unbiased: worst |z| of the mean of 1,000 estimators",
              "unbiased", "expectation_max_abs_z", "{:.2f}", at_most(3.0), "<= 3"),
        Claim("seed 000", "its error falls like 1/sqrt(S): fitted log-log slope", "-0.5", "rmse_slope", "{:.3f}",
              between(-0.55, -0.45), "-0.5 +- 0.05"),
    )),
    Run("minibatch-sgd", "minibatch-sgd", quick=("draws=1000", "epochs=10"), claims=(
        Claim("seed 002", "a minibatch gradient is an unbiased estimate of the full gradient: worst |z| over leaves",
              "unbiased", "unbiased_max_abs_z", "{:.2f}", at_most(3.5), "<= 3.5"),
        Claim("seed 002", "its variance falls like 1/B: fitted slope for B <= 32", "-1",
              "variance_slope_small_batches", "{:.3f}", between(-1.15, -0.85), "-1 +- 0.15"),
    )),
    Run("optimizers", "optimizers", claims=(
        Claim("seed 002", "Rosenbrock after 300 steps: L-BFGS's f (the others stall in the valley)", "",
              "rosenbrock_lbfgs_final_value", "{:.2g}", at_most(1e-6), "<= 1e-6"),
        Claim("seed 002", "at a saddle, gradient descent stalls (f stays 0) and noise escapes to the minimum -1: "
              "f with noise", "escapes", "saddle_noisy_final", "{:.3f}", at_most(-0.9), "<= -0.9"),
        Claim("seed 003", "the learning-rate finder's suggestion for a digits MLP", "(future work)",
              "range_test_suggested_lr", "{:.3g}"),
    )),
    Run("activations", "activations", claims=(
        Claim("seed 002", "sigmoid gradients vanish with depth: layer-1 / layer-20 gradient norm at init",
              "vanishing", "sigmoid_first_over_last_at_init", "{:.2g}", at_most(1e-3), "<= 1e-3"),
        Claim("seed 002", "... and ReLU's do not", "", "relu_first_over_last_at_init", "{:.2g}",
              at_least(1e-2), ">= 1e-2"),
    )),
    Run("universal-approximation", "universal-approximation", quick=("steps=3000",), claims=(
        Claim("seed 000", "one hidden layer of N sigmoids approximates a continuous function: "
              "max error at N = 1 over N = 64 (1-D)", "error -> 0 as N grows", "error_ratio_1d", "{:.3g}x",
              at_least(10.0), ">= 10x"),
    )),
    Run("regularisation", "regularisation", quick=("epochs=40",), claims=(
        Claim("seed 002", "regularisation narrows the generalisation gap: validation accuracy, none -> dropout",
              "", lambda m: m["dropout_val_accuracy"] - m["none_val_accuracy"], "{:+.2%}", at_least(0.0), "> 0"),
        Claim("seed 002", "... none -> early stopping", "",
              lambda m: m["early_stopping_val_accuracy"] - m["none_val_accuracy"], "{:+.2%}", at_least(0.0), "> 0"),
    )),
    Run("mnist-mlp", "mnist-mlp", data="mnist", claims=(
        Claim("seed 004", "784-128-10, SGD 1e-2, batch 64, 4,096 images, early stopping: test accuracy", "",
              "test_accuracy", PERCENT),
    )),
    Run("cifar10-mlp", "cifar10-mlp", quick=("epochs=1",), data="cifar10", claims=(
        Claim("seed 001", "MLP 3072-100-10, Adam 1e-3, batch 100, 5 epochs: test accuracy", "49.96%",
              "test_accuracy", PERCENT, at_least(0.50), ">= 50%"),
    )),
    Run("cifar10-cnn-tutorial", "cifar10-cnn", ("recipe=tutorial",), quick=("epochs=1",), data="cifar10", claims=(
        Claim("seed 001", "the tutorial's CNN with the MLP's recipe, 10 epochs: test accuracy",
              "75.52% (its code: 74.39% here)", "test_accuracy", PERCENT, between(0.7339, 0.7652), "74-75% +- 1"),
    )),
    Run("cifar10-cnn", "cifar10-cnn", quick=("epochs=1",), data="cifar10", claims=(
        Claim("seed 001", "the same CNN, crops and flips, AdamW one-cycle, 10 epochs: test accuracy", "75.52%",
              "test_accuracy", PERCENT, at_least(0.78), ">= 78%"),
    )),
    Run("mnist-vae-tutorial", "mnist-vae", ("recipe=tutorial",), quick=("epochs=1",), data="mnist", claims=(
        Claim("seed 002", "VAE 784-400-20, Adam 1e-3, batch 32, 10 epochs: test loss per image (nats)",
              "104.73-105.22 (its code here)", "test_loss", "{:.2f}", between(103.73, 106.22), "104.7-105.2 +- 1"),
    )),
    Run("mnist-vae", "mnist-vae", quick=("epochs=1",), data="mnist", claims=(
        Claim("seed 002", "the same VAE, Adam with a one-cycle schedule, 10 epochs: test loss per image (nats)",
              "104.73-105.22 (its code here)", "test_loss", "{:.2f}", at_most(104.0), "<= 104"),
    )),
)  # fmt: skip


def select(only: Sequence[str] | None) -> list[Run]:
    if not only:
        return list(RUNS)
    by_name = {r.name: r for r in RUNS}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        raise JaxdlError(f"unknown run {unknown[0]!r} for --only; choose from {', '.join(by_name)}")
    return [by_name[n] for n in only]


def _data_problem(name: str) -> str | None:
    """None if data set ``name`` loads (it is then cached), else why not."""
    from jaxdl import data as data_lib

    try:
        data_lib.load(name, "test")
    except JaxdlError as e:
        return f"{name} is not available: {str(e).splitlines()[0]}"
    return None


def where(env: dict[str, Any]) -> str:
    """Hardware and JAX version in a few words, e.g. ``CPU x2, jax 0.10.2``."""
    backend = env.get("backend", "?")
    count = env.get("cpu_count") if backend == "cpu" else len(env.get("devices", []))
    return f"{backend.upper()} x{count}, jax {env.get('versions', {}).get('jax')}"


def hardware(env: dict[str, Any]) -> str:
    """A short description of where a run ran, e.g. ``cpu x 2 cores (Intel Xeon ...)``."""
    backend = env.get("backend", "?")
    if backend == "cpu":
        text = f"CPU, {env.get('cpu_count')} cores"
        return text + (f" ({env['cpu_model']})" if env.get("cpu_model") else "")
    kinds = sorted(set(env.get("devices", [])))
    return f"{len(env.get('devices', []))} x {', '.join(k.split(':', 1)[1] for k in kinds)}"


def command(run: Run, quick: bool) -> str:
    settings = [*run.settings, *(run.quick if quick else ())]
    return " ".join(["jaxdl run", run.experiment, *(f"--set {s}" for s in settings)])


def _row(run: Run, claim: Claim, quick: bool, outcome: dict[str, Any]) -> dict[str, Any]:
    row = {
        "run": run.name,
        "experiment": run.experiment,
        "command": command(run, quick),
        "source": claim.source,
        "claim": claim.statement,
        "tutorial": claim.tutorial,
        "target": claim.target_text,
        "status": outcome["status"],
        "reason": outcome.get("reason", ""),
        "seconds": outcome.get("seconds"),
        "examples_per_second": outcome.get("metrics", {}).get("examples_per_second"),
        "run_dir": f"runs/{run.name}",
        "value": None,
        "jaxdl": "",
    }
    if outcome["status"] != "ran":
        return row
    try:
        value = claim.value(outcome["metrics"])
    except (KeyError, TypeError, ValueError) as e:
        return {**row, "status": "failed", "reason": f"cannot read the figure: {e}"}
    row.update(value=value, jaxdl=claim.fmt.format(value))
    judged = claim.target is not None and not (quick and run.quick)
    if claim.target is None:
        row["status"] = "measured"
    elif not judged:
        row["status"] = "quick"
    else:
        row["status"] = "meets" if claim.target(value) else "misses"
    return row


def _run_one(run: Run, quick: bool, report_dir: Path) -> dict[str, Any]:
    from jaxdl.cli import run_experiment

    if run.data:
        problem = _data_problem(run.data)
        if problem:
            return {"status": "skipped", "reason": problem}
    settings = [*run.settings, *(run.quick if quick else ())]
    run_dir = report_dir / "runs" / run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    output = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(output):
            _, metrics = run_experiment(run.experiment, settings, out=str(run_dir), overwrite=True)
    except JaxdlError as e:
        return {"status": "failed", "reason": str(e).splitlines()[0], "seconds": time.perf_counter() - start}
    finally:
        (run_dir / "log.txt").write_text(output.getvalue())
    return {"status": "ran", "metrics": metrics, "seconds": time.perf_counter() - start}


def reproduce(
    out: str | os.PathLike,
    *,
    quick: bool = False,
    data_dir: str | None = None,
    only: Sequence[str] | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Runs the tour into ``out`` and writes its report; returns the results dict (``results.json``)."""
    from jaxdl.rundir import atomic_write_text, environment, write_json

    runs = select(only)
    report_dir = Path(out)
    if (report_dir / "results.json").exists() and not overwrite:
        raise JaxdlError(f"--out {report_dir} already holds a report; choose another --out or pass --overwrite")
    if report_dir.exists() and not report_dir.is_dir():
        raise JaxdlError(f"--out {report_dir} is a file, not a directory; choose another --out")
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise JaxdlError(f"--data-dir {data_dir} is not a directory")
        os.environ["JAXDL_DATA_DIR"] = str(Path(data_dir).absolute())
    report_dir.mkdir(parents=True, exist_ok=True)
    rows, start = [], time.perf_counter()
    for i, run in enumerate(runs, 1):
        log(f"[{i}/{len(runs)}] {run.name}: {command(run, quick)}")
        outcome = _run_one(run, quick, report_dir)
        new = [_row(run, claim, quick, outcome) for claim in run.claims]
        rows.extend(new)
        done = f"{outcome['seconds']:.1f} s" if "seconds" in outcome else ""
        log(f"      {outcome['status']} {done} {outcome.get('reason', '')}".rstrip())
    results = {
        "version": REPORT_VERSION,
        "quick": quick,
        "seconds": time.perf_counter() - start,
        "environment": environment(),
        "rows": rows,
    }
    write_json(report_dir / "results.json", results)
    atomic_write_text(report_dir / "RESULTS.md", results_markdown(results))
    atomic_write_text(report_dir / "index.html", results_html(results, report_dir))
    return results


# ------------------------------------------------------------------ rendering

STATUS_MARK = {"meets": "meets", "misses": "MISSES", "measured": "", "quick": "(quick run)",
               "skipped": "skipped", "failed": "FAILED"}  # fmt: skip


def _seconds(row: dict[str, Any]) -> str:
    return f"{row['seconds']:.1f}" if row.get("seconds") is not None else ""


def _rate(row: dict[str, Any]) -> str:
    return f"{row['examples_per_second']:,.0f}" if row.get("examples_per_second") else ""


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(results: dict[str, Any], *, links: bool = True) -> str:
    """The claims table: one row per claim (``links``: the run-directory column)."""
    place = where(results["environment"])
    header = ["claim", "source", "tutorial", "jaxdl", "target", "status", "s", "examples/s", "where"]
    if links:
        header.append("run")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in results["rows"]:
        status = STATUS_MARK[row["status"]]
        if row["reason"]:
            status = f"{status}: {row['reason']}"
        cells = [row["claim"], row["source"], row["tutorial"], row["jaxdl"], row["target"], status,
                 _seconds(row), _rate(row), place]  # fmt: skip
        if links:
            cells.append(f"[{row['run']}]({row['run_dir']})")
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def summary(results: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for row in results["rows"]:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def results_markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    kind = "quick tour (`--quick`: small settings, targets not judged)" if results["quick"] else "full run"
    return (
        f"# jaxdl reproduce: {kind}\n\n"
        f"{len(results['rows'])} claims: {summary(results)}; {results['seconds']:.0f} s in all.\n\n"
        f"Hardware: {hardware(env)}, JAX backend {env.get('backend')}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
        + f"; Python {env.get('python')}; git commit {env.get('git_commit')}.\n\n"
        + markdown_table(results)
    )


def _figures(run_dir: Path) -> list[tuple[str, str]]:
    figures = []
    for png in sorted(run_dir.glob("*.png")):
        figures.append((png.name, base64.b64encode(png.read_bytes()).decode("ascii")))
    return figures


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.meets { color: #146c2e; } .misses, .failed { color: #b3261e; font-weight: bold; } .skipped { color: #8a6d00; }
figure { display: inline-block; margin: 0.5em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.8em; color: #555; }
"""

# Counts the figures that decoded, for a browser test and for a reader.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var ok = images.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length;
  document.body.dataset.figures = images.length;
  document.body.dataset.figuresLoaded = ok;
  document.getElementById("figure-count").textContent = ok + " of " + images.length + " figures loaded";
});
"""


def results_html(results: dict[str, Any], report_dir: Path) -> str:
    """The report as one self-contained page: the claims table, then every run's figures embedded."""
    esc = html.escape
    env = results["environment"]
    kind = "quick tour (small settings, targets not judged)" if results["quick"] else "full run"
    head = ["claim", "source", "tutorial", "jaxdl", "target", "status", "s", "examples/s", "run"]
    rows = []
    for row in results["rows"]:
        status = STATUS_MARK[row["status"]] or "measured"
        if row["reason"]:
            status += f": {row['reason']}"
        cells = [esc(row["claim"]), esc(row["source"]), esc(row["tutorial"]), esc(row["jaxdl"]), esc(row["target"]),
                 f'<span class="{row["status"]}">{esc(status)}</span>', _seconds(row), _rate(row),
                 f'<a href="#{esc(row["run"])}">{esc(row["run"])}</a>']  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    sections = []
    seen = []
    for row in results["rows"]:
        if row["run"] in seen:
            continue
        seen.append(row["run"])
        run_dir = report_dir / row["run_dir"]
        figures = "".join(
            f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{data}"><figcaption>{esc(name)}'
            "</figcaption></figure>"
            for name, data in (_figures(run_dir) if run_dir.is_dir() else [])
        )
        detail = f"<code>{esc(row['command'])}</code>, run directory <code>{esc(row['run_dir'])}</code>"
        if row["status"] in ("skipped", "failed"):
            detail += f" ({esc(row['status'])}: {esc(row['reason'])})"
        sections.append(f'<section id="{esc(row["run"])}"><h2>{esc(row["run"])}</h2><p>{detail}</p>{figures}</section>')
    versions = ", ".join(f"{esc(k)} {esc(str(v))}" for k, v in env.get("versions", {}).items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>jaxdl reproduce: {esc(kind)}</title>
<style>{_CSS}</style><script>{_SCRIPT}</script></head>
<body>
<h1>jaxdl reproduce: {esc(kind)}</h1>
<p>{len(results["rows"])} claims: {esc(summary(results))}; {results["seconds"]:.0f} s in all.
<span id="figure-count"></span></p>
<p>Hardware: {esc(hardware(env))}, JAX backend {esc(str(env.get("backend")))}. Versions: {versions};
Python {esc(str(env.get("python")))}; git commit {esc(str(env.get("git_commit")))}.</p>
<table><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
{chr(10).join(sections)}
</body></html>
"""


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """``results.json`` of a report directory (or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise JaxdlError(f"{path} does not exist; run `jaxdl reproduce --out DIR` first") from None
    except json.JSONDecodeError as e:
        raise JaxdlError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(results, dict) or results.get("version") != REPORT_VERSION or "rows" not in results:
        raise JaxdlError(f"{path} is not a jaxdl reproduce results file (version {REPORT_VERSION})")
    return results
