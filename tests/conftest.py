"""Strictness for the whole suite (implicit rank promotion is an error) and shared helpers."""

import importlib.util
import os
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

jax.config.update("jax_numpy_rank_promotion", "raise")
# The suite's in-process runs leave JAX's persistent compilation cache off (each test's cache
# folder is temporary); tests/test_compilation_cache.py turns it on in processes of its own.
os.environ["JAXDL_COMPILATION_CACHE"] = "off"


@pytest.fixture
def x64():
    """Runs a test with float64 enabled (gradient checks need it)."""
    with jax.enable_x64(True):
        yield


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
