"""RunResult and metrics.json: a typed result that reads back to the same object, and the old flat files."""

import json

import pytest

from jaxdl import stats
from jaxdl.errors import JaxdlError
from jaxdl.results import FORMAT, Group, RunResult


def _replicated() -> RunResult:
    intervals = {"test_accuracy": stats.interval([0.5, 0.52])}
    return RunResult(
        {"test_accuracy": 0.51, "seeds": 2},
        intervals=intervals,
        replicas=[{"seed": 0, "diverged": False, "test_accuracy": 0.5}, {"seed": 1, "diverged": False,
                                                                          "test_accuracy": 0.52}],
        groups=[Group({}, intervals)],
        compile={"programs": 3},
    )  # fmt: skip


def test_metrics_json_reads_back_to_the_same_result(tmp_path):
    result = _replicated()
    (tmp_path / "metrics.json").write_text(json.dumps(result.to_json()))
    again = RunResult.read(tmp_path)
    assert again == result and again.to_json()["format"] == FORMAT
    assert again["test_accuracy"] == 0.51 and list(again) == ["test_accuracy", "seeds"]
    assert again != RunResult(dict(result.figures))  # the same figures without their intervals differ


def test_a_flat_metrics_json_of_format_1_is_read_with_its_structure_apart():
    old = {"test_accuracy": 0.51, "intervals": {"test_accuracy": {"mean": 0.51}}, "compile": {"programs": 3},
           "groups": [{"settings": {"lr": 0.1}, "intervals": {}}]}  # fmt: skip
    result = RunResult.from_json(old)
    assert result.figures == {"test_accuracy": 0.51}
    assert result.intervals == old["intervals"] and result.compile == {"programs": 3}
    assert result.groups == [Group({"lr": 0.1}, {})]


def test_a_newer_format_or_a_broken_file_is_refused_in_one_line(tmp_path):
    with pytest.raises(JaxdlError, match=f"metrics format 99 is newer than this jaxdl reads \\(format {FORMAT}\\)"):
        RunResult.from_json({"format": 99, "figures": {}})
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(JaxdlError, match="holds no run's figures"):
        RunResult.read(tmp_path)
    with pytest.raises(JaxdlError, match="cannot read the run's figures"):
        RunResult.read(tmp_path / "missing.json")


def test_an_experiments_dict_of_figures_may_not_hide_structure():
    assert RunResult.of({"loss": 1.0}) == RunResult({"loss": 1.0})
    with pytest.raises(TypeError, match=r"\['intervals'\]: return a RunResult"):
        RunResult.of({"loss": 1.0, "intervals": {}})
