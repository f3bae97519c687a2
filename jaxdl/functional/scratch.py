"""Tutorial 3's multilayer perceptron from scratch, in NumPy and again in JAX, both with hand-written backprop.

Layout as in the tutorial: examples are *columns*, X (n_0, m), Y (1, m);
layer l has W{l} (n_l, n_{l-1}) and b{l} (n_l, 1); hidden layers use ReLU,
the output a sigmoid, the cost is the mean binary cross-entropy. (The
tutorial's ``compute_error`` subtracts the second log term where it should
add it; its backward pass is right, and so is this cost.)

The NumPy functions keep the tutorial's names; ``jax_backward`` is the same
backward pass over a parameter pytree, and the tests check both against
``jax.grad`` leaf by leaf.
"""

from __future__ import annotations

import numpy as np

# ------------------------------------------------------------------ NumPy reference


def initialize_parameters(layer_sizes: list[int], seed: int = 0) -> dict[str, np.ndarray]:
    """He initialisation: W{l} ~ N(0, 2 / n_{l-1}), b{l} = 0 (a local RNG, no global seed).

    Args:
      layer_sizes: ``[n_0, n_1, ..., n_L]``, the input width first.
      seed: seeds a local ``numpy.random.Generator``.

    Returns:
      ``{"W1": (n_1, n_0), "b1": (n_1, 1), ..., "WL", "bL"}`` as float64 NumPy arrays.
    """
    rng = np.random.default_rng(seed)
    params = {}
    for l in range(1, len(layer_sizes)):
        fan_in = layer_sizes[l - 1]
        params[f"W{l}"] = rng.standard_normal((layer_sizes[l], fan_in)) * np.sqrt(2.0 / fan_in)
        params[f"b{l}"] = np.zeros((layer_sizes[l], 1))
    return params


def linear_combination(A_prev, W, b):
    """Z = W A_prev + b, one layer's pre-activation.

    Args:
      A_prev: (n_{l-1}, m) the previous layer's activations, one column per example.
      W: (n_l, n_{l-1}) weights.
      b: (n_l, 1) biases, broadcast over the columns.

    Returns:
      Z, (n_l, m).
    """
    return W @ A_prev + b


def relu(Z):
    """max(0, Z), elementwise.

    Args:
      Z: pre-activations.

    Returns:
      An array shaped like ``Z``.
    """
    return np.maximum(0, Z)


def sigmoid(Z):
    """1 / (1 + exp(-Z)), elementwise.

    Args:
      Z: pre-activations.

    Returns:
      Values in (0, 1), shaped like ``Z``.
    """
    return 1.0 / (1.0 + np.exp(-Z))


def relu_gradient(Z):
    """ReLU's derivative: 1 where Z > 0, else 0 (0 at Z = 0, as PyTorch).

    Args:
      Z: the pre-activations the ReLU saw.

    Returns:
      A 0/1 array shaped like ``Z``, in its dtype.
    """
    return (Z > 0).astype(Z.dtype)


def num_layers(params) -> int:
    """The number of layers L in a parameter dict holding W1, b1, ..., WL, bL.

    Args:
      params: from :func:`initialize_parameters`.

    Returns:
      L.
    """
    return len(params) // 2


def forward_propagation(X, params):
    """Returns the output AL (1, m) and the caches (A_prev, W, b, Z) of every layer.

    Args:
      X: (n_0, m) inputs, one column per example.
      params: from :func:`initialize_parameters`.

    Returns:
      ``(AL, caches)``: the sigmoid outputs (1, m), and per layer the tuple the backward pass reads.
    """
    caches, A, L = [], X, num_layers(params)
    for l in range(1, L + 1):
        W, b = params[f"W{l}"], params[f"b{l}"]
        Z = linear_combination(A, W, b)
        caches.append((A, W, b, Z))
        A = relu(Z) if l < L else sigmoid(Z)
    return A, caches


def compute_error(AL, Y):
    """Mean binary cross-entropy (with the tutorial's sign typo fixed).

    Args:
      AL: (1, m) predicted probabilities, strictly inside (0, 1).
      Y: (1, m) labels, 0 or 1.

    Returns:
      The cost as a Python float.
    """
    m = Y.shape[1]
    return float(-(1.0 / m) * np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)))


