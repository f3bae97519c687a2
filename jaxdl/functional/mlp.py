"""A multilayer perceptron as two pure functions over a parameter pytree.

Parameters are a dict ``{"dense0": {"w": (in, out), "b": (out,)}, ...}``, so a
leaf's path names its layer, and every pytree tool (``jax.grad``,
``jax.tree.map``, optax) applies unchanged.

Example:
    >>> params = mlp_init(jax.random.key(0), [2, 16, 1])
    >>> mlp_apply(params, jnp.ones((8, 2))).shape
    (8, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from jaxdl.functional.activations import relu
from jaxdl.functional.init import Initializer, kernel_init

Params = dict[str, dict[str, jax.Array]]


def layer_name(index: int) -> str:
    """The key of layer ``index`` in the parameter dict: ``"dense{index}"``.

    Args:
      index: the layer's position, 0 for the first.

    Returns:
      The name, e.g. ``"dense0"``.
    """
    return f"dense{index}"


def mlp_init(
    key: jax.Array,
    sizes: Sequence[int],
    *,
    init: str | Initializer = "he",
    dtype=jnp.float32,
) -> Params:
    """Draws the weights of an MLP with layer widths ``sizes`` (input first).

    Args:
      key: a ``jax.random`` key.
      sizes: ``[in, hidden..., out]``, at least two entries, all positive.
      init: a kernel initialiser or its name in ``KERNEL_INITS`` ("he" is the
        NumPy tutorial's choice). Biases start at zero.
      dtype: parameter dtype.

    Returns:
      ``{"dense0": {"w", "b"}, "dense1": ..., ...}``.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes needs at least two positive widths, got {sizes}")
    init_fn = kernel_init(init) if isinstance(init, str) else init
    keys = jax.random.split(key, len(sizes) - 1)
    return {
        layer_name(i): {
            "w": init_fn(k, (n_in, n_out), dtype),
            "b": jnp.zeros((n_out,), dtype),
        }
        for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True))
    }


def mlp_apply(
    params: Params,
    x: jax.Array,
    *,
    activation: Callable[[jax.Array], jax.Array] = relu,
    final_activation: Callable[[jax.Array], jax.Array] | None = None,
) -> jax.Array:
    """Runs the MLP: ``activation`` after each hidden layer, ``final_activation`` after the last.

    Args:
      params: from :func:`mlp_init`.
      x: ``(..., in)`` inputs.
      activation: hidden-layer nonlinearity.
      final_activation: applied to the output, or None for raw logits.

    Returns:
      ``(..., out)`` outputs.

    Example: a 4-8-3 network on a batch of 5.

      >>> params = mlp_init(jax.random.key(0), [4, 8, 3])
      >>> {name: layer["w"].shape for name, layer in params.items()}
      {'dense0': (4, 8), 'dense1': (8, 3)}
      >>> mlp_apply(params, jnp.ones((5, 4))).shape
      (5, 3)
    """
    depth = len(params)
    for i in range(depth):
        layer = params[layer_name(i)]
        # Explicit broadcast of the bias over the batch dims (no implicit rank promotion).
        x = x @ layer["w"] + layer["b"].reshape((1,) * (x.ndim - 1) + (-1,))
        if i < depth - 1:
            x = activation(x)
    return x if final_activation is None else final_activation(x)
