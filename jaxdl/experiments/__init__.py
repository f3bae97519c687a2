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

# name -> (module, attribute); add a line here to register a new experiment.
_MODULES = {
    "blobs": ("jaxdl.experiments.blobs", "EXPERIMENT"),
    "cifar10-mlp": ("jaxdl.experiments.cifar10", "MLP_EXPERIMENT"),
    "cifar10-cnn": ("jaxdl.experiments.cifar10", "CNN_EXPERIMENT"),
    "mnist-vae": ("jaxdl.experiments.mnist_vae", "EXPERIMENT"),
    "mnist-mlp": ("jaxdl.experiments.mnist_mlp", "EXPERIMENT"),
    "autodiff-modes": ("jaxdl.experiments.autodiff_modes", "EXPERIMENT"),
    "scratch-mlp": ("jaxdl.experiments.scratch_mlp", "EXPERIMENT"),
    "scalar-engine": ("jaxdl.experiments.scalar_engine", "EXPERIMENT"),
    "monte-carlo": ("jaxdl.experiments.monte_carlo", "EXPERIMENT"),
    "universal-approximation": ("jaxdl.experiments.universal_approximation", "EXPERIMENT"),
    "minibatch-sgd": ("jaxdl.experiments.minibatch_sgd", "EXPERIMENT"),
    "activations": ("jaxdl.experiments.activations", "EXPERIMENT"),
    "optimizers": ("jaxdl.experiments.optimizers", "EXPERIMENT"),
    "regularisation": ("jaxdl.experiments.regularisation", "EXPERIMENT"),
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
    module, attribute = _MODULES[name]
    return getattr(importlib.import_module(module), attribute)
