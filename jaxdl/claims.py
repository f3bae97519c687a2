"""Tutorial claims, declared beside the experiment that measures them.

An experiment lists its :class:`Run` s: the settings of one ``jaxdl run``
(and smaller ones under ``jaxdl reproduce --quick``), and the :class:`Claim` s
that read one figure each from that run's metrics and set it beside the
tutorial's. :mod:`jaxdl.reproduce` runs them and writes the report; a test
runs every experiment at its smallest settings and reads every claim, so a
renamed metric fails there, not in a report.

Example:
    >>> Claim(source="tutorial 1", statement="MLP, 5 epochs: test accuracy", tutorial="49.96%",
    ...       metric="test_accuracy", fmt=PERCENT, target=at_least(0.50, ">= 50%"))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

PERCENT = "{:.2%}"


@dataclasses.dataclass(frozen=True)
class Target:
    """What the issue that built an experiment asked of a figure: ``lo <= value <= hi``."""

    text: str  # how the report shows it, e.g. ">= 78%"
    lo: float = -math.inf
    hi: float = math.inf

    def met_by(self, value: float) -> bool:
        return self.lo <= value <= self.hi


def at_least(x: float, text: str) -> Target:
    return Target(text, lo=x)


def at_most(x: float, text: str) -> Target:
    return Target(text, hi=x)


def between(lo: float, hi: float, text: str) -> Target:
    return Target(text, lo=lo, hi=hi)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Claim:
    """One row of the report: a tutorial's statement, its figure, and how to read jaxdl's.

    ``metric`` names a key of the run's metrics or computes the figure from the
    whole dict; ``target`` (None: the figure is measured, not judged) says
    whether it meets what was asked.
    """

    source: str  # "tutorial 1"
    statement: str
    tutorial: str  # the tutorial's figure, as text
    metric: str | Callable[[dict[str, Any]], float]
    fmt: str = "{:.4g}"
    target: Target | None = None

    def interval(self, metrics: dict[str, Any]) -> dict[str, Any] | None:
        """The figure's interval over seeds (:func:`jaxdl.stats.interval`) when the run had several."""
        if callable(self.metric):
            return None
        return metrics.get("intervals", {}).get(self.metric)

    def value(self, metrics: dict[str, Any]) -> float:
        if callable(self.metric):
            return float(self.metric(metrics))
        if self.metric not in metrics:
            raise KeyError(f"the metrics have no {self.metric!r}")
        return float(metrics[self.metric])


@dataclasses.dataclass(frozen=True, kw_only=True)
class Run:
    """One run of an experiment in ``jaxdl reproduce`` and the claims it checks."""

    name: str  # unique over all experiments: the report's run directory
    settings: tuple[str, ...] = ()  # KEY=VALUE, as --set takes them
    quick: tuple[str, ...] = ()  # further settings under --quick (its targets are then not judged)
    data: str | None = None  # the data set it needs, checked before it starts
    claims: tuple[Claim, ...] = ()
    # Replicas trained together (--set seeds=N): each claim is judged on their mean and shown with
    # its 95% interval. Chosen per run so that the full tour takes about 20 minutes on a 2-core CPU.
    seeds: int = 1
    quick_seeds: int = 1  # under --quick
