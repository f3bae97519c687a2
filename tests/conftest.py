"""Strictness for the whole suite: implicit rank promotion is an error."""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Runs a test with float64 enabled (gradient checks need it)."""
    with jax.enable_x64(True):
        yield
