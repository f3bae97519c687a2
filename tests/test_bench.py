"""scripts/bench.py: the benchmark runs and reports consistent figures (speed itself is not asserted)."""

import argparse
import json

import pytest


@pytest.fixture(scope="module")
def bench(load_script):
    return load_script("bench")


def test_small_mlp_row(bench):
    args = argparse.Namespace(steps=2, min_seconds=0.0, repeats=1, rounds=2, torch_python=None)
    task, tx, shape, batch, per_epoch = bench.workloads()["mnist-mlp"]
    row = bench.bench("mnist-mlp", task, tx, shape, batch, per_epoch, args)
    assert row["steps"] == 2 and len(row["examples_per_second_rounds"]) == 2
    assert row["seconds_per_epoch"] == pytest.approx(4096 / row["examples_per_second"])
    # a training step of 784-128-10 on 64 images: about 6 FLOPs per weight per image (forward and backward)
    assert 0.5 < row["gflop_per_step"] / (6 * 64 * (784 * 128 + 128 * 10) / 1e9) < 2
    assert row["achieved_gflops"] == pytest.approx(row["gflop_per_step"] * row["examples_per_second"] / batch)
    assert 0 < row["memory_mb"] < 100
    assert "speedup_over_torch" not in row


def test_min_seconds_lengthens_short_timings(bench):
    args = argparse.Namespace(steps=2, min_seconds=0.2, repeats=1, rounds=1, torch_python=None)
    task, tx, shape, batch, per_epoch = bench.workloads()["mnist-mlp"]
    assert bench.bench("mnist-mlp", task, tx, shape, batch, per_epoch, args)["steps"] > 2


def test_profile_breakdown_finds_the_small_mlps_products_and_optimizer(bench):
    task, tx, shape, batch, _ = bench.workloads()["mnist-mlp"]
    shares = bench.profile_breakdown(bench.EpochTimer(task, tx, shape, batch, 20), repeats=1)
    assert sum(shares.values()) == pytest.approx(1)
    assert shares["dense layers: matrix products"] > 0.2  # 784x128 products are most of its arithmetic
    assert "optimizer" in shares and not any(name.startswith("convolutions") for name in shares)


@pytest.mark.parametrize("text", ["0", "-3"])
def test_counts_below_one_are_refused_in_one_line(bench, text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"must be at least 1, got {text}"):
        bench.positive_int(text)
    assert bench.positive_int("2") == 2


def test_linen_and_nnx_side_by_side(bench):
    args = argparse.Namespace(steps=2, min_seconds=0.0, repeats=1, rounds=2, torch_python=None)
    task, tx, shape, batch, per_epoch = bench.workloads()["mnist-mlp"]
    linen, twin = bench.bench_apis("mnist-mlp", task, tx, shape, batch, per_epoch, args, ("linen", "nnx"))
    assert (linen["model"], twin["model"]) == ("mnist-mlp (linen)", "mnist-mlp (nnx)")
    assert twin["steps"] == linen["steps"] and "over_linen" not in linen
    # the same program: the twin is merged inside the compiled step, so XLA sees the same arithmetic
    assert twin["gflop_per_step"] == pytest.approx(linen["gflop_per_step"])
    assert twin["same_program_as_linen"] is True  # the compiled HLO, source locations aside
    rounds = zip(twin["examples_per_second_rounds"], linen["examples_per_second_rounds"], strict=True)
    paired = [n / r for n, r in rounds]
    assert twin["over_linen_rounds"] == pytest.approx(paired)


def test_nnx_overhead_times_each_way_of_calling_a_step(bench):
    task, *_ = bench.workloads()["mnist-mlp"]
    cost = bench.nnx_overhead(task, (28, 28, 1), calls=5)
    assert set(cost) == {"split_merge_us", "nnx_jit_us", "jax_jit_us"}
    assert all(0 < us < 1e6 for us in cost.values())


def test_suite_compiles_report_counts_repeated_programs_and_sums_by_compile_time(load_script, tmp_path):
    report = load_script("suite_compiles").report
    a, b = "tests/test_a.py::one", "tests/test_b.py::two"
    (tmp_path / "compiles-gw0.json").write_text(json.dumps([[a, 0.06, "p1"], [a, 2.0, "p2"]]))
    (tmp_path / "compiles-gw1.json").write_text(json.dumps([[b, 0.3, "p1"], [None, 0.1, "p3"]]))
    text = report(tmp_path, top=5)
    # p1 compiled in both workers: its second compile is what a shared cache could have saved
    assert text.splitlines()[0] == "4 compiles, 2.5 s; 3 distinct programs; 0.3 s compiled a program again"
    assert "| 0-0.1 s | 1 | 0.1 |" in text and "| 0.1-0.25 s | 1 | 0.1 |" in text and "| >= 1 s | 1 | 2.0 |" in text
    assert "| 2.1 | tests/test_a.py |" in text and "| 0.1 | (outside a test) |" in text


def test_suite_compiles_without_records_says_so_in_one_line(load_script, tmp_path, capsys):
    assert load_script("suite_compiles").main([str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"suite_compiles.py: no compiles-*.json in {tmp_path}\n"
