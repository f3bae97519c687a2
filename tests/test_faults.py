"""Faults of the machine, injected: damaged checkpoints, writes that fail, hostile images, SIGTERM, two writers.

Each test checks what a user sees (one line, the exit status, no traceback) and that
nothing already written was lost or changed.
"""

import contextlib
import errno
import gzip
import hashlib
import io
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time

import jax
import numpy as np
import optax
import pytest
from PIL import Image

from jaxdl import data as D
from jaxdl.cli import main
from jaxdl.data.catalog import CIFAR10_CLASSES
from jaxdl.errors import JaxdlError
from jaxdl.locks import FileLock
from jaxdl.models.classifiers import SmallMLP
from jaxdl.results import RunResult
from jaxdl.rundir import RunDir, read_history, read_json
from jaxdl.train.fit import ChunkSizer, fit
from jaxdl.train.state import init_state
from jaxdl.train.task import Task, classification_loss

pytestmark = pytest.mark.xla_o0  # properties of the code, not of XLA's machine code (tests/conftest.py)
TIMINGS = ("seconds", "examples_per_second", "compile_seconds", "train_seconds", "seconds_per_epoch", "compile")
JAXDL = [sys.executable, "-m", "jaxdl.cli"]


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDL_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def digits():
    ds = D.load("digits", "train")
    return {"inputs": ds.inputs[:128], "labels": ds.labels[:128]}


@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory, image_folder):
    return image_folder(tmp_path_factory.mktemp("mnist"), [str(d) for d in range(10)], 28, "L", {"train": 3, "test": 2})


def _fit(digits, out, resume=False, epochs=3, log=None):
    task = Task(SmallMLP(), classification_loss, _unit)
    state, key = init_state(task, optax.adam(1e-2), digits, jax.random.key(0))
    run_dir = RunDir(out, resume=resume, overwrite=not resume)
    run_dir.write_json("config.json", {})
    try:
        return fit(task, state, digits, epochs=epochs, batch_size=32, key=key, run_dir=run_dir, keep_checkpoints=3,
                   resume=resume, log=log or (lambda s: None))  # fmt: skip
    finally:
        run_dir.close()


def _unit(batch, key, train):
    return {**batch, "inputs": D.normalize(batch["inputs"], "unit")}


