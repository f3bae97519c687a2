"""Honest timing: compile ahead of time, then time blocked calls of the compiled function."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax


def compile_ahead(jitted: Any, *args: Any) -> tuple[Callable[..., Any], float]:
    """Lowers and compiles a ``jax.jit`` function for ``args``; returns it and the seconds taken.

    Compiling ahead keeps compilation out of later timings, and reports it on
    its own.

    Args:
      jitted: a function wrapped in ``jax.jit`` (anything with ``.lower``).
      *args: example arguments; the compiled function only accepts arguments
        of the same shapes, dtypes and shardings.

    Returns:
      ``(compiled, seconds)``: the compiled executable, called like ``jitted``,
      and the wall time that lowering and compiling took.
    """
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - start


def timed_call(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Calls ``fn`` and waits for its result on device; returns the result and the seconds.

    JAX dispatches asynchronously, so without the wait the time would only
    cover launching the work.

    Args:
      fn: the function to call (jitted or compiled, typically).
      *args: its arguments.

    Returns:
      ``(result, seconds)``: what ``fn`` returned, ready on device, and the
      wall time of the call.
    """
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def median_seconds(fn: Callable[..., Any], *args: Any, repeats: int = 5) -> float:
    """Median wall time of ``repeats`` blocked calls (call ``fn`` once before to warm up).

    Args:
      fn: the function to time.
      *args: its arguments, the same for every call.
      repeats: how many calls to time.

    Returns:
      The median seconds per call.
    """
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

    Args:
      fn: the function to time.
      *args: its arguments, the same for every call.
      min_sample_seconds: the least wall time one sample (a group of calls) lasts.
      min_samples: samples taken before the interval is first checked.
      max_samples: samples taken at most, whether or not the interval is small.
      tolerance: the interval's target half-width, as a fraction of the median.

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
    """The median and a distribution-free 95% interval for it (order statistics, normal approximation).

    Args:
      samples: the measurements, in any order; at least one.

    Returns:
      ``(median, low, high)``, in the samples' unit.

    Example:
      >>> median_interval([3.0, 1.0, 2.0])
      (2.0, 1.0, 3.0)
    """
    ordered = sorted(samples)
    n = len(ordered)
    half = 1.96 * math.sqrt(n) / 2
    low = ordered[max(int(math.floor(n / 2 - half)), 0)]
    high = ordered[min(int(math.ceil(n / 2 + half)), n - 1)]
    return statistics.median(ordered), low, high
