"""``jaxdl reproduce``: every tutorial claim, run and checked, written up as RESULTS.md and index.html.

Every experiment declares its runs and claims beside its code
(:mod:`jaxdl.claims`): each :class:`~jaxdl.claims.Run` is one ``jaxdl run``
with the tutorial's settings (and smaller ones under ``--quick``); each of its
:class:`~jaxdl.claims.Claim` rows reads one figure from the run's metrics and
sets it beside the tutorial's.
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
import difflib
import html
import io
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jaxdl import experiments
from jaxdl.claims import Claim, Run
from jaxdl.data import local_copies
from jaxdl.errors import JaxdlError, Stopped
from jaxdl.locks import FileLock, Locked
from jaxdl.results import RunResult
from jaxdl.rundir import LOCK_FILE, atomic_write_text, environment, write_json
from jaxdl.runner import run_experiment
from jaxdl.stats import format_interval

REPORT_VERSION = 1
Runner = Callable[..., tuple[str, RunResult]]  # run_experiment's signature


@dataclasses.dataclass(frozen=True)
class TourRun:
    """One :class:`jaxdl.claims.Run` and the experiment it belongs to.

    Attributes:
      experiment: the experiment's name in the registry.
      run: the run, its settings and claims.
    """

    experiment: str
    run: Run

    @property
    def name(self) -> str:
        """The run's name, unique over the tour."""
        return self.run.name


def tour() -> list[TourRun]:
    """Every experiment's claimed runs, in the registry's order.

    Returns:
      A list of :class:`TourRun`.
    """
    return [TourRun(name, run) for name in experiments.names() for run in experiments.get(name).claims]


