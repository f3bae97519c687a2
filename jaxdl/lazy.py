"""Names a package exports, imported on first use (PEP 562): importing ``jaxdl`` or ``jaxdl.data``
costs nothing until a name is used, so commands that need no JAX never import it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose ``exports`` map each name to its module.

    A name that is not exported but is a submodule (``jaxdl.plots``) is imported as
    an eager ``import`` of the package would have bound it.

    Args:
      package: the package's ``__name__``; it must be in ``sys.modules`` (call this from its
        ``__init__``).
      exports: ``{name: module that defines it}``.

    Returns:
      The module-level ``__getattr__`` and ``__dir__`` to assign in the package (PEP 562).
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        if name not in exports:
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as e:
                if e.name != f"{package}.{name}":
                    raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
