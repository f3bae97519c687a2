"""Figures over seeds: a mean with a 95% Student t confidence interval, and the values it came from.

With n replicas, the interval is ``mean +- t(0.975, n - 1) * s / sqrt(n)``
(``s`` the sample standard deviation): it covers the mean a new seed would
average to in 95% of experiments, if the per-seed values are roughly normal.
One value gives no interval (its half-width is reported as None). Values that
are not finite (a diverged replica) are left out and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def interval(values: Sequence[float | None], confidence: float = 0.95) -> dict[str, Any]:
    """``{"mean", "std", "half_width", "low", "high", "n", "excluded", "values"}`` of the finite values.

    ``std`` is the sample standard deviation (ddof 1); ``half_width``, ``low`` and ``high`` are
    None for fewer than two values, and every figure is None when none is finite.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    raw = [math.nan if v is None else float(v) for v in values]
    kept = np.array([v for v in raw if math.isfinite(v)], np.float64)
    n = len(kept)
    out: dict[str, Any] = {"mean": None, "std": None, "half_width": None, "low": None, "high": None}
    out.update(n=n, excluded=len(raw) - n, values=[v if math.isfinite(v) else None for v in raw])
    if n == 0:
        return out
    mean = float(kept.mean())
    out["mean"] = mean
    if n >= 2:
        # Student's t quantile; scipy.special, not scipy.stats, whose import costs a run a second
        from scipy.special import stdtrit

        std = float(kept.std(ddof=1))
        half = float(stdtrit(n - 1, 0.5 + confidence / 2) * std / math.sqrt(n))
        out.update(std=std, half_width=half, low=mean - half, high=mean + half)
    return out


def format_interval(summary: dict[str, Any], fmt: str = "{:.4g}") -> str:
    """``"50.22% +- 0.31% (N=8)"``, or ``"50.22% (N=1)"`` without an interval."""
    if summary["mean"] is None:
        return f"no finite value (N=0 of {summary['excluded']})"
    text = fmt.format(summary["mean"])
    if summary["half_width"] is not None:
        text += " +- " + fmt.format(summary["half_width"]).lstrip("+")
    text += f" (N={summary['n']}"
    text += f", {summary['excluded']} diverged)" if summary["excluded"] else ")"
    return text
