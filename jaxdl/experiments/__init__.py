"""The experiment registry: every runnable tutorial result, by name.

An experiment module defines ``EXPERIMENT = Experiment(...)``: a config
dataclass (see :mod:`jaxdl.config`), ``run(config, run_dir) -> metrics``, and
the tutorial claims it measures (:mod:`jaxdl.claims`). Modules are imported
only when asked for, so ``jaxdl list`` stays quick.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable
from typing import Any

from jaxdl.claims import Run
from jaxdl.errors import JaxdlError

# name -> (module, attribute), in the order of the tutorials' claims (and of `jaxdl reproduce`);
# add a line here to register a new experiment.
_MODULES = {
    "blobs": ("jaxdl.experiments.blobs", "EXPERIMENT"),
    "autodiff-modes": ("jaxdl.experiments.autodiff_modes", "EXPERIMENT"),
    "forward-gradient": ("jaxdl.experiments.forward_gradient", "EXPERIMENT"),
    "scratch-mlp": ("jaxdl.experiments.scratch_mlp", "EXPERIMENT"),
    "scalar-engine": ("jaxdl.experiments.scalar_engine", "EXPERIMENT"),
    "monte-carlo": ("jaxdl.experiments.monte_carlo", "EXPERIMENT"),
    "minibatch-sgd": ("jaxdl.experiments.minibatch_sgd", "EXPERIMENT"),
    "optimizers": ("jaxdl.experiments.optimizers", "EXPERIMENT"),
    "activations": ("jaxdl.experiments.activations", "EXPERIMENT"),
    "universal-approximation": ("jaxdl.experiments.universal_approximation", "EXPERIMENT"),
    "regularization": ("jaxdl.experiments.regularization", "EXPERIMENT"),
    "mnist-mlp": ("jaxdl.experiments.mnist_mlp", "EXPERIMENT"),
    "cifar10-mlp": ("jaxdl.experiments.cifar10", "MLP_EXPERIMENT"),
    "cifar10-cnn": ("jaxdl.experiments.cifar10", "CNN_EXPERIMENT"),
    "image-classifier": ("jaxdl.experiments.image_classifier", "EXPERIMENT"),
    "curvature": ("jaxdl.experiments.curvature", "EXPERIMENT"),
    "mnist-vae": ("jaxdl.experiments.mnist_vae", "EXPERIMENT"),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Experiment:
    name: str
    description: str  # one line, shown by `jaxdl list`
    config: type  # a frozen dataclass with a `seed` field
    run: Callable[[Any, Any], dict[str, Any]]  # (config, RunDir) -> metrics
    resumable: bool = False  # it checkpoints every epoch, so `--resume` continues a cut run
    claims: tuple[Run, ...] = ()  # what `jaxdl reproduce` runs and checks
    smallest: tuple[str, ...] = ()  # settings of the quickest run that still writes every claimed metric


def names() -> list[str]:
    return list(_MODULES)


def get(name: str) -> Experiment:
    """The registered experiment ``name``; JaxdlError naming the closest one if unknown."""
    if name not in _MODULES:
        close = difflib.get_close_matches(name, _MODULES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise JaxdlError(f"unknown experiment {name!r}; {hint}`jaxdl list` shows them all")
    module, attribute = _MODULES[name]
    return getattr(importlib.import_module(module), attribute)
