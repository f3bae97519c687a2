"""JAX's persistent compilation cache under `jaxdl run`: the second run compiles nothing new."""

import os
import subprocess
import sys

import pytest

from jaxdl import compilation_cache
from jaxdl.results import RunResult


def _run_blobs(out, cache, extra_env=None):
    env = {**os.environ, "JAXDL_COMPILATION_CACHE": str(cache), **(extra_env or {})}
    args = ["run", "blobs", "--out", str(out), "--set", "epochs=50", "--set", "seeds=3", "--set", "log_every=25"]
    done = subprocess.run([sys.executable, "-m", "jaxdl.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return RunResult.read(out)


@pytest.mark.slow
def test_a_second_run_loads_every_program_the_first_compiled(tmp_path):
    cache = tmp_path / "xla"
    first = _run_blobs(tmp_path / "a", cache)
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) >= 5  # the training scans, the initial draw, the loss, the figure's predictions
    second = _run_blobs(tmp_path / "b", cache)
    assert sorted(p.name for p in cache.iterdir()) == entries  # all hits: nothing new compiled
    assert second["train_accuracy"] == first["train_accuracy"]
    # what each run reports of its compiling: the second one loaded every program
    assert first.compile["programs"] >= 5 and first.compile["cache_hits"] == 0
    assert second.compile["cache_hits"] == second.compile["programs"] == first.compile["programs"]
    assert second.compile["xla_s"] < first.compile["xla_s"]


@pytest.mark.slow
def test_the_cache_can_be_turned_off(tmp_path):
    _run_blobs(tmp_path / "a", tmp_path / "xla", {"JAXDL_COMPILATION_CACHE": "off"})
    assert not (tmp_path / "xla").exists()


def test_trim_deletes_the_oldest_entries_down_to_the_bound_and_nothing_else(tmp_path):
    for i in range(5):  # five 100-byte entries, written a second apart
        entry = tmp_path / f"key{i}-cache"
        entry.write_bytes(b"x" * 100)
        os.utime(entry, ns=(i * 10**9, i * 10**9))
    (tmp_path / "key0-atime").write_bytes(b"12345678")  # JAX's bounded mode's bookkeeping
    (tmp_path / "notes.txt").write_text("the user's own")
    assert compilation_cache.trim(tmp_path, max_bytes=250) == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key3-cache", "key4-cache", "notes.txt"]
    assert compilation_cache.trim(tmp_path, max_bytes=250) == 0
    assert compilation_cache.trim(tmp_path / "missing") == 0
