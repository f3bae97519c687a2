"""Weight initialisers with the ``(key, shape, dtype) -> array`` signature of
``jax.nn.initializers``, for dense kernels laid out ``(fan_in, fan_out)``.

``he_normal`` is the NumPy tutorial's (tutorial 3) plain Gaussian with variance
2 / fan_in (``jax.nn.initializers.he_normal`` truncates, this does not);
``torch_linear_kernel`` / ``torch_linear_bias`` draw what PyTorch's
``nn.Linear`` draws by default, so runs can be compared with the tutorials.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """fan_in, fan_out of a dense kernel (in, out) or a conv kernel (h, w, in, out)."""
    if len(shape) < 2:
        raise ValueError(f"an initialiser for kernels needs a shape of rank >= 2, got {shape}")
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def he_normal(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """He/Kaiming normal: N(0, 2 / fan_in), suited to ReLU layers.

    Args:
      key: a ``jax.random`` key.
      shape: a dense kernel ``(fan_in, fan_out)`` or a conv kernel ``(h, w, in, out)``
        (then ``fan_in = h * w * in``).
      dtype: the array's dtype.

    Returns:
      The kernel, of ``shape`` and ``dtype``.

    Example:
      >>> w = he_normal(jax.random.key(0), (1000, 500))
      >>> float(w.var()).__round__(3)  # 2 / 1000
      0.002
    """
    fan_in, _ = _fans(shape)
    return jax.random.normal(key, shape, dtype) * math.sqrt(2.0 / fan_in)


def glorot_uniform(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Glorot/Xavier uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).

    Keeps activations' and gradients' variances about equal across layers for tanh-like units.

    Args:
      key: a ``jax.random`` key.
      shape: ``(fan_in, fan_out)`` or a conv kernel ``(h, w, in, out)``.
      dtype: the array's dtype.

    Returns:
      The kernel, of ``shape`` and ``dtype``, every entry within ``[-a, a]``.
    """
    fan_in, fan_out = _fans(shape)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, shape, dtype, minval=-limit, maxval=limit)


def glorot_normal(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Glorot/Xavier normal: N(0, 2 / (fan_in + fan_out)).

    Args:
      key: a ``jax.random`` key.
      shape: ``(fan_in, fan_out)`` or a conv kernel ``(h, w, in, out)``.
      dtype: the array's dtype.

    Returns:
      The kernel, of ``shape`` and ``dtype``.
    """
    fan_in, fan_out = _fans(shape)
    return jax.random.normal(key, shape, dtype) * math.sqrt(2.0 / (fan_in + fan_out))


def torch_linear_kernel(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """PyTorch's default ``nn.Linear`` weight: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    (``kaiming_uniform_`` with ``a=sqrt(5)`` reduces to exactly this bound.)

    Args:
      key: a ``jax.random`` key.
      shape: ``(fan_in, fan_out)``, the transpose of PyTorch's ``(out, in)`` weight.
      dtype: the array's dtype.

    Returns:
      The kernel, of ``shape`` and ``dtype``.
    """
    fan_in, _ = _fans(shape)
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)


def torch_linear_bias(fan_in: int) -> Initializer:
    """PyTorch's default ``nn.Linear`` bias, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    The bound depends on the layer's input width, which a bias shape does not
    carry, hence the factory.

    Args:
      fan_in: the layer's input width.

    Returns:
      An initialiser ``init(key, shape, dtype=float32)`` for the bias.

    Example:
      >>> b = torch_linear_bias(fan_in=4)(jax.random.key(0), (3,))
      >>> b.shape, bool((jnp.abs(b) <= 0.5).all())
      ((3,), True)
    """
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


def zeros(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """All zeros (the key is unused): the symmetric start tutorial 3 warns against for weights.

    Args:
      key: ignored; taken so the signature matches the other initialisers.
      shape: the array's shape.
      dtype: the array's dtype.

    Returns:
      ``jnp.zeros(shape, dtype)``.
    """
    del key
    return jnp.zeros(shape, dtype)


KERNEL_INITS: dict[str, Initializer] = {
    "he": he_normal,
    "glorot": glorot_uniform,
    "glorot_normal": glorot_normal,
    "torch": torch_linear_kernel,
    "zeros": zeros,
}


def kernel_init(name: str) -> Initializer:
    """Looks up a kernel initialiser by name (see ``KERNEL_INITS``).

    Args:
      name: one of "he", "glorot", "glorot_normal", "torch" or "zeros".

    Returns:
      The initialiser, ``(key, shape, dtype) -> array``.

    Raises:
      ValueError: for an unknown name, listing the known ones.

    Example:
      >>> kernel_init("he") is he_normal
      True
    """
    try:
        return KERNEL_INITS[name]
    except KeyError:
        raise ValueError(f"unknown initialiser {name!r}; choose one of {', '.join(KERNEL_INITS)}") from None
