"""The experiment registry: every runnable tutorial result, by name.

An experiment is declared once, in its module: ``EXPERIMENT = Experiment(...)``
with its name, description, settings dataclass (from
:mod:`jaxdl.experiments.settings`, which imports no JAX), ``run(config,
run_dir) -> metrics`` and the tutorial claims it measures
(:mod:`jaxdl.claims`). ``python scripts/build_index.py`` writes
:mod:`jaxdl.experiments._index` from those declarations, so that ``jaxdl
list`` and ``--help-config`` import no experiment; modules are imported only
when an experiment runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable
from typing import Any

from jaxdl.claims import Run
from jaxdl.errors import JaxdlError
from jaxdl.experiments._index import INDEX
from jaxdl.results import RunResult


@dataclasses.dataclass(frozen=True, kw_only=True)
class Experiment:
    """A runnable experiment, declared once in its module as ``EXPERIMENT = Experiment(...)``.

    Attributes:
      name: what ``jaxdl run NAME`` takes, e.g. "cifar10-cnn".
      description: one line, shown by ``jaxdl list``.
      config: its settings class, a frozen dataclass of :func:`jaxdl.config.setting` fields
        (in :mod:`jaxdl.experiments.settings`) with a ``seed`` field.
      run: ``run(config, run_dir)``: trains and measures, returning ``{figure name: value}``
        or a :class:`~jaxdl.results.RunResult`.
      resumable: it checkpoints every epoch, so ``--resume`` continues a cut run.
      claims: the runs ``jaxdl reproduce`` makes and the tutorial claims it checks on each.
      smallest: settings (``key=value``) of the quickest run that still writes every claimed figure.
      vmapped: settings its optimizer reads as values only: a grid over them trains in one
        vmapped program instead of one run per value.
    """

    name: str
    description: str  # one line, shown by `jaxdl list`
    config: type  # a frozen dataclass with a `seed` field
    run: Callable[[Any, Any], dict[str, Any] | RunResult]  # (config, RunDir) -> figures, or a RunResult
    resumable: bool = False  # it checkpoints every epoch, so `--resume` continues a cut run
    claims: tuple[Run, ...] = ()  # what `jaxdl reproduce` runs and checks
    smallest: tuple[str, ...] = ()  # settings of the quickest run that still writes every claimed metric
    # settings its optimizer reads as values only: a grid over them trains in one vmapped program
    vmapped: tuple[str, ...] = ()


def names() -> list[str]:
    """The registered experiments' names, in the tour's order, without importing any of them.

    Returns:
      The names, as ``jaxdl list`` shows them.
    """
    return list(INDEX)


def describe(name: str) -> str:
    """The one-line description of ``name``, without importing its module.

    Args:
      name: a registered experiment's name.

    Returns:
      Its description, as ``jaxdl list`` shows it.

    Raises:
      JaxdlError: ``name`` is not registered.
    """
    check_name(name)
    return INDEX[name][3]


def settings_of(name: str) -> type:
    """The settings dataclass of ``name``, without importing its module (nor JAX).

    Args:
      name: a registered experiment's name.

    Returns:
      Its settings class, from :mod:`jaxdl.experiments.settings`.

    Raises:
      JaxdlError: ``name`` is not registered.
    """
    check_name(name)
    from jaxdl.experiments import settings

    return getattr(settings, INDEX[name][2])


def check_name(name: str) -> None:
    """JaxdlError naming the closest registered experiment if ``name`` is not one.

    Args:
      name: the name given, e.g. on the command line.

    Raises:
      JaxdlError: ``name`` is not registered (the message suggests the closest name).
    """
    if name not in INDEX:
        close = difflib.get_close_matches(name, INDEX, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise JaxdlError(f"unknown experiment {name!r}; {hint}`jaxdl list` shows them all")


def get(name: str) -> Experiment:
    """The registered experiment ``name``; JaxdlError naming the closest one if unknown.

    Imports the experiment's module (and with it JAX).

    Args:
      name: a registered experiment's name.

    Returns:
      Its :class:`Experiment` declaration.

    Raises:
      JaxdlError: ``name`` is not registered.
    """
    check_name(name)
    module, attribute, _, _ = INDEX[name]
    return getattr(importlib.import_module(module), attribute)


_NOT_EXPERIMENTS = {"common", "settings", "_index"}


def build_index() -> str:
    """The text of :mod:`jaxdl.experiments._index`, from every module's ``Experiment`` declarations.

    Experiments already indexed keep their place (the tour's order); new ones follow, by module name.

    Returns:
      The module's source.

    Raises:
      JaxdlError: two declarations share a name, or a settings class is not in
        :mod:`jaxdl.experiments.settings`.
    """
    import pkgutil
    from pathlib import Path

    from jaxdl.experiments import settings

    found: dict[str, tuple[str, str, str, str]] = {}
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if info.name in _NOT_EXPERIMENTS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for attribute, value in vars(module).items():
            if not isinstance(value, Experiment) or value.name in found and found[value.name][0] == module.__name__:
                continue
            if value.name in found:
                raise JaxdlError(
                    f"experiment {value.name} is declared twice: {found[value.name][0]}, {module.__name__}"
                )
            if getattr(settings, value.config.__name__, None) is not value.config:
                raise JaxdlError(f"experiment {value.name}: its settings belong in jaxdl.experiments.settings")
            found[value.name] = (module.__name__, attribute, value.config.__name__, value.description)
    order = [name for name in INDEX if name in found] + [name for name in found if name not in INDEX]
    head = (Path(__file__).parent / "_index.py").read_text().split("INDEX = {")[0]
    body = "".join(f"    {name!r}: {found[name]!r},\n" for name in order)
    return f"{head}INDEX = {{\n{body}}}\n"