def backward_linear_combination(dZ, A_prev, W, b):
    """Backward through Z = W A_prev + b, with the gradients averaged over the m examples.

    Args:
      dZ: (n_l, m) gradient of the per-example cost with respect to Z.
      A_prev: (n_{l-1}, m) the layer's input.
      W: (n_l, n_{l-1}) its weights.
      b: its biases (unused; kept for the tutorial's signature).

    Returns:
      ``(dA_prev, dW, db)``: the gradient for the layer below (n_{l-1}, m), and the mean gradients of
      ``W`` and ``b``.
    """
    m = A_prev.shape[1]
    dW = (1.0 / m) * dZ @ A_prev.T
    db = (1.0 / m) * np.sum(dZ, axis=1, keepdims=True)
    return W.T @ dZ, dW, db


def backward_propagation(AL, Y, caches):
    """Gradients of the mean BCE: dZ_L = AL - Y, then back through ReLU layers.

    Args:
      AL: (1, m) outputs of :func:`forward_propagation`.
      Y: (1, m) labels.
      caches: the caches :func:`forward_propagation` returned.

    Returns:
      ``{"dW1": ..., "db1": ..., ...}``, each shaped like its parameter.
    """
    grads, L, dA = {}, len(caches), None
    dZ = AL - Y  # dE/dZ_L for a sigmoid output and BCE (per example; 1/m is applied below)
    for l in range(L, 0, -1):
        A_prev, W, b, Z = caches[l - 1]
        if l < L:
            dZ = dA * relu_gradient(Z)  # dA comes from the layer above
        dA, grads[f"dW{l}"], grads[f"db{l}"] = backward_linear_combination(dZ, A_prev, W, b)
    return grads


def update_parameters(params, grads, learning_rate):
    """Plain SGD: p <- p - lr * dp.

    Args:
      params: ``{"W1": ..., "b1": ..., ...}``.
      grads: ``{"dW1": ..., "db1": ..., ...}``, as :func:`backward_propagation` names them.
      learning_rate: the step size.

    Returns:
      The new parameter dict (``params`` is not changed).
    """
    return {name: value - learning_rate * grads[f"d{name}"] for name, value in params.items()}


# ------------------------------------------------------------------ the same backward pass in JAX


def jax_loss(params, X, Y):
    """The same network and cost in jax.numpy (differentiable by jax.grad).

    Args:
      params: ``{"W1": ..., "b1": ..., ...}`` (NumPy or JAX arrays).
      X: (n_0, m) inputs, one column per example.
      Y: (1, m) labels.

    Returns:
      The mean binary cross-entropy, a scalar JAX array.
    """
    import jax.numpy as jnp

    A, L = X, num_layers(params)
    for l in range(1, L + 1):
        Z = params[f"W{l}"] @ A + params[f"b{l}"]
        A = jnp.maximum(Z, 0) if l < L else 1 / (1 + jnp.exp(-Z))
    return -jnp.mean(Y * jnp.log(A) + (1 - Y) * jnp.log(1 - A))


def jax_backward(params, X, Y):
    """The tutorial's backward pass written in JAX over the parameter pytree: (loss, grads).

    ``grads`` has the keys of ``params`` (W1, b1, ...), so it can be compared
    with ``jax.grad(jax_loss)`` leaf by leaf and fed to any pytree optimizer.

    Args:
      params: ``{"W1": ..., "b1": ..., ...}``.
      X: (n_0, m) inputs, one column per example.
      Y: (1, m) labels.

    Returns:
      ``(loss, grads)``: the mean BCE and its gradient, keyed like ``params``.
    """
    import jax.numpy as jnp

    m, L = X.shape[1], num_layers(params)
    caches, A = [], X
    for l in range(1, L + 1):
        Z = params[f"W{l}"] @ A + params[f"b{l}"]
        caches.append((A, Z))
        A = jnp.maximum(Z, 0) if l < L else 1 / (1 + jnp.exp(-Z))
    loss = -jnp.mean(Y * jnp.log(A) + (1 - Y) * jnp.log(1 - A))
    grads, dA = {}, None
    dZ = A - Y
    for l in range(L, 0, -1):
        A_prev, Z = caches[l - 1]
        if l < L:
            dZ = dA * (Z > 0)
        grads[f"W{l}"] = dZ @ A_prev.T / m
        grads[f"b{l}"] = jnp.sum(dZ, axis=1, keepdims=True) / m
        dA = params[f"W{l}"].T @ dZ
    return loss, grads
