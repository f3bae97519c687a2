"""Tutorial claims, declared beside the experiment that measures them.

An experiment lists its :class:`Run` s: the settings of one ``jaxdl run``
(and smaller ones under ``jaxdl reproduce --quick``), and the :class:`Claim` s
that read one figure each from that run's metrics and set it beside the
tutorial's. :mod:`jaxdl.reproduce` runs them and writes the report; a test
runs every experiment at its smallest settings and reads every claim, so a
renamed metric fails there, not in a report.

Example:
    >>> Claim(source="tutorial 1", statement="MLP, 5 epochs: test accuracy", tutorial="49.96%",
    ...       metric="test_accuracy", fmt=PERCENT, target=at_least(0.50, ">= 50%"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from jaxdl.results import RunResult

PERCENT = "{:.2%}"


@dataclasses.dataclass(frozen=True)
class Target:
    """What the issue that built an experiment asked of a figure: ``lo <= value <= hi``.

    Attributes:
      text: how the report shows it, e.g. ">= 78%".
      lo: the least value that meets it (-inf: no lower bound).
      hi: the greatest value that meets it (inf: no upper bound).
    """

    text: str
    lo: float = -math.inf
    hi: float = math.inf

    def met_by(self, value: float) -> bool:
        """Whether ``value`` lies within ``[lo, hi]``.

        Args:
          value: the measured figure.

        Returns:
          True if it meets the target.
        """
        return self.lo <= value <= self.hi


def at_least(x: float, text: str) -> Target:
    """A target met by ``x`` and anything above.

    Args:
      x: the lower bound.
      text: how the report shows it, e.g. ">= 50%".

    Returns:
      A :class:`Target`.
    """
    return Target(text, lo=x)


def at_most(x: float, text: str) -> Target:
    """A target met by ``x`` and anything below.

    Args:
      x: the upper bound.
      text: how the report shows it, e.g. "<= 0.1".

    Returns:
      A :class:`Target`.
    """
    return Target(text, hi=x)


def between(lo: float, hi: float, text: str) -> Target:
    """A target met by values in ``[lo, hi]``.

    Args:
      lo: the lower bound.
      hi: the upper bound.
      text: how the report shows it, e.g. "0.45 to 0.55".

    Returns:
      A :class:`Target`.

    Example:
      >>> between(0.4, 0.6, "0.4 to 0.6").met_by(0.5)
      True
    """
    return Target(text, lo=lo, hi=hi)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Claim:
    """One row of the report: a tutorial's statement, its figure, and how to read jaxdl's.

    ``metric`` names a key of the run's metrics or computes the figure from the
    whole dict; ``target`` (None: the figure is measured, not judged) says
    whether it meets what was asked.

    Attributes:
      source: where the statement is from, e.g. "tutorial 1".
      statement: what is measured, in a few words.
      tutorial: the tutorial's figure, as text.
      metric: a key of the run's ``metrics.json``, or a function of the whole dict.
      fmt: a ``str.format`` pattern for the figure (``PERCENT`` for accuracies).
      target: what the figure must meet, or None.
    """

    source: str
    statement: str
    tutorial: str
    metric: str | Callable[[dict[str, Any]], float]
    fmt: str = "{:.4g}"
    target: Target | None = None

    def interval(self, result: RunResult) -> dict[str, Any] | None:
        """The figure's interval over seeds (:func:`jaxdl.stats.interval`) when the run had several.

        Args:
          result: what the run measured.

        Returns:
          The summary dict, or None for a computed metric or a run without intervals.
        """
        if callable(self.metric):
            return None
        return result.intervals.get(self.metric)

    def value(self, metrics: dict[str, Any]) -> float:
        """The claim's figure, read from the run's metrics.

        Args:
          metrics: the run's metrics.

        Returns:
          The figure as a float; NaN where the run recorded None (e.g. a target never reached).

        Raises:
          KeyError: the metrics lack the named key (a renamed metric).
        """
        if callable(self.metric):
            return float(self.metric(metrics))
        if self.metric not in metrics:
            raise KeyError(f"the metrics have no {self.metric!r}")
        value = metrics[self.metric]
        return math.nan if value is None else float(value)  # None: the run could not measure it


@dataclasses.dataclass(frozen=True, kw_only=True)
class Run:
    """One run of an experiment in ``jaxdl reproduce`` and the claims it checks.

    Attributes:
      name: unique over all experiments: the report's run directory.
      settings: ``KEY=VALUE`` strings, as ``--set`` takes them.
      quick: further settings under ``--quick`` (its targets are then not judged).
      data: the data set it needs, checked before it starts; None for none.
      claims: the :class:`Claim` s read from its metrics.
      seeds: replicas trained together (``--set seeds=N``): each claim is judged on their mean and
        shown with its 95% interval. Chosen per run to keep the full tour's length reasonable on a
        2-core CPU.
      quick_seeds: the replicas under ``--quick``.
    """

    name: str
    settings: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    data: str | None = None
    claims: tuple[Claim, ...] = ()
    seeds: int = 1
    quick_seeds: int = 1