def select(only: Sequence[str] | None) -> list[TourRun]:
    """The tour's runs named in ``only``, in that order; every run when ``only`` is empty.

    Args:
      only: run names, or None.

    Returns:
      A list of :class:`TourRun`.

    Raises:
      JaxdlError: for an unknown name, suggesting the closest one.
    """
    runs = tour()
    if not only:
        return runs
    by_name = {r.name: r for r in runs}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        close = difflib.get_close_matches(unknown[0], by_name, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise JaxdlError(f"unknown run {unknown[0]!r} for {{only}}; {hint}choose from {', '.join(by_name)}")
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
    """Hardware and JAX version in a few words, e.g. ``CPU x2, jax 0.10.2``.

    Args:
      env: a run's environment, as :func:`jaxdl.rundir.environment` records it.

    Returns:
      The text of the report's "where" column.
    """
    backend = env.get("backend", "?")
    count = env.get("cpu_count") if backend == "cpu" else len(env.get("devices", []))
    return f"{backend.upper()} x{count}, jax {env.get('versions', {}).get('jax')}"


def hardware(env: dict[str, Any]) -> str:
    """A short description of where a run ran, e.g. ``CPU, 2 cores (Intel Xeon ...)``.

    Args:
      env: a run's environment, as :func:`jaxdl.rundir.environment` records it.

    Returns:
      The backend with its core count and CPU model, or the count and kinds of accelerators.
    """
    backend = env.get("backend", "?")
    if backend == "cpu":
        text = f"CPU, {env.get('cpu_count')} cores"
        return text + (f" ({env['cpu_model']})" if env.get("cpu_model") else "")
    kinds = sorted(set(env.get("devices", [])))
    return f"{len(env.get('devices', []))} x {', '.join(k.split(':', 1)[1] for k in kinds)}"


def _settings(run: Run, quick: bool) -> list[str]:
    seeds = run.quick_seeds if quick else run.seeds
    return [*run.settings, *(run.quick if quick else ()), *([f"seeds={seeds}"] if seeds > 1 else [])]


def command(tour_run: TourRun, quick: bool) -> str:
    """The ``jaxdl run`` command line that makes this run.

    Args:
      tour_run: the run.
      quick: add the ``--quick`` settings and seeds.

    Returns:
      The command, e.g. ``jaxdl run blobs --set epochs=10``.
    """
    return " ".join(["jaxdl run", tour_run.experiment, *(f"--set {s}" for s in _settings(tour_run.run, quick))])


def _row(tour_run: TourRun, claim: Claim, quick: bool, outcome: dict[str, Any]) -> dict[str, Any]:
    run = tour_run.run
    row = {
        "run": run.name,
        "experiment": tour_run.experiment,
        "command": command(tour_run, quick),
        "source": claim.source,
        "claim": claim.statement,
        "tutorial": claim.tutorial,
        "target": claim.target.text if claim.target else "",
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
    row.update(value=value, jaxdl="none recorded" if math.isnan(value) else claim.fmt.format(value))
    summary = claim.interval(outcome["metrics"])
    if summary is not None:  # judged on the mean, shown with its interval
        row.update(jaxdl=format_interval(summary, claim.fmt), n=summary["n"], half_width=summary["half_width"])
    judged = claim.target is not None and not (quick and run.quick)
    if claim.target is None:
        row["status"] = "measured"
    elif not judged:
        row["status"] = "quick"
    else:
        row["status"] = "meets" if claim.target.met_by(value) else "misses"
    return row


def _run_one(tour_run: TourRun, quick: bool, report_dir: Path, data_dir: Path | None, runner: Runner) -> dict[str, Any]:
    run = tour_run.run
    if run.data:
        with local_copies(data_dir):
            problem = _data_problem(run.data)
        if problem:
            return {"status": "skipped", "reason": problem}
    run_dir = report_dir / "runs" / run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    output = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(output):
            _, metrics = runner(
                tour_run.experiment, _settings(run, quick), data_dir=data_dir, out=str(run_dir), overwrite=True
            )
    except Stopped:
        raise  # SIGTERM or Ctrl-C stops the tour, not only this run
    except JaxdlError as e:
        return {"status": "failed", "reason": str(e).splitlines()[0], "seconds": time.perf_counter() - start}
    finally:
        atomic_write_text(run_dir / "log.txt", output.getvalue())
    return {"status": "ran", "metrics": RunResult.of(metrics), "seconds": time.perf_counter() - start}


def reproduce(
    out: str | os.PathLike,
    *,
    quick: bool = False,
    data_dir: str | None = None,
    only: Sequence[str] | None = None,
    overwrite: bool = False,
    notebooks: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    runner: Runner | None = None,
) -> dict[str, Any]:
    """Runs the tour into ``out`` and writes its report; returns the results dict (``results.json``).

    Args:
      out: the report directory.
      quick: small settings; targets of shrunk runs are shown, not judged.
      data_dir: a folder of local data copies for these runs (the environment is left alone).
      only: run names (see :func:`tour`); default all.
      overwrite: allow ``out`` to hold an earlier report.
      notebooks: a folder of executed tutorial notebooks (``scripts/build_notebooks.py``)
        that ``index.html`` links to; default ``out/notebooks`` when it holds any.
      log: where progress lines go.
      runner: runs one experiment (:func:`jaxdl.runner.run_experiment`; tests pass a stand-in).

    Returns:
      ``{"version", "quick", "seconds", "environment", "rows"}``, one row per claim, as written to
      ``results.json`` beside ``RESULTS.md`` and ``index.html``.

    Raises:
      JaxdlError: ``out`` is a file, holds a report without ``overwrite``, or another tour is
        writing it; ``data_dir`` is not a folder; or a name in ``only`` is unknown.
    """
    runs = select(only)
    report_dir = Path(out)
    if report_dir.exists() and not report_dir.is_dir():
        raise JaxdlError(f"{{out}} {report_dir} is a file, not a directory; choose another")
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise JaxdlError(f"{{data_dir}} {data_dir} is not a directory")
        data_dir = Path(data_dir).absolute()
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise JaxdlError(f"cannot create {{out}} {report_dir}: {e.strerror}") from None
    # One tour at a time in a report folder, held from before the check for an earlier report to the
    # last file written: a second tour would otherwise race this one's runs and replace its report.
    lock = FileLock(report_dir / LOCK_FILE)
    try:
        lock.acquire()
    except Locked as e:
        raise JaxdlError(f"{{out}} {report_dir} is in use by process {e.holder} (another jaxdl reproduce); "
                         "wait for it to end or choose another") from None  # fmt: skip
    try:
        if (report_dir / "results.json").exists() and not overwrite:
            raise JaxdlError(f"{{out}} {report_dir} already holds a report; choose another or pass {{overwrite}}")
        return _tour(runs, report_dir, quick, data_dir, notebooks, log, runner or run_experiment)
    finally:
        lock.release()


def _tour(runs, report_dir: Path, quick: bool, data_dir: Path | None, notebooks, log, runner) -> dict[str, Any]:
    rows, start = [], time.perf_counter()
    for i, tour_run in enumerate(runs, 1):
        log(f"[{i}/{len(runs)}] {tour_run.name}: {command(tour_run, quick)}")
        outcome = _run_one(tour_run, quick, report_dir, data_dir, runner)
        new = [_row(tour_run, claim, quick, outcome) for claim in tour_run.run.claims]
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
    atomic_write_text(report_dir / "index.html", results_html(results, report_dir, notebooks))
    return results


# ------------------------------------------------------------------ rendering

STATUS_MARK = {"meets": "meets", "misses": "MISSES", "measured": "", "quick": "quick: measured, not judged",
               "skipped": "skipped", "failed": "FAILED"}  # fmt: skip


def _seconds(row: dict[str, Any]) -> str:
    return f"{row['seconds']:.1f}" if row.get("seconds") is not None else ""


def _rate(row: dict[str, Any]) -> str:
    return f"{row['examples_per_second']:,.0f}" if row.get("examples_per_second") else ""


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


HEADER = ("claim", "source", "tutorial", "jaxdl", "target", "status", "s", "examples/s")


def row_cells(row: dict[str, Any]) -> list[str]:
    """One claim's cells under :data:`HEADER`, as text; Markdown and HTML both render these.

    Args:
      row: one row of ``results["rows"]``.

    Returns:
      The cells, in :data:`HEADER`'s order, the status followed by its reason when there is one.
    """
    status = STATUS_MARK[row["status"]]
    if row["reason"]:
        status = f"{status}: {row['reason']}"
    return [row["claim"], row["source"], row["tutorial"], row["jaxdl"], row["target"], status, _seconds(row),
            _rate(row)]  # fmt: skip


def markdown_table(results: dict[str, Any], *, links: bool = True) -> str:
    """The claims table: one row per claim (``links``: the run-directory column).

    Args:
      results: a results dict (:func:`reproduce`, :func:`read_results`).
      links: add a column linking each run's directory (in the report; not in the README).

    Returns:
      The Markdown table, ending in a newline.
    """
    place = where(results["environment"])
    header = [*HEADER, "where", *(["run"] if links else [])]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in results["rows"]:
        cells = [*row_cells(row), place, *([f"[{row['run']}]({row['run_dir']})"] if links else [])]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def failed_runs(results: dict[str, Any]) -> list[str]:
    """The runs that failed (each once, in the tour's order).

    Args:
      results: a results dict.

    Returns:
      Their names.
    """
    return list(dict.fromkeys(row["run"] for row in results["rows"] if row["status"] == "failed"))


def missed_claims(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The judged claims that miss their target.

    Args:
      results: a results dict.

    Returns:
      Their rows.
    """
    return [row for row in results["rows"] if row["status"] == "misses"]


def summary(results: dict[str, Any]) -> str:
    """How many claims have each status, e.g. ``"12 meets, 3 measured"``.

    Args:
      results: a results dict.

    Returns:
      One line, the statuses in the order they first occur.
    """
    counts: dict[str, int] = {}
    for row in results["rows"]:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def results_markdown(results: dict[str, Any]) -> str:
    """The report as Markdown (``RESULTS.md``): what kind of tour, the counts, hardware, versions, the table.

    Args:
      results: a results dict.

    Returns:
      The Markdown text.
    """
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


def notebook_links(report_dir: Path, notebooks: str | os.PathLike | None = None) -> str:
    """A list of links to the executed notebooks' HTML pages, relative to the report; empty if none.

    Args:
      report_dir: the report directory the links are relative to.
      notebooks: the folder of notebook pages; default ``report_dir/notebooks``.

    Returns:
      An HTML fragment (a heading and a list), or "".
    """
    folder = Path(notebooks) if notebooks is not None else report_dir / "notebooks"
    pages = sorted(p for p in folder.glob("*.html") if p.name != "index.html") if folder.is_dir() else []
    if not pages:
        return ""
    items = "".join(
        f'<li><a href="{html.escape(os.path.relpath(p, report_dir))}">{html.escape(p.stem)}</a></li>' for p in pages
    )
    return f"<h2>Tutorial notebooks</h2><p>Executed by <code>scripts/build_notebooks.py</code>:</p><ul>{items}</ul>"


def results_html(results: dict[str, Any], report_dir: Path, notebooks: str | os.PathLike | None = None) -> str:
    """The report as one self-contained page.

    The claims table, the tutorial notebooks' pages when there are any (see :func:`notebook_links`),
    then every run's figures embedded as data URLs, so the page needs no other file.

    Args:
      results: a results dict.
      report_dir: the report directory holding ``runs/NAME/*.png``.
      notebooks: the folder of notebook pages, as for :func:`notebook_links`.

    Returns:
      The HTML document.
    """
    esc = html.escape
    env = results["environment"]
    kind = "quick tour (small settings, targets not judged)" if results["quick"] else "full run"
    head = [*HEADER, "run"]
    status_column = HEADER.index("status")
    rows = []
    for row in results["rows"]:
        cells = [esc(c) for c in row_cells(row)]
        cells[status_column] = f'<span class="{row["status"]}">{cells[status_column]}</span>'
        cells.append(f'<a href="#{esc(row["run"])}">{esc(row["run"])}</a>')
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
{notebook_links(report_dir, notebooks)}
{chr(10).join(sections)}
</body></html>
"""


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """``results.json`` of a report directory (or the file itself).

    Args:
      path: the report directory or its ``results.json``.

    Returns:
      The results dict.

    Raises:
      JaxdlError: the file is missing, is not JSON, or is not a results file of this version.
    """
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