def _tree_digest(root):
    """SHA-256 of every file's path and bytes under ``root``."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _damage(checkpoint_dir, how):
    files = sorted(p for p in checkpoint_dir.rglob("*") if p.is_file() and p.parent.name == "d")
    assert files, checkpoint_dir
    for path in files:
        data = path.read_bytes()
        if how == "truncate":
            path.write_bytes(data[: len(data) // 3])
        elif how == "flip":
            path.write_bytes(data[:-9] + bytes([data[-9] ^ 0x5A]) + data[-8:])
        else:
            path.unlink()


# -- damaged checkpoints ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncate", "flip", "delete"])
def test_resume_falls_back_past_a_damaged_newest_checkpoint(digits, tmp_path, how):
    straight = _fit(digits, tmp_path / "straight")
    _fit(digits, tmp_path / "cut")
    checkpoints = tmp_path / "cut" / "checkpoints"
    assert sorted(int(p.name) for p in checkpoints.iterdir()) == [4, 8, 12]  # 4 steps per epoch
    _damage(checkpoints / "12", how)
    damaged = _tree_digest(checkpoints / "12")
    lines = []
    resumed = _fit(digits, tmp_path / "cut", resume=True, log=lines.append)
    assert lines[0].startswith(f"checkpoint 12 in {checkpoints} is damaged (")
    assert lines[1] == f"moved the damaged checkpoint 12 to {checkpoints}-damaged/12; resuming from checkpoint 8"
    assert lines[2].startswith("resumed from checkpoint 8 (end of epoch 2)")
    assert _tree_digest(tmp_path / "cut" / "checkpoints-damaged" / "12") == damaged  # kept as it was
    assert resumed.epochs_run == 1
    for a, b in zip(jax.tree.leaves(straight.state.params), jax.tree.leaves(resumed.state.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_resume_with_every_checkpoint_damaged_stops_and_moves_nothing(digits, tmp_path):
    _fit(digits, tmp_path / "r")
    checkpoints = tmp_path / "r" / "checkpoints"
    for step in (4, 8, 12):
        _damage(checkpoints / str(step), "truncate")
    before = _tree_digest(tmp_path / "r")
    with pytest.raises(JaxdlError, match=r"every checkpoint in .* is damaged \(steps 12, 8, 4\); start again"):
        _fit(digits, tmp_path / "r", resume=True)
    assert _tree_digest(tmp_path / "r") == before


# -- writes that fail ------------------------------------------------------------------------------------


# `jaxdl ARGS` in a process whose writes past byte LIMIT fail (no preexec_fn: forking JAX's process may deadlock)
LIMITED_JAXDL = [sys.executable, "-c", "import resource, runpy, sys; "
                 "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY)); "
                 "sys.argv = ['jaxdl', *sys.argv[2:]]; runpy.run_module('jaxdl.cli', run_name='__main__')"]  # fmt: skip


@pytest.mark.slow
def test_a_full_disk_while_figures_are_written_gives_one_line_and_keeps_the_written_files(tmp_path):
    # Writes past 20 kB fail (EFBIG), as a disk that fills up after the small JSON files would.
    out = tmp_path / "run"
    args = ["run", "blobs", "--out", str(out), "--set", "epochs=50", "--set", "seeds=3", "--set", "log_every=25"]
    done = subprocess.run([*LIMITED_JAXDL, "20000", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"jaxdl: error: cannot write {out}/") and ".png: File too large;" in done.stderr
    assert read_json(out / "config.json")["experiment"] == "blobs"  # complete JSON, written before
    assert len(read_history(out / "history.jsonl")) == 50  # every epoch's line, whole
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no partial files left


def test_a_history_line_that_cannot_be_written_leaves_the_history_as_it_was(tmp_path, monkeypatch):
    run_dir = RunDir(tmp_path / "r")
    run_dir.append_history([{"epoch": 1, "loss": 0.5}])
    before = (tmp_path / "r" / "history.jsonl").read_bytes()
    write = os.write

    def write_part_then_fill_the_disk(fd, data):
        if len(data) > 20:
            return write(fd, data[:20])  # part of the line reaches the disk...
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # ...then it is full

    monkeypatch.setattr(os, "write", write_part_then_fill_the_disk)
    with pytest.raises(JaxdlError, match=r"cannot write .*history.jsonl: No space left on device; files already"):
        run_dir.append_history([{"epoch": 2, "loss": 0.25}])
    monkeypatch.undo()
    assert (tmp_path / "r" / "history.jsonl").read_bytes() == before


SAVE_AT_STEP_8 = """
import resource, sys, jax, optax
from jaxdl import data as D
from jaxdl.errors import JaxdlError
from jaxdl.models.classifiers import SmallMLP
from jaxdl.train.checkpoint import Checkpoints
from jaxdl.train.state import init_state
from jaxdl.train.task import Task, classification_loss

ds = D.load("digits", "train")
task = Task(SmallMLP(), classification_loss, lambda b, k, t: b)
state, _ = init_state(task, optax.adam(1e-2), {"inputs": ds.inputs[:8], "labels": ds.labels[:8]}, jax.random.key(0))
checkpoints = Checkpoints(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))  # writes past it fail
try:
    checkpoints.save(int(sys.argv[3]), state, {"epoch": 1, "history": [], "early_stopping": {}})
except JaxdlError as e:
    sys.exit(str(e))
