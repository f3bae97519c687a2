"""Honest timing: compile ahead of time, then time blocked calls of the compiled function."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax


def compile_ahead(jitted: Any, *args: Any) -> tuple[Callable[..., Any], float]:
    """Lowers and compiles a ``jax.jit`` function for ``args``; returns it and the seconds taken."""
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - start


def timed_call(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Calls ``fn`` and waits for its result on device; returns the result and the seconds."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def median_seconds(fn: Callable[..., Any], *args: Any, repeats: int = 5) -> float:
    """Median wall time of ``repeats`` blocked calls (call ``fn`` once before to warm up)."""
    return statistics.median(timed_call(fn, *args)[1] for _ in range(repeats))
