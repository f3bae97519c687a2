"""Strictness for the whole suite (implicit rank promotion is an error) and shared helpers."""

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from jaxdl import compilation_cache
from jaxdl.locks import FileLock

ROOT = Path(__file__).resolve().parent.parent

jax.config.update("jax_numpy_rank_promotion", "raise")
# Batches are arguments of compiled programs, never constants in them: XLA folds constants at compile
# time (minutes for a batch of images through a CNN). JAX warns when a program captures more than this
# many bytes, and pyproject.toml's filterwarnings makes that warning an error in the suite; the smallest
# experiment settings stay below 1 MiB of legitimate constants.
CAPTURED_CONSTANTS_LIMIT = 2**20
jax.config.update("jax_captured_constants_warn_bytes", CAPTURED_CONSTANTS_LIMIT)
os.environ["JAX_CAPTURED_CONSTANTS_WARN_BYTES"] = str(CAPTURED_CONSTANTS_LIMIT)  # the suite's subprocesses too


def pytest_configure(config):
    """One persistent compilation cache for the whole test run, made fresh for it: tests that build
    the same XLA programs (in this process, in xdist's workers and in the CLI tests' subprocesses)
    load them instead of compiling again. The first process makes the folder; xdist's workers and
    the subprocesses inherit it through the environment.
    ``JAXDL_COMPILATION_CACHE=off`` (or a folder of your own) in the environment stands."""
    for env, prefix in ((CACHE_ENV, "jaxdl-test-xla-"), (SHARED_ENV, "jaxdl-test-shared-")):
        if env not in os.environ:
            folder = tempfile.mkdtemp(prefix=prefix)
            os.environ[env] = folder
            config.add_cleanup(lambda folder=folder: shutil.rmtree(folder, ignore_errors=True))
    compilation_cache.enable = _enable_for_tests  # the in-process `jaxdl run`s turn it on again
    compilation_cache.enable()


_enable = compilation_cache.enable


def _enable_for_tests():
    """jaxdl's cache, keeping only programs that took a quarter of a second or more to compile: writing
    every small one cost a test run more than loading them saved, and those above compile again in
    other tests and workers (measured: see docs/performance.md)."""
    folder = _enable()
    if folder is not None:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.25)
    return folder


CACHE_ENV = "JAXDL_COMPILATION_CACHE"  # jaxdl.compilation_cache.ENV: what `jaxdl run` reads
SHARED_ENV = "JAXDL_TEST_SHARED"  # a folder of the whole test run, shared by pytest-xdist's workers


def built_once(name: str, build) -> Path:
    """The folder ``shared/name`` that ``build(folder)`` fills once for the whole test run: whichever
    xdist worker asks first builds it, and the others wait for it and reuse it (a module-scoped fixture
    would run once per worker). A build that raised is tried again by the next to ask."""
    shared = Path(os.environ[SHARED_ENV])
    folder = shared / name
    lock = FileLock(shared / f"{name}.lock")
    lock.acquire(wait=True)
    try:
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            (folder / ".built").touch()
    finally:
        lock.release()
    return folder


XLA_O0_ENV = "JAX_DISABLE_MOST_OPTIMIZATIONS"  # what jax reads at import: the flag reaches subprocesses too


@pytest.fixture(scope="module", autouse=True)
def xla_backend_at_o0(request):
    """A module marked ``pytestmark = pytest.mark.xla_o0`` compiles with XLA's backend optimisations off
    (``jax_disable_most_optimizations``: LLVM at -O0), in this process and in its subprocesses.

    Those modules check properties on tiny inputs: derivatives against each other, one code path against
    another (replicas against single runs, resumed against uninterrupted, NNX against Linen, several devices
    against one), each side compiled alike. XLA's graph passes (fusion, simplification) run as always, so
    the programs are the ones users run, lowered by a quicker code generator; at these sizes they compile in
    about half the time and run in milliseconds either way (measured: docs/performance.md). test_experiments
    (every experiment at its smallest settings, through the command line in this process) and
    test_notebooks are marked too: the claims at the smallest settings and the cells that run and draw are
    properties of the code, not of the machine code; their runs take seconds, not milliseconds. So are
    test_own_images (a folder of one's own trains, the instruments measure) and test_faults (what a fault
    leaves behind). The modules that run the command line and the tour as a user does (test_cli,
    test_reproduce, test_compilation_cache, ...) stay at the default level (test_cli checks it)."""
    if request.node.get_closest_marker("xla_o0") is None:
        yield
        return
    before, env_before = jax.config.read("jax_disable_most_optimizations"), os.environ.get(XLA_O0_ENV)
    # the flag is not part of jit's in-memory cache key: a program compiled at one level must not serve
    # the other (the persistent cache keys on the compile options, so it keeps both)
    jax.clear_caches()
    jax.config.update("jax_disable_most_optimizations", True)
    os.environ[XLA_O0_ENV] = "true"
    try:
        yield
    finally:
        jax.clear_caches()
        jax.config.update("jax_disable_most_optimizations", before)
        if env_before is None:
            os.environ.pop(XLA_O0_ENV, None)
        else:
            os.environ[XLA_O0_ENV] = env_before


@pytest.fixture
def x64():
    """Runs a test in float64 (gradient checks need it), with XLA's backend optimisations off (LLVM at -O0).

    The float64 tests check maths (derivatives to second order, Hessians, estimators' statistics) in
    programs that no user runs, on inputs of a few hundred numbers: they compile in half the time at -O0
    and still run in milliseconds (measured: docs/performance.md). XLA's graph optimisations (fusion,
    simplification) run as always; float32 tests are at -O0 only in modules marked ``xla_o0``."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        with jax.enable_x64(True):
            yield
    finally:
        jax.config.update("jax_disable_most_optimizations", before)


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_script():
    """``load_script(name)``: a module from ``scripts/`` (not a package), imported by path."""
    return _load_script


def _image_folder(root, classes, size, mode, per_split):
    rng = np.random.default_rng(0)
    n = 0
    for split, count in per_split.items():
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for _ in range(count):
                shape = (size, size, 3) if mode == "RGB" else (size, size)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / split / cls / f"{n}.png")
                n += 1
    return root


@pytest.fixture(scope="session")
def image_folder():
    """``image_folder(root, classes, size, mode, {split: count})``: random images under root/split/class/N.png."""
    return _image_folder


def assert_figure(path, size, tolerance=0.3):
    """``path`` is a PNG that decodes, within ``tolerance`` of ``size`` (width, height) in pixels, and not blank:
    more than 3% of its pixels differ from the background (its most common colour), in more than 16 colours.
    (A scatter of a few points over its axes, the sparsest figure here, draws about 5%.)"""
    with Image.open(path) as image:
        assert image.format == "PNG", f"{path} is a {image.format}, not a PNG"
        pixels = np.asarray(image.convert("RGB"))
    height, width = pixels.shape[:2]
    for got, want, what in ((width, size[0], "wide"), (height, size[1], "high")):
        assert abs(got - want) <= tolerance * want, f"{path} is {got} pixels {what}, expected about {want}"
    colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    background = colours[np.argmax(counts)]
    drawn = np.mean(np.any(pixels != background, axis=-1))
    assert drawn > 0.03 and len(colours) > 16, f"{path} is blank ({drawn:.1%} drawn, {len(colours)} colours)"