"""


@pytest.mark.parametrize(
    ("error", "logged"),
    [
        (ValueError('OUT_OF_RANGE: Error writing "key/0": File too large [os_error_code=27]'), False),
        (OSError(errno.ENOSPC, "No space left on device"), False),
        (ValueError("a bug, not a failed write"), True),
    ],
)
def test_a_failed_writes_unretrieved_futures_are_not_logged_again(caplog, error, logged):
    # CI once printed "_GatheringFuture exception was never retrieved" after the one-line error above:
    # which future asyncio reports depends on the order an Orbax save's writes fail in. A real
    # _GatheringFuture is made to fail unretrieved here, and collected.
    import asyncio
    import gc

    from jaxdl.train.checkpoint import _echoes_of_a_failure_quiet

    with contextlib.suppress(RuntimeError), _echoes_of_a_failure_quiet():  # as around a save that fails
        raise RuntimeError("the save failed")

    async def fail():
        raise error

    async def orphan():
        asyncio.gather(fail())  # never awaited: its exception is never retrieved
        await asyncio.sleep(0.01)

    loop = asyncio.new_event_loop()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.run_until_complete(orphan())
        loop.close()
        gc.collect()
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any("_GatheringFuture exception was never retrieved" in m for m in messages) == logged, messages


def _raised_while_handling_a_failed_write() -> RuntimeError:
    try:
        raise OSError(errno.EFBIG, "File too large")
    except OSError:
        try:
            raise RuntimeError("raised while handling it")  # its implicit __context__ is the OSError
        except RuntimeError as e:
            return e


@pytest.mark.parametrize(
    ("error", "logged"),
    [
        (OSError(errno.EFBIG, "File too large"), False),
        (_raised_while_handling_a_failed_write(), False),
        (ValueError("a bug, not a failed write"), True),
    ],
)
def test_orbaxs_thread_reporting_a_failed_write_after_the_save_raised_is_not_logged_again(caplog, error, logged):
    # CI once printed Orbax's "_SignalingThread.run() raised an exception: [Errno 27] File too large" (absl,
    # with its traceback) after the one-line error: its background thread logs the failed write whenever it
    # gets to it, after the save has raised. Here it logs as Orbax's thread does.
    from absl import logging as absl_logging

    from jaxdl.train.checkpoint import _echoes_of_a_failure_quiet

    with contextlib.suppress(RuntimeError), _echoes_of_a_failure_quiet():  # as around a save that fails
        raise RuntimeError("the save failed")
    with caplog.at_level(logging.ERROR, logger="absl"):
        try:
            raise error
        except BaseException as e:
            absl_logging.exception(
                "[process=%d][thread=%s][operation_id=%s] _SignalingThread.run() raised an exception: %s",
                0, "array_type_handler", 1, e,
            )  # fmt: skip
    messages = [r.getMessage() for r in caplog.records if r.name == "absl"]
    assert any("_SignalingThread.run() raised an exception" in m for m in messages) == logged, messages


@pytest.mark.slow
def test_a_checkpoint_that_cannot_be_written_keeps_the_earlier_ones(tmp_path):
    # In a process of its own: the file-size limit must not stop this one's writes (pytest's log).
    checkpoints = tmp_path / "checkpoints"
    save = [sys.executable, "-c", SAVE_AT_STEP_8]
    assert subprocess.run([*save, str(2**40), str(checkpoints), "4"], timeout=300).returncode == 0
    before = _tree_digest(checkpoints / "4")
    done = subprocess.run([*save, "300", str(checkpoints), "8"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    expected = f"cannot write checkpoint 8 in {checkpoints}: File too large; the earlier checkpoints are kept\n"
    assert done.stderr == expected
    assert [p.name for p in checkpoints.iterdir() if p.name.isdigit()] == ["4"]
    assert _tree_digest(checkpoints / "4") == before


def test_an_unwritable_out_gives_one_line(tmp_path, capsys):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    if os.access(tmp_path / "ro", os.W_OK):  # root ignores permissions: a file in the way instead
        (tmp_path / "ro").chmod(0o700)
        (tmp_path / "ro" / "run").write_text("a file")
        target = tmp_path / "ro" / "run" / "inner"
    else:
        target = tmp_path / "ro" / "run"
    assert main(["run", "blobs", "--out", str(target), "--set", "epochs=5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"jaxdl: error: cannot create --out {target}: ")


# -- hostile and broken images ---------------------------------------------------------------------------


def _png(size, mode="RGB"):
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


def _cifar_folder(root, odd_one: bytes):
    for cls in CIFAR10_CLASSES:
        (root / "train" / cls).mkdir(parents=True)
        (root / "train" / cls / "0.png").write_bytes(_png((32, 32)))
    (root / "train" / "cat" / "1.png").write_bytes(odd_one)
    return root


@pytest.mark.parametrize(
    "image, message",
    [
        (lambda: _png((16000, 16000), "L"), r"1\.png: refusing a possible decompression bomb \(Image size \(256000000"),
        (lambda: _png((32, 9000)), r"1\.png: image is 32x9000 mode RGB, expected 32x32 mode RGB"),
        (lambda: _png((32, 32))[:60], r"1\.png: unreadable or truncated image"),
        (lambda: b"GIF89a" + bytes(range(40)), r"1\.png: (not an image Pillow can read|unreadable or truncated image)"),
    ],
    ids=["bomb", "header-size", "truncated", "garbage"],
)
def test_hostile_images_stop_with_one_line_naming_the_file(tmp_path, capsys, image, message):
    root = _cifar_folder(tmp_path / "data", image())
    start = time.perf_counter()
    assert main(["data", "info", "cifar10", "--data", str(root), "--split", "train"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("jaxdl: error: ") and re.search(message, err), err
    assert time.perf_counter() - start < 20  # refused from the header, not decoded


def test_archive_members_too_large_to_be_images_are_refused_before_reading(tmp_path):
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("train/cat/huge.png")
        info.size = 65 * 2**20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    with pytest.raises(JaxdlError, match=r"huge\.png: 68157440 bytes, more than the 64 MiB an image may have"):
        D.load("imagefolder", "train", data=str(archive))


def test_a_gzipped_idx_file_cannot_expand_past_its_header(tmp_path):
    # the header promises 2 images of 2x2; the stream holds a megabyte more
    payload = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") * 3 + bytes(8) + bytes(2**20)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(payload))
    labels = bytes([0, 0, 8, 1]) + (2).to_bytes(4, "big") + bytes(2)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(JaxdlError, match=r"promises 8 bytes of data for shape \(2, 2, 2\), found more"):
        D.load("mnist", "train", data=str(tmp_path))
    huge = bytes([0, 0, 8, 3]) + (60000).to_bytes(4, "big") + (4096).to_bytes(4, "big") * 2
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(huge))
    with pytest.raises(JaxdlError, match=r"IDX header promises 1006632960000 bytes .*; refusing it"):
        D.load("mnist", "train", data=str(tmp_path))


# -- preemption ------------------------------------------------------------------------------------------


def _mnist_args(folder, out, *extra):
    settings = ["n_train=24", "n_val=8", "batch_size=2", "epochs=4", "chunk_seconds=1e-6", *extra]
    return ["run", "mnist-mlp", "--data", str(folder), "--out", str(out), *(a for s in settings for a in ("--set", s))]


def _without_timings(record):
    return {k: v for k, v in record.items() if not k.endswith(TIMINGS)}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigterm_at_a_random_step_then_resume_ends_equal_to_an_uncut_run(mnist_folder, tmp_path, monkeypatch,
                                                                         capsys, seed):  # fmt: skip
    # 12 steps per epoch, 4 epochs; chunk_seconds this small makes every step a chunk, so the
    # signal, raised after a random chunk, lands at that step (in an epoch or at its end).
    assert main(_mnist_args(mnist_folder, tmp_path / "uncut")) == 0
    at = random.Random(seed).randrange(1, 47)
    observe, chunks_done = ChunkSizer.observe, []

    def observe_then_signal(self, steps, seconds):
        observe(self, steps, seconds)
        chunks_done.append(steps)
        if len(chunks_done) == at:
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(ChunkSizer, "observe", observe_then_signal)
    capsys.readouterr()
    assert main(_mnist_args(mnist_folder, tmp_path / "cut")) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    epoch, step = divmod(at, 12)
    where = f"epoch {epoch + 1}, step {step} of 12" if step else f"end of epoch {epoch}"
    assert err.count("\n") == 1, err
    assert err.startswith(f"jaxdl: stopped by SIGTERM at {where}; saved checkpoint {at} in ")
    command = (f"jaxdl run mnist-mlp --out {tmp_path / 'cut'} --set n_train=24 --set n_val=8 --set batch_size=2 "
               f"--set epochs=4 --set chunk_seconds=1e-6 --data {mnist_folder} --resume")  # fmt: skip
    assert err.rstrip().endswith(f"; to finish, run: {command}")
    assert not (tmp_path / "cut" / "metrics.json").exists()
    assert len(read_history(tmp_path / "cut" / "history.jsonl")) == epoch
    monkeypatch.setattr(ChunkSizer, "observe", observe)
    assert main([*_mnist_args(mnist_folder, tmp_path / "cut"), "--resume"]) == 0
    assert f"resumed from checkpoint {at} ({where})" in capsys.readouterr().out
    uncut, resumed = (RunResult.read(tmp_path / d) for d in ("uncut", "cut"))
    assert _without_timings(resumed) == _without_timings(uncut)
    histories = [read_history(tmp_path / d / "history.jsonl") for d in ("uncut", "cut")]
    assert [_without_timings(r) for r in histories[1]] == [_without_timings(r) for r in histories[0]]


@pytest.mark.slow
def test_sigterm_from_outside_stops_a_run_in_one_line(mnist_folder, tmp_path):
    out = tmp_path / "r"
    args = _mnist_args(mnist_folder, out, "epochs=100000", "batch_size=1")
    # Without the compilation cache: a SIGTERM that lands while JAX writes a cache entry makes JAX warn
    # ("Error writing persistent compilation cache entry") before the stop's one line.
    env = {**os.environ, "JAXDL_COMPILATION_CACHE": "off"}
    process = subprocess.Popen([*JAXDL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 120
        while not (out / "history.jsonl").exists() or not (out / "history.jsonl").read_text():
            assert process.poll() is None and time.time() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert err.count("\n") == 1 and err.startswith("jaxdl: stopped by SIGTERM at ")
    assert f"; to finish, run: jaxdl run mnist-mlp --out {out} " in err
    assert len(read_history(out / "history.jsonl")) >= 1
    assert any(p.name.isdigit() for p in (out / "checkpoints").iterdir())


# -- two writers -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_writer_of_the_same_out_stops_naming_the_holder(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    holder = FileLock(out / ".jaxdl.lock")
    holder.acquire()
    try:
        for extra in ([], ["--resume"]):
            if extra:
                (out / "config.json").write_text('{"experiment": "mnist-mlp", "config": {}}')
            before = _tree_digest(out)
            done = subprocess.run([*JAXDL, "run", "mnist-mlp", "--out", str(out), *extra], capture_output=True,
                                  text=True, timeout=120)  # fmt: skip
            assert done.returncode == 2
            holder_line = (f"jaxdl: error: --out {out} is in use by process {os.getpid()} "
                           f"(lock file {out}/.jaxdl.lock); wait for that run to end or choose another\n")  # fmt: skip
            assert done.stderr == holder_line
            assert _tree_digest(out) == before
    finally:
        holder.release()


def test_a_second_process_building_the_same_cache_entry_waits_and_reuses_it(tmp_path, mnist_folder, capsys):
    first = D.load("mnist", "test", data=str(mnist_folder))  # writes the cache entry
    entry = next((tmp_path / "cache").glob("mnist-test-*.npz"))
    entry.unlink()
    lock = FileLock(entry.with_name(entry.name + ".lock"))
    lock.acquire()  # as if another process were writing the entry
    loaded = []
    reader = threading.Thread(target=lambda: loaded.append(D.load("mnist", "test", data=str(mnist_folder))))
    reader.start()
    time.sleep(1.0)
    assert reader.is_alive() and not loaded  # waiting, not decoding the data alongside
    lock.release()
    reader.join(timeout=60)
    assert loaded and np.array_equal(loaded[0].inputs, first.inputs)
    waited = f"jaxdl: waiting for process {os.getpid()}, which is writing the cache file {entry}"
    assert waited in capsys.readouterr().err


def test_a_signal_stops_the_whole_tour_not_only_its_run(tmp_path):
    from jaxdl import reproduce
    from jaxdl.errors import Stopped

    calls = []

    def runner(*args, **kwargs):
        calls.append(args)
        raise Stopped("stopped by SIGTERM at epoch 1, step 3 of 8; saved checkpoint 3 in X", signal.SIGTERM, "X")

    names = [t.name for t in reproduce.tour()][:2]
    with pytest.raises(Stopped):
        reproduce.reproduce(tmp_path / "report", quick=True, only=names, runner=runner)
    assert len(calls) == 1 and not (tmp_path / "report" / "results.json").exists()
