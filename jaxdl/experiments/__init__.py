"""The experiment registry: every runnable tutorial result, by name.

An experiment module defines ``EXPERIMENT = Experiment(...)``: a config
dataclass (see :mod:`jaxdl.config`) and ``run(config, run_dir) -> metrics``.
Modules are imported only when asked for, so ``jaxdl list`` stays quick.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from jaxdl.errors import JaxdlError

# name -> module; add a line here to register a new experiment.
_MODULES = {
    "blobs": "jaxdl.experiments.blobs",
}


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    description: str  # one line, shown by `jaxdl list`
    config: type  # a frozen dataclass with a `seed` field
    run: Callable[[Any, Any], dict[str, Any]]  # (config, RunDir) -> metrics


def names() -> list[str]:
    return list(_MODULES)


def get(name: str) -> Experiment:
    """The registered experiment ``name``; JaxdlError naming the choices if unknown."""
    if name not in _MODULES:
        raise JaxdlError(f"unknown experiment {name!r}; `jaxdl list` shows: {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[name]).EXPERIMENT
