"""Finite differences, used only to test gradients (tutorial 0: "we only use finite differences for testing").

:func:`check_gradients` compares a claimed gradient of a scalar function of
a parameter pytree with central differences, leaf by leaf, in float64, and
reports the relative error of every leaf, naming the worst.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class GradCheckReport:
    """Relative error per leaf (by its pytree path) and the worst of them.

    Attributes:
      errors: ``{leaf path: relative error}``, e.g. ``{"['w']": 3e-9}``.
      tolerance: the largest relative error a leaf may have for the check to pass.
    """

    errors: dict[str, float]
    tolerance: float

    @property
    def worst(self) -> tuple[str, float]:
        """``(leaf path, relative error)`` of the leaf that disagrees most."""
        return max(self.errors.items(), key=lambda item: item[1])

    @property
    def ok(self) -> bool:
        """Whether every leaf's relative error is within ``tolerance``."""
        return self.worst[1] <= self.tolerance

    def __str__(self) -> str:
        name, error = self.worst
        verdict = "ok" if self.ok else "FAILED"
        lines = [f"gradient check {verdict}: worst leaf {name} relative error {error:.2e}"]
        lines[0] += f" (tolerance {self.tolerance:.0e})"
        lines += [f"  {leaf}: {err:.2e}" for leaf, err in sorted(self.errors.items())]
        return "\n".join(lines)


def numerical_gradient(f: Callable[[Any], Any], params: Any, eps: float = 1e-6) -> Any:
    """Central differences (f(p + eps e_i) - f(p - eps e_i)) / (2 eps) for every entry, in float64.

    Two evaluations of ``f`` per entry, in a Python loop: for tests on small pytrees only.

    Args:
      f: a scalar function of the pytree ``params``.
      params: where to differentiate.
      eps: the step; its error is O(eps^2) plus rounding O(1e-16 / eps).

    Returns:
      The numerical gradient, a pytree shaped like ``params``, in float64.

    Example:
      >>> with jax.enable_x64(True):
      ...     g = numerical_gradient(lambda p: (p["x"] ** 3).sum(), {"x": np.array([2.0])})
      >>> g["x"].round(4).tolist()
      [12.0]
    """
    flat, unravel = _ravel64(params)

    def f_flat(v):
        return float(f(unravel(v)))

    grad = np.empty_like(flat)
    for i in range(flat.size):
        step = np.zeros_like(flat)
        step[i] = eps
        grad[i] = (f_flat(flat + step) - f_flat(flat - step)) / (2 * eps)
    return unravel(grad)


def check_gradients(
    f: Callable[[Any], Any],
    params: Any,
    grad: Any | None = None,
    *,
    eps: float = 1e-6,
    tolerance: float = 1e-6,
) -> GradCheckReport:
    """Checks ``grad`` (default: ``jax.grad(f)``) against central differences of ``f`` at ``params``.

    Args:
      f: scalar function of the pytree ``params``.
      params: where to check; converted to float64 (run under ``jax.enable_x64``).
      grad: the gradient to check, shaped like ``params``; a hand-written backward pass, say.
      eps: finite-difference step.
      tolerance: the largest acceptable relative error per leaf.

    Returns:
      A :class:`GradCheckReport`; ``report.ok`` says whether every leaf passed,
      ``str(report)`` names the worst leaf.

    Relative error of a leaf: ``|g - n| / max(|g|, |n|, 1e-8)`` with norms over
    the leaf, so a leaf whose gradient is all zeros is compared absolutely.
    """
    if not jax.config.jax_enable_x64:
        raise RuntimeError("check_gradients needs float64: run it under `with jax.enable_x64(True):`")
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    claimed = jax.grad(f)(params) if grad is None else grad
    numeric = numerical_gradient(f, params, eps)
    errors = {}
    leaves = jax.tree_util.tree_leaves_with_path(claimed)
    for (path, g), n in zip(leaves, jax.tree.leaves(numeric), strict=True):
        g, n = np.asarray(g, np.float64), np.asarray(n, np.float64)
        scale = max(np.linalg.norm(g), np.linalg.norm(n), 1e-8)
        errors[jax.tree_util.keystr(path) or "(root)"] = float(np.linalg.norm(g - n) / scale)
    return GradCheckReport(errors, tolerance)


def _ravel64(params: Any):
    from jax.flatten_util import ravel_pytree

    flat, unravel = ravel_pytree(jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params))
    return np.asarray(flat, np.float64), unravel
