"""JAX's persistent compilation cache under `jaxdl run`: the second run compiles nothing new."""

import os
import subprocess
import sys

import numpy as np
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


def test_backend_level_0_compiles_the_same_buffers_and_values():
    # what run_once and the one-step memory programs rely on: the backend's level leaves XLA's HLO passes
    # (and so its buffer assignment) alone, and the values agree to rounding
    import jax
    import jax.numpy as jnp

    def step(w, x):
        loss = lambda w: jnp.mean(jnp.tanh(x @ w[0]) @ w[1]) ** 2  # noqa: E731
        return jax.tree.map(lambda p, g: p - 0.1 * g, w, jax.grad(loss)(w))

    w = [jax.random.normal(jax.random.key(0), (32, 64)), jax.random.normal(jax.random.key(1), (64, 8))]
    x = jax.random.normal(jax.random.key(2), (16, 32))
    lowered = jax.jit(step).lower(w, x)
    default, level_0 = lowered.compile(), lowered.compile(compilation_cache.BACKEND_LEVEL_0)
    assert level_0.memory_analysis().temp_size_in_bytes == default.memory_analysis().temp_size_in_bytes
    for a, b in zip(compilation_cache.run_once(step, w, x), default(w, x), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_run_once_inside_a_trace_is_plain_jit_so_init_state_and_directions_can_be_traced():
    # jax.jit takes compiler options only for the outermost program; inside jit, grad or eval_shape the
    # library's run-once programs are part of the caller's
    import chex
    import jax
    import jax.numpy as jnp
    import optax

    from jaxdl import curvature
    from jaxdl.experiments.common import unit_pixels
    from jaxdl.models import SmallMLP
    from jaxdl.train import Task, classification_loss, init_state

    x = jnp.linspace(0.0, 1.0, 5)
    f = lambda x: 2 * jnp.sin(x)  # noqa: E731
    assert compilation_cache.level_0_options() == compilation_cache.BACKEND_LEVEL_0  # the CPU, outermost
    np.testing.assert_allclose(jax.jit(lambda x: compilation_cache.run_once(f, x))(x), f(x), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda x: compilation_cache.run_once(f, x).sum())(x), 2 * jnp.cos(x),
                               rtol=1e-6)  # fmt: skip
    data = {"inputs": np.zeros((4, 6, 6, 1), np.uint8), "labels": np.zeros(4, np.int32)}
    task = Task(SmallMLP(hidden=3), classification_loss, unit_pixels)
    eager, _ = init_state(task, optax.sgd(0.1), data, jax.random.key(0))
    traced = jax.eval_shape(lambda: init_state(task, optax.sgd(0.1), data, jax.random.key(0))[0])
    assert jax.tree.map(lambda a: (a.shape, a.dtype), traced.params) == jax.tree.map(
        lambda a: (a.shape, a.dtype), eager.params
    )
    inside = jax.jit(lambda p, k: compilation_cache.run_once(curvature.filter_normalized_direction, p, k))
    outside = curvature.filter_normalized_direction(eager.params, jax.random.key(1))
    chex.assert_trees_all_close(inside(eager.params, jax.random.key(1)), outside, rtol=1e-6)
