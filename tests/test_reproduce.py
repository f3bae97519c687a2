"""jaxdl reproduce: the report, its skips and failures, the README table, and the page in a real browser."""

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from conftest import built_once

from jaxdl import reproduce as reproduce_lib
from jaxdl.cli import main
from jaxdl.errors import JaxdlError
from jaxdl.results import RunResult

ROOT = Path(__file__).resolve().parent.parent
QUICK_RUNS = ["blobs-tutorial-init", "scratch-mlp", "optimizers"]


@pytest.fixture(scope="module")
def report():
    def build(folder):
        assert main(["reproduce", "--quick", "--only", *QUICK_RUNS, "--out", str(folder / "report")]) == 0

    return built_once("quick-report", build) / "report"  # one tour for the test run, whichever worker asks


def test_report_has_a_row_per_claim_with_figures_and_timings(report):
    results = reproduce_lib.read_results(report)
    expected = [c.statement for r in reproduce_lib.select(QUICK_RUNS) for c in r.run.claims]
    assert [row["claim"] for row in results["rows"]] == expected
    by_claim = {row["claim"]: row for row in results["rows"]}
    blobs = by_claim[expected[0]]
    assert blobs["jaxdl"] == "92.90%" and blobs["status"] == "meets"  # no quick settings: judged
    assert blobs["seconds"] > 0 and blobs["examples_per_second"] > 0
    # runs with quick settings (optimizers) are measured, not judged; the others are judged or measured
    for row in results["rows"]:
        shrunk = reproduce_lib.select([row["run"]])[0].run.quick
        assert row["status"] in (("quick", "measured") if shrunk else ("meets", "measured")), row
    assert any(row["status"] == "quick" for row in results["rows"])
    assert "quick: measured, not judged" in (report / "RESULTS.md").read_text()
    assert results["quick"] and results["environment"]["versions"]["jax"]
    markdown = (report / "RESULTS.md").read_text()
    assert markdown.count("\n| ") == len(expected) + 2  # header, rule and one line per claim
    assert "| 92.90% | 92.90% | = 92.90% | meets |" in markdown
    for run in QUICK_RUNS:
        assert (report / "runs" / run / "metrics.json").is_file()
        assert (report / "runs" / run / "log.txt").stat().st_size > 0


def test_html_is_self_contained_with_every_figure(report):
    page = (report / "index.html").read_text()
    pngs = list((report / "runs").glob("*/*.png"))
    assert len(pngs) >= 5
    assert page.count('src="data:image/png;base64,') == len(pngs)
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert page.count("<tr>") == 1 + len(reproduce_lib.read_results(report)["rows"])


def test_html_links_the_executed_notebooks_when_there_are_any(report, tmp_path):
    results = reproduce_lib.read_results(report)
    assert "Tutorial notebooks" not in reproduce_lib.results_html(results, report)
    pages = tmp_path / "built"
    pages.mkdir()
    for name in ("index", "01_blobs", "02_cifar"):
        (pages / f"{name}.html").write_text("<html></html>")
    page = reproduce_lib.results_html(results, report, pages)
    hrefs = [item.split('"')[1] for item in page.split("<li>")[1:]]
    relative = os.path.relpath(pages, report)  # links work wherever the two folders are moved together
    assert hrefs == [f"{relative}/01_blobs.html", f"{relative}/02_cifar.html"]  # the build's own index left out


def test_unavailable_data_skips_the_run_with_the_reason(tmp_path, monkeypatch, capsys):
    def no_data(name, split="train", **kwargs):
        raise JaxdlError(f"{name} needs a local copy: pass --data PATH")

    monkeypatch.setattr("jaxdl.data.load", no_data)
    assert main(["reproduce", "--quick", "--only", "mnist-mlp", "--out", str(tmp_path / "r")]) == 0
    (row,) = reproduce_lib.read_results(tmp_path / "r")["rows"]
    assert row["status"] == "skipped"
    assert row["reason"] == "mnist is not available: mnist needs a local copy: pass --data PATH"
    assert "skipped: mnist is not available" in (tmp_path / "r" / "RESULTS.md").read_text()


