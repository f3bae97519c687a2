"""Tutorial 0's blob classifier: ``Linear(2, 5) -> Linear(5, 1) -> Sigmoid``.

There is no nonlinearity between the two linear layers, so the network is a
logistic regression in disguise: its decision boundary is a straight line.
The module returns the logit; the sigmoid lives in the loss
(``binary_cross_entropy_with_logits``), which is the numerically safe form of
the tutorial's ``nn.BCELoss`` on ``nn.Sigmoid`` outputs.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.functional.init import kernel_init, torch_linear_bias, zeros

TUTORIAL_INIT_RESOURCE = "blobs_tutorial_init.json"


class BlobClassifier(nn.Module):
    """Two stacked dense layers giving one logit per point.

    Attributes:
      hidden: width of the first layer (the tutorial's 5).
      init_scheme: kernel initialiser name; "torch" draws what PyTorch's ``nn.Linear``
        draws (kernel and bias), others leave biases at zero.
    """

    hidden: int = 5
    init_scheme: str = "torch"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # (N, 2) -> (N,)
        """One logit per point: positive means class 1.

        Args:
          x: ``(N, 2)`` points (or ``(..., N, 2)``).

        Returns:
          ``(N,)`` logits; ``sigmoid`` of them is the tutorial's output.
        """

        def dense(features: int, fan_in: int, name: str) -> ColumnDense:
            bias_init = torch_linear_bias(fan_in) if self.init_scheme == "torch" else zeros
            return ColumnDense(features, kernel_init=kernel_init(self.init_scheme), bias_init=bias_init, name=name)

        h = dense(self.hidden, x.shape[-1], "hidden")(jnp.swapaxes(x, -1, -2))
        return dense(1, self.hidden, "output")(h)[..., 0, :]


class ColumnDense(nn.Module):
    """``nn.Dense`` for points stored as columns: ``(..., in, N) -> (..., features, N)``.

    The parameters are ``nn.Dense``'s (kernel ``(in, features)``, bias
    ``(features,)``, drawn from the same keys), and so are the values, up to
    the transposition. Why columns: vmapped over the seed study's 64
    initialisations, ``nn.Dense`` gives activations laid out (seed, point, 5),
    whose minor axis of 5 XLA's CPU kernels handle slowly; with the points
    minor the study trains faster (``docs/performance.md``).

    Attributes:
      features: the output width.
      kernel_init: the kernel's initialiser, ``(key, (in, features), dtype) -> array``.
      bias_init: the bias's initialiser, ``(key, (features,), dtype) -> array``.
    """

    features: int
    kernel_init: Any
    bias_init: Any

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """``kernel' x + bias``, the bias broadcast along the points.

        Args:
          x: ``(..., in, N)``, one column per point.

        Returns:
          ``(..., features, N)``.
        """
        kernel = self.param("kernel", self.kernel_init, (x.shape[-2], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        return column_dense(kernel, bias, x)


def column_dense(kernel: jax.Array, bias: jax.Array, x: jax.Array) -> jax.Array:
    """:class:`ColumnDense`'s product, ``(..., in, N) -> (..., features, N)``: shared with its NNX twin.

    Args:
      kernel: ``(in, features)``, PyTorch's weight transposed.
      bias: ``(features,)``.
      x: ``(..., in, N)``: N examples as columns, as the tutorial lays them out.

    Returns:
      ``kernel.T @ x + bias``, ``(..., features, N)``.
    """
    return jnp.swapaxes(kernel, 0, 1) @ x + bias.reshape((1,) * (x.ndim - 2) + (-1, 1))


def _tutorial_resource() -> dict[str, Any]:
    text = resources.files("jaxdl.resources").joinpath(TUTORIAL_INIT_RESOURCE).read_text()
    return json.loads(text)


def tutorial_params() -> dict[str, Any]:
    """The exact initial weights the tutorial's PyTorch code draws (seed 2024), Flax layout.

    Returns:
      ``{"hidden": {"kernel", "bias"}, "output": {...}}`` float32 arrays, ready for
      ``BlobClassifier().apply({"params": ...}, x)``.
    """
    params = _tutorial_resource()["params"]
    return jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), params, is_leaf=lambda v: isinstance(v, list))


def tutorial_log() -> list[dict[str, float]]:
    """The tutorial's ten log lines: epoch, loss, accuracy in percent.

    Returns:
      A list of ten dicts, as the tutorial printed them, to compare a run with.
    """
    return _tutorial_resource()["tutorial_log"]
