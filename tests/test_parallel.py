"""Data parallelism: 1 vs 4 devices, 2 processes vs 1, mixed precision, and the errors.

The device count and the distributed runtime are fixed when JAX starts, so
the multi-device runs happen in subprocesses (tests/parallel_worker.py) with
fake CPU devices; this process keeps its single device.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import optax
import pytest

from jaxdl import data as D
from jaxdl.errors import JaxdlError
from jaxdl.experiments.common import unit_pixels
from jaxdl.models import SmallMLP
from jaxdl.train import parallel
from jaxdl.train.fit import fit
from jaxdl.train.state import init_state
from jaxdl.train.task import Task, classification_loss

pytestmark = pytest.mark.xla_o0  # properties on tiny inputs: quicker to compile (tests/conftest.py)

WORKER = Path(__file__).with_name("parallel_worker.py")
# 8 SGD steps (lr 0.01, momentum 0.9) amplify the ~1e-7 rounding differences of a
# different reduction order to at most ~4e-6 (batch norm's running variance); a wrong
# batch-norm statistic or a different dropout mask moves parameters by 1e-2 or more.
ATOL = 1e-4


def _worker(out: Path, fake_devices: int, *args: str) -> subprocess.Popen:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={fake_devices}"}
    env.pop("JAX_ENABLE_X64", None)
    return subprocess.Popen([sys.executable, str(WORKER), str(out), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _wait(*procs: subprocess.Popen) -> None:
    for proc in procs:
        output, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, output[-3000:]


def _params(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def _assert_same_training(a: dict, b: dict) -> None:
    for name in ("mlp", "cnn"):
        np.testing.assert_allclose(a[f"{name}/losses"], b[f"{name}/losses"], atol=ATOL)
    keys = [k for k in a if "/params/" in k or "/batch_stats/" in k]
    assert keys and set(keys) == {k for k in b if "/params/" in k or "/batch_stats/" in k}
    for key in keys:
        np.testing.assert_allclose(a[key], b[key], atol=ATOL, err_msg=key)


@pytest.fixture(scope="module")
def one_and_four(tmp_path_factory):
    out = tmp_path_factory.mktemp("parallel")
    _wait(_worker(out / "one.npz", 4, "--devices", "1"), _worker(out / "four.npz", 4, "--devices", "4"))
    return _params(out / "one.npz"), _params(out / "four.npz")


@pytest.mark.slow
def test_four_devices_train_like_one(one_and_four):
    one, four = one_and_four
    assert int(one["devices"]) == 1 and int(four["devices"]) == 4
    _assert_same_training(one, four)
    # The training run moved the parameters far more than the tolerance.
    assert one["cnn/losses"][0] - one["cnn/losses"][1] > 10 * ATOL
    for name in ("mlp", "cnn"):
        assert int(four[f"{name}/traces"]) == 1  # two more epochs, no recompilation


@pytest.mark.slow
def test_replicas_split_over_four_devices_train_like_one_device(tmp_path):
    # 4 seeds as vmapped replicas; with 4 devices each device trains one replica (the seed axis is
    # the mesh's), every device holding the whole data set.
    _wait(_worker(tmp_path / "one.npz", 4, "--devices", "1", "--replicas", "4"),
          _worker(tmp_path / "four.npz", 4, "--devices", "4", "--replicas", "4"))  # fmt: skip
    one, four = _params(tmp_path / "one.npz"), _params(tmp_path / "four.npz")
    assert int(four["devices"]) == 4 and one["cnn/params/fc2/kernel"].shape[0] == 4
    _assert_same_training(one, four)
    assert not np.allclose(one["cnn/params/fc2/kernel"][0], one["cnn/params/fc2/kernel"][1])  # seeds differ
    assert int(four["cnn/traces"]) == 1


@pytest.mark.slow
def test_two_processes_agree_with_one(one_and_four, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    procs = [_worker(tmp_path / "two.npz", 2, *common, "--process-id", str(i)) for i in range(2)]
    _wait(*procs)
    two = _params(tmp_path / "two.npz")
    assert int(two["processes"]) == 2 and int(two["devices"]) == 4
    _assert_same_training(one_and_four[1], two)
    _assert_same_training(one_and_four[0], two)


def test_mixed_precision_trains_with_float32_parameters():
    ds = D.load("digits", "train")
    data = {"inputs": ds.inputs[:512], "labels": ds.labels[:512]}
    task = Task(SmallMLP(), classification_loss, unit_pixels, compute_dtype="bfloat16")
    state, shuffle_key = init_state(task, optax.adam(1e-2), data, jax.random.key(0))
    result = fit(task, state, data, epochs=4, batch_size=32, key=shuffle_key, log=lambda s: None)
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert {x.dtype for x in jax.tree.leaves(result.state.params)} == {np.dtype(np.float32)}
    assert {x.dtype for x in jax.tree.leaves(result.state.opt_state) if x.ndim} == {np.dtype(np.float32)}


def test_unsupported_precision_is_refused():
    with pytest.raises(ValueError, match="compute_dtype must be float32 or bfloat16"):
        Task(SmallMLP(), compute_dtype="float16")


def test_batch_size_must_divide_over_the_devices():
    with pytest.raises(JaxdlError, match="batch_size 100 does not divide over 3 devices"):
        parallel.check_batch_size(100, SimpleNamespace(size=3))
    parallel.check_batch_size(99, SimpleNamespace(size=3))


def test_asking_for_more_devices_than_exist_names_the_flag():
    with pytest.raises(JaxdlError, match=r"devices=5, but JAX sees 1 cpu device.*device_count"):
        parallel.data_mesh(5)