def test_a_failing_run_is_reported_and_the_tour_goes_on(tmp_path):
    def fail(*args, **kwargs):
        raise JaxdlError("the loss became nan at epoch 1, step 3")

    reproduce_lib.reproduce(tmp_path / "r", quick=True, only=["scratch-mlp", "monte-carlo"], runner=fail,
                            log=lambda line: None)  # fmt: skip
    rows = reproduce_lib.read_results(tmp_path / "r")["rows"]
    assert {row["status"] for row in rows} == {"failed"}
    assert rows[0]["reason"] == "the loss became nan at epoch 1, step 3"


def test_a_failed_run_makes_the_tour_exit_1_and_its_last_line_counts_the_failures(tmp_path, monkeypatch, capsys):
    def fail_scratch(name, *args, **kwargs):
        if name == "scratch-mlp":
            raise JaxdlError("the loss became nan at epoch 1, step 3")
        return "", {"expectation_max_abs_z": 1.0, "rmse_slope": -0.5}

    monkeypatch.setattr(reproduce_lib, "run_experiment", fail_scratch)
    assert main(["reproduce", "--quick", "--only", "scratch-mlp", "monte-carlo", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "jaxdl reproduce: 1 of 2 runs failed: scratch-mlp"
    statuses = {row["run"]: row["status"] for row in reproduce_lib.read_results(tmp_path / "r")["rows"]}
    assert statuses["scratch-mlp"] == "failed" and "monte-carlo" in statuses  # every row is still reported


def test_strict_exits_1_when_a_judged_claim_misses(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reproduce_lib, "run_experiment", lambda *a, **k: ("", {"max_loss_curve_gap": 1.0}))
    args = ["reproduce", "--only", "scratch-mlp", "--out"]
    assert main([*args, str(tmp_path / "lenient")]) == 0  # the miss is in the report, not in the exit status
    assert main([*args, str(tmp_path / "strict"), "--strict"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "jaxdl reproduce: 1 judged claims miss their target (--strict): scratch-mlp"
    )


@pytest.mark.parametrize("second_starts", ["while the first writes", "after the first ended"])
def test_a_second_tour_into_a_report_folder_is_refused_and_the_first_report_stands(
    second_starts, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "r"
    started, finish = threading.Event(), threading.Event()

    def slow_good_run(name, *args, **kwargs):
        started.set()
        assert finish.wait(60)
        return "", {"max_loss_curve_gap": 0.0}

    first = threading.Thread(target=reproduce_lib.reproduce, args=(out,), kwargs={
        "only": ["scratch-mlp"], "runner": slow_good_run, "log": lambda line: None})  # fmt: skip
    first.start()
    assert started.wait(60)
    if second_starts == "after the first ended":
        finish.set()
        first.join()
    # the second tour would fail every run: it must not get as far as writing a report
    monkeypatch.setattr(reproduce_lib, "run_experiment", lambda *a, **k: (_ for _ in ()).throw(JaxdlError("boom")))
    assert main(["reproduce", "--only", "scratch-mlp", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    if second_starts == "while the first writes":
        assert f"--out {out} is in use by process {os.getpid()} (another jaxdl reproduce)" in err
        assert not (out / "results.json").exists()
        finish.set()
        first.join()
    else:
        assert "already holds a report" in err
    (row,) = reproduce_lib.read_results(out)["rows"]
    assert row["status"] == "meets"  # the first tour's report, whole
    assert not (out / ".jaxdl.lock").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--only", "nope"], "unknown run 'nope' for --only"),
        (["--data-dir", "/no/such/dir"], "--data-dir /no/such/dir is not a directory"),
    ],
)
def test_bad_requests_are_one_line(args, message, tmp_path, capsys):
    assert main(["reproduce", "--quick", *args, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_an_existing_report_is_not_overwritten(report, capsys):
    before = (report / "results.json").read_text()
    assert main(["reproduce", "--quick", "--only", "scratch-mlp", "--out", str(report)]) == 2
    assert "already holds a report" in capsys.readouterr().err
    assert (report / "results.json").read_text() == before


def test_readme_table_is_generated_from_the_saved_full_run(tmp_path, load_script):
    readme_table = load_script("readme_table")
    saved = ROOT / "scripts" / "readme_results.json"
    results = reproduce_lib.read_results(saved)
    assert not results["quick"]
    assert readme_table.main([str(saved), "--check"]) == 0  # README.md holds exactly the generated table
    # A figure typed into the README by hand is caught.
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    row = results["rows"][0]
    readme.write_text(text.replace(f"| {row['jaxdl']} |", "| 99.99% |", 1))
    assert readme_table.main([str(saved), "--readme", str(readme), "--check"]) == 1
    assert readme_table.main([str(saved), "--readme", str(readme)]) == 0
    assert readme.read_text() == text


def test_bad_results_file_is_one_line(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"rows": []}))
    with pytest.raises(JaxdlError, match="not a jaxdl reproduce results file"):
        reproduce_lib.read_results(bad)
    bad.write_text("{")
    with pytest.raises(JaxdlError, match="is not valid JSON"):
        reproduce_lib.read_results(bad)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_page_in_a_real_browser(report):
    """Every figure decodes, no console error; the screenshot is kept beside the page."""
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    messages = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            page.goto((report / "index.html").as_uri())
            page.wait_for_function("document.body.dataset.figuresLoaded !== undefined")
            figures = page.evaluate("[document.body.dataset.figures, document.body.dataset.figuresLoaded]")
            sizes = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
            page.screenshot(path=str(report / "screenshot.png"), full_page=True)
        finally:
            browser.close()
    assert figures[0] == figures[1] == str(len(list((report / "runs").glob("*/*.png"))))
    assert min(sizes) > 100
    assert not [m for m in messages if m.startswith(("error", "pageerror"))], messages
    assert (report / "screenshot.png").stat().st_size > 10_000


def test_training_claims_are_judged_on_the_mean_and_shown_with_their_interval(tmp_path):
    from jaxdl import stats

    calls = []

    def stand_in(name, settings, **kwargs):  # what --seeds 2 of regularization reports, made up
        calls.append(settings)
        gains = {"dropout_gain": [0.05, 0.07], "early_stopping_gain": [0.1, -0.02]}
        metrics = {k: sum(v) / 2 for k, v in gains.items()}
        return kwargs["out"], RunResult(metrics, intervals={k: stats.interval(v) for k, v in gains.items()})

    reproduce_lib.reproduce(tmp_path / "r", quick=True, only=["regularization"], runner=stand_in, log=lambda s: None)
    assert calls == [["epochs=20", "seeds=2"]]  # the run's quick settings and seeds
    rows = reproduce_lib.read_results(tmp_path / "r")["rows"]
    assert rows[0]["value"] == pytest.approx(0.06) and rows[0]["n"] == 2
    assert rows[0]["jaxdl"] == "+6.00% +- 12.71% (N=2)"  # t(0.975, 1) = 12.71, s = 1.41%
    assert rows[1]["jaxdl"].startswith("+4.00% +- ") and rows[1]["status"] == "quick"
    full = [r for r in reproduce_lib.tour() if r.name in ("cifar10-mlp", "mnist-vae", "regularization")]
    assert all(r.run.seeds >= 4 for r in full)


def test_a_figure_the_run_recorded_as_none_reads_none_recorded_not_nan():
    from jaxdl.claims import Claim, Run

    claim = Claim(source="tutorial 1", statement="seconds to the target", tutorial="", metric="seconds_to_target",
                  fmt="{:.1f} s")  # fmt: skip
    tour_run = reproduce_lib.TourRun("cifar10-speedrun", Run(name="speedrun", claims=(claim,)))
    outcome = {"status": "ran", "metrics": RunResult(figures={"seconds_to_target": None})}
    row = reproduce_lib._row(tour_run, claim, False, outcome)
    assert row["jaxdl"] == "none recorded" and row["status"] == "measured"
    outcome = {"status": "ran", "metrics": RunResult(figures={"seconds_to_target": 84.25})}
    assert reproduce_lib._row(tour_run, claim, False, outcome)["jaxdl"] == "84.2 s"
