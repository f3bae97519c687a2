"""The functional core's docstring examples run as written (Python's doctest, in this process)."""

import doctest
import importlib

import pytest

MODULES = ["jaxdl.functional.activations", "jaxdl.functional.init", "jaxdl.functional.losses",
           "jaxdl.functional.mlp", "jaxdl.functional.normalization", "jaxdl.functional.optim",
           "jaxdl.autodiff.modes", "jaxdl.autodiff.gradcheck", "jaxdl.autodiff.scalar",
           "jaxdl.monte_carlo", "jaxdl.stats", "jaxdl.curvature"]  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def test_the_core_has_examples():
    examples = sum(doctest.testmod(importlib.import_module(n), report=False).attempted for n in MODULES)
    assert examples >= 15, examples
