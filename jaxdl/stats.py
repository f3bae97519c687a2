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

    Args:
      values: one figure per seed; None or a non-finite value (a diverged seed) is left out.
      confidence: the interval's level, from Student's t with ``n - 1`` degrees of freedom.

    Returns:
      The summary dict; :func:`format_interval` writes it as text.

    Example:
      >>> s = interval([0.50, 0.52, 0.49, float("nan")])
      >>> round(s["mean"], 4), s["n"], s["excluded"], round(s["half_width"], 4)
      (0.5033, 3, 1, 0.0379)
      >>> format_interval(s, "{:.2%}")
      '50.33% +- 3.79% (N=3, 1 diverged)'
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
        std = float(kept.std(ddof=1))
        half = student_t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
        out.update(std=std, half_width=half, low=mean - half, high=mean + half)
    return out


def student_t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of Student's t with ``dof`` degrees of freedom, for ``0.5 <= p < 1``.

    Pure Python, so that summarising seeds does not import scipy: for ``t >= 0``,
    ``P(T > t) = I_x(dof / 2, 1 / 2) / 2`` with ``x = dof / (dof + t^2)``, so
    the quantile solves ``I_x = 2 (1 - p)`` for ``x`` by bisection, ``I`` the
    regularised incomplete beta function. The tests compare it with
    ``scipy.special.stdtrit``.

    Args:
      p: the probability, in [0.5, 1); 0.975 for a two-sided 95% interval.
      dof: degrees of freedom, at least 1 (``n - 1`` for n seeds).

    Returns:
      t such that P(T <= t) = p.

    Raises:
      ValueError: for ``p`` or ``dof`` out of range.

    Example:
      >>> round(student_t_quantile(0.975, 4), 4)
      2.7764
    """
    if not 0.5 <= p < 1 or dof < 1:
        raise ValueError(f"need 0.5 <= p < 1 and dof >= 1, got p={p}, dof={dof}")
    target, a = 2 * (1 - p), dof / 2
    lo, hi = 0.0, 1.0  # I_x grows with x: find x where it crosses the target
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if _incomplete_beta(mid, a, 0.5) < target else (lo, mid)
    x = (lo + hi) / 2
    return math.sqrt(dof * (1 - x) / x) if x > 0 else math.inf


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """Regularised incomplete beta ``I_x(a, b)`` by its continued fraction (modified Lentz)."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point
        return 1.0 - _incomplete_beta(1 - x, b, a)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-16:
            break
    return math.exp(log_front) * fraction / a


def format_interval(summary: dict[str, Any], fmt: str = "{:.4g}") -> str:
    """``"50.22% +- 0.31% (N=8)"``, or ``"50.22% (N=1)"`` without an interval.

    Args:
      summary: a dict from :func:`interval`.
      fmt: a ``str.format`` pattern for the mean and the half-width, e.g. ``"{:.2%}"``.

    Returns:
      One line of text; it counts the diverged seeds when there were any.

    Example:
      >>> format_interval(interval([2.0]))
      '2 (N=1)'
    """
    if summary["mean"] is None:
        return f"no finite value (N=0 of {summary['excluded']})"
    text = fmt.format(summary["mean"])
    if summary["half_width"] is not None:
        text += " +- " + fmt.format(summary["half_width"]).lstrip("+")
    text += f" (N={summary['n']}"
    text += f", {summary['excluded']} diverged)" if summary["excluded"] else ")"
    return text
