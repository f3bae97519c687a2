"""Honest timing: compile ahead of time, then time blocked calls of the compiled function."""

from __future__ import annotations

import math
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


def stable_seconds(
    fn: Callable[..., Any],
    *args: Any,
    min_sample_seconds: float = 0.01,
    min_samples: int = 7,
    max_samples: int = 60,
    tolerance: float = 0.05,
) -> tuple[float, float, float]:
    """Seconds per blocked call of ``fn``: the median and a 95% interval, sampled until the interval is small.

    Calls are grouped so that one sample lasts at least ``min_sample_seconds``
    (a microsecond call timed alone is mostly timer and dispatch noise).
    Sampling stops once the order-statistics interval of the median is within
    ``+-tolerance`` of it, or after ``max_samples``. Call ``fn`` once before to
    warm up.

    Returns:
      ``(median, low, high)`` seconds per call.
    """
    _, once = timed_call(fn, *args)
    calls = max(1, int(min_sample_seconds / max(once, 1e-9)))
    samples: list[float] = []
    while len(samples) < max_samples:
        start = time.perf_counter()
        for _ in range(calls):
            out = fn(*args)
        jax.block_until_ready(out)
        samples.append((time.perf_counter() - start) / calls)
        if len(samples) >= min_samples:
            median, low, high = median_interval(samples)
            if high - low <= 2 * tolerance * median:
                break
    return median_interval(samples)


def median_interval(samples: list[float]) -> tuple[float, float, float]:
    """The median and a distribution-free 95% interval for it (order statistics, normal approximation)."""
    ordered = sorted(samples)
    n = len(ordered)
    half = 1.96 * math.sqrt(n) / 2
    low = ordered[max(int(math.floor(n / 2 - half)), 0)]
    high = ordered[min(int(math.ceil(n / 2 + half)), n - 1)]
    return statistics.median(ordered), low, high
