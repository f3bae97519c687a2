"""What a run measured, typed: :class:`RunResult`, and ``metrics.json``, its serialisation.

An experiment's ``run(config, run_dir)`` returns its named figures (a dict:
``test_accuracy``, ``lanczos_exact_max_relative_error``, ...) or, when it
trains several replicas, a :class:`RunResult` that also holds each replica's
figures and each setting's interval. The runner adds what every run has (its
compile time, a grid's table) and writes ``metrics.json``:

.. code-block:: text

    {"format": 2,
     "figures": {"test_accuracy": 0.51, ...},   # a run of several seeds: their means
     "intervals": {"test_accuracy": {"mean": ..., "low": ..., "high": ..., ...}},  # over seeds
     "replicas": [{"seed": 0, "lr": 0.001, "diverged": false, "test_accuracy": 0.5, ...}, ...],
     "groups": [{"settings": {"lr": 0.001}, "intervals": {...}}, ...],   # one per setting of a grid
     "sweep": {"lr": [0.001, 0.003]},           # the settings trained side by side
     "runs": [{"settings": {...}, "run_dir": "epochs=2"}, ...],   # a grid's programs run in turn
     "sweep_table": ["sweep: lr (2)", ...],
     "compile": {"xla_seconds": ..., ...}}

:meth:`RunResult.read` reads it back to the same object, and also reads the
flat dicts that ``metrics.json`` held before format 2.

Example:
    >>> result = RunResult({"test_accuracy": 0.5})
    >>> result["test_accuracy"], RunResult.from_json(result.to_json()) == result
    (0.5, True)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jaxdl.errors import JaxdlError

FORMAT = 2


@dataclasses.dataclass(frozen=True)
class Group:
    """One setting of a grid (or, without a grid, the seeds of a run): its figures over its replicas.

    Attributes:
      settings: the grid's values for this group, ``{"lr": 0.001}``; empty without a grid.
      intervals: per figure, :func:`jaxdl.stats.interval` over the group's replicas (mean, the 95%
        interval's ends, the count).
    """

    settings: dict[str, Any]
    intervals: dict[str, dict[str, Any]]


@dataclasses.dataclass
class RunResult(Mapping[str, Any]):
    """A run's figures by name (``result["test_accuracy"]``), and how they were measured.

    Attributes:
      figures: the run's named figures, which claims and the command line read; over several seeds, their means.
      intervals: per figure, its 95% interval over seeds (empty for one seed).
      replicas: each replica's figures, with its ``seed``, swept settings and ``diverged``.
      groups: each setting of a grid with its intervals (for a run of seeds only, one group).
      sweep: the settings trained side by side in one program, ``{"lr": [0.001, 0.003]}``.
      runs: the programs of a grid run one after another: their settings and sub-folders.
      sweep_table: a grid's table as the log printed it.
      compile: what JAX spent compiling (:class:`jaxdl.compilation_cache.CompileClock`).
    """

    figures: dict[str, Any]
    intervals: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    replicas: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    groups: list[Group] = dataclasses.field(default_factory=list)
    sweep: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    runs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    sweep_table: list[str] = dataclasses.field(default_factory=list)
    compile: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.figures[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.figures)

    def __len__(self) -> int:
        return len(self.figures)

    def __eq__(self, other: object) -> bool:  # Mapping's __eq__ would compare the figures only
        return isinstance(other, RunResult) and dataclasses.astuple(self) == dataclasses.astuple(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    @classmethod
    def of(cls, outcome: RunResult | Mapping[str, Any]) -> RunResult:
        """An experiment's return value as a RunResult: itself, or a dict of figures.

        Args:
          outcome: what ``run(config, run_dir)`` returned.

        Returns:
          The result.

        Raises:
          TypeError: a dict holding a structural key (``groups``, ...), which belongs in a RunResult.
        """
        if isinstance(outcome, RunResult):
            return outcome
        structural = sorted(set(outcome) & {f.name for f in dataclasses.fields(cls)} - {"figures"})
        if structural:
            raise TypeError(f"an experiment's figures hold {structural}: return a RunResult for them")
        return cls(dict(outcome))

    def to_json(self) -> dict[str, Any]:
        """The ``metrics.json`` form, every field present.

        Returns:
          ``{"format": 2, "figures": ..., "intervals": ..., ...}``, ready for ``json.dumps``.
        """
        out: dict[str, Any] = {"format": FORMAT}
        out.update({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        out["groups"] = [dataclasses.asdict(g) for g in self.groups]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunResult:
        """Reads :meth:`to_json`'s form back, or the flat dict of a ``metrics.json`` before format 2.

        Args:
          data: the parsed JSON.

        Returns:
          The result.

        Raises:
          JaxdlError: a format this version does not know.
        """
        data = dict(data)
        version = data.pop("format", 1)
        if version not in (1, FORMAT):
            raise JaxdlError(f"metrics format {version} is newer than this jaxdl reads (format {FORMAT})")
        fields = {f.name for f in dataclasses.fields(cls)}
        if version == 1:  # flat: the figures beside the structural keys
            data = {"figures": {k: v for k, v in data.items() if k not in fields}, **{k: data[k] for k in fields
                                                                                       if k in data}}  # fmt: skip
        groups = [Group(**g) for g in data.get("groups", [])]
        return cls(**{**{k: v for k, v in data.items() if k in fields}, "groups": groups})

    @classmethod
    def read(cls, path: str | Path) -> RunResult:
        """The result in a run folder's ``metrics.json`` (or at ``path`` itself, a file).

        Args:
          path: a run folder, or a ``metrics.json`` file.

        Returns:
          The result.

        Raises:
          JaxdlError: the file cannot be read or holds no result.
        """
        path = Path(path)
        path = path / "metrics.json" if path.is_dir() else path
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise JaxdlError(f"cannot read the run's figures from {path} ({e})") from None
        if not isinstance(data, dict):
            raise JaxdlError(f"{path} holds no run's figures")
        return cls.from_json(data)
