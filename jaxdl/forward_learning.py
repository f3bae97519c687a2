"""Forward gradients that learn: activity perturbation, several tangents, local losses and guesses.

The forward gradient of Baydin et al. (2022) estimates ``g = grad f`` from one
``jvp`` along a random direction ``v ~ N(0, I_n)``: ``(g . v) v``. It is
unbiased (``E[v v^T] = I``) and its total variance is ``(n + 1) |g|^2``, so it
stops learning once n is the size of a network. Ren et al. ("Scaling Forward
Gradient With Local Losses", 2023) shrink n in two ways, both here:

* **activity perturbation**: the tangent perturbs a layer's pre-activations
  ``z = x W + b`` (H numbers per example) instead of its weights
  (``fan_in * H``); the weight gradient ``x^T g_z`` then follows locally.
  For one example the variance falls from ``(fan_in H + 1) |g_W|^2`` to
  ``(H + 1) |g_W|^2``: by about the fan-in.
* **local losses**: each block of the network has its own small linear
  classifier head and loss, with ``stop_gradient`` between blocks, so each
  estimate only has to cover one block (greedy training; LG-BP is the same
  objectives trained by backprop inside each block).

Averaging ``k`` independent tangents divides the variance by k: the squared
cosine between the estimate and ``g`` follows ``Beta(k / 2, (n - 1) / 2)``, of
mean ``k / (k + n - 1)``. Fournier et al. ("Can Forward Gradient Match
Backpropagation?", 2023) replace the random direction by a guess, such as the
gradient of a local loss: ``(g . u) u / |u|^2`` projects g on the guess.

Every estimator is a pure function of arrays and a key, so ``jax.vmap`` batches
it over keys (several draws) or over replicas (several seeds).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxdl.autodiff import forward_gradient as weight_perturbed
from jaxdl.functional import mlp_init, relu, softmax_cross_entropy

__all__ = [
    "activity_perturbed",
    "block_name",
    "blocked_mlp_apply",
    "blocked_mlp_init",
    "cosine",
    "dense_weight_gradient",
    "end_to_end_loss",
    "guessed",
    "local_gradients",
    "local_losses",
    "weight_perturbed",
    "weight_perturbed_mean",
]


def weight_perturbed_mean(loss: Callable, params, key: jax.Array, num_tangents: int) -> tuple[jax.Array, object]:
    """The mean of ``num_tangents`` weight-perturbed forward gradients, each along its own direction.

    Still unbiased; the variance falls to ``(n + 1) |g|^2 / k`` and ``E[cos^2]``
    rises to ``k / (k + n - 1)`` for k tangents over n parameters.

    Args:
      loss: scalar function of ``params``.
      params: the point, any pytree of float arrays.
      key: draws the k directions.
      num_tangents: k >= 1, the jvps averaged.

    Returns:
      ``(loss value, gradient estimate)`` shaped like ``params``.
    """
    if num_tangents < 1:
        raise ValueError(f"num_tangents must be >= 1, got {num_tangents}")
    values, estimates = jax.vmap(lambda k: weight_perturbed(loss, params, k))(jax.random.split(key, num_tangents))
    return values[0], jax.tree.map(lambda e: e.mean(0), estimates)


def activity_perturbed(
    per_example_loss: Callable[[jax.Array], jax.Array], z: jax.Array, key: jax.Array, num_tangents: int = 1
) -> tuple[jax.Array, jax.Array]:
    """Forward-gradient estimate of ``d mean_i l_i / d z`` with one random tangent per example.

    ``per_example_loss(z)`` maps pre-activations ``(B, H)`` to losses ``(B,)``,
    row i depending on ``z[i]`` only. One ``jvp`` along ``u ~ N(0, I)`` of shape
    ``(B, H)`` gives every example's directional derivative ``d_i = g_i . u_i`` at
    once (``g_i = grad l_i(z_i)``), and ``d_i u_i / B`` estimates ``g_i / B``
    without bias, with variance ``(H + 1) |g_i|^2 / B^2`` summed over row i.
    With ``num_tangents = k`` the k estimates are averaged.

    Args:
      per_example_loss: ``(B, H) -> (B,)``, example i reading row i only.
      z: ``(B, H)`` pre-activations (already cut from earlier layers by ``stop_gradient``).
      key: draws the tangents.
      num_tangents: k >= 1.

    Returns:
      ``(mean loss, estimate of its gradient with respect to z, shaped (B, H))``.
    """
    if num_tangents < 1:
        raise ValueError(f"num_tangents must be >= 1, got {num_tangents}")
    if z.ndim != 2:
        raise ValueError(f"z must be (batch, features), got shape {z.shape}")

    def one(k):
        u = jax.random.normal(k, z.shape, z.dtype)
        losses, directional = jax.jvp(per_example_loss, (z,), (u,))
        return losses.mean(), directional[:, None] * u / z.shape[0]

    values, estimates = jax.vmap(one)(jax.random.split(key, num_tangents))
    return values[0], estimates.mean(0)


def dense_weight_gradient(x: jax.Array, grad_z: jax.Array) -> dict[str, jax.Array]:
    """The gradient of a dense layer ``z = x W + b`` from the gradient at its output: ``{w: x^T g_z, b: sum_i g_z,i}``.

    Args:
      x: ``(B, fan_in)`` the layer's inputs.
      grad_z: ``(B, H)`` the loss's gradient (or an estimate of it) with respect to z.

    Returns:
      ``{"w": (fan_in, H), "b": (H,)}``, as :func:`jaxdl.functional.mlp_init` names them.
    """
    return {"w": x.T @ grad_z, "b": grad_z.sum(0)}


def guessed(loss: Callable, params, guess) -> tuple[jax.Array, object]:
    """Fournier et al. (2023): the forward gradient along a guessed direction, ``(g . u) u / |u|^2``.

    One ``jvp`` along ``u`` gives ``g . u``; the result is the projection of the
    true gradient g on the guess. It is biased unless the guess is parallel to g,
    and its cosine to g is ``|cos(u, g)|``: a guess such as a local loss's
    gradient, already close to g, beats a random direction in high dimension.

    Args:
      loss: scalar function of ``params``.
      params: the point.
      guess: a pytree shaped like ``params``, not all zero.

    Returns:
      ``(loss value, projection of the gradient on the guess)``.
    """
    value, directional = jax.jvp(loss, (params,), (guess,))
    norm2 = sum(jnp.sum(u * u) for u in jax.tree.leaves(guess))
    return value, jax.tree.map(lambda u: directional * u / norm2, guess)


def cosine(a, b) -> jax.Array:
    """The cosine between two pytrees of the same structure, read as flat vectors."""
    a, b = ravel_pytree(a)[0], ravel_pytree(b)[0]
    return a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b))


# A blocked MLP for local learning: block i is a dense layer and ReLU, with a linear head to the classes.


def block_name(i: int) -> str:
    return f"block{i}"


def blocked_mlp_init(key: jax.Array, sizes: list[int], num_classes: int, dtype=jnp.float32) -> dict:
    """An MLP of ``len(sizes) - 1`` blocks, each a dense layer with ReLU and a linear classifier head.

    The last block's head is the network's output; the other heads serve the
    local losses only (backprop end to end leaves them untouched).

    Args:
      key: draws the weights (He normal, zero biases).
      sizes: ``[in, hidden_1, ..., hidden_L]``, L >= 1 blocks.
      num_classes: width of every head.
      dtype: parameter dtype.

    Returns:
      ``{"block0": {"dense": {"w", "b"}, "head": {"w", "b"}}, ...}``.
    """
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes needs an input and at least one positive hidden width, got {sizes}")
    keys = jax.random.split(key, 2 * (len(sizes) - 1))
    return {
        block_name(i): {
            "dense": mlp_init(keys[2 * i], [n_in, n_out], dtype=dtype)["dense0"],
            "head": mlp_init(keys[2 * i + 1], [n_out, num_classes], init="glorot", dtype=dtype)["dense0"],
        }
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    }


def _dense(layer: dict, x: jax.Array) -> jax.Array:
    return x @ layer["w"] + layer["b"][None, :]


def blocked_mlp_apply(params: dict, x: jax.Array) -> jax.Array:
    """The network's logits ``(B, classes)``: every block in turn, then the last block's head."""
    for i in range(len(params)):
        x = relu(_dense(params[block_name(i)]["dense"], x))
    return _dense(params[block_name(len(params) - 1)]["head"], x)


def end_to_end_loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """The cross-entropy of the network's output: what backprop trains."""
    return softmax_cross_entropy(blocked_mlp_apply(params, x), y)


def local_losses(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """Each block's greedy loss: the cross-entropy of its head, ``(L,)``.

    ``stop_gradient`` on each block's input cuts the blocks apart, so
    ``jax.grad`` of the sum trains each block (and head) on its own loss
    alone: LG-BP, backprop inside each block.
    """
    losses = []
    for i in range(len(params)):
        block = params[block_name(i)]
        x = relu(_dense(block["dense"], jax.lax.stop_gradient(x)))
        losses.append(softmax_cross_entropy(_dense(block["head"], x), y))
    return jnp.stack(losses)


def local_gradients(
    params: dict, x: jax.Array, y: jax.Array, key: jax.Array, *, estimator: str, num_tangents: int = 1
) -> tuple[jax.Array, dict]:
    """Each block's gradient of its own local loss, exact or estimated by forward mode.

    The heads' gradients are exact in every case: a head is one linear layer
    on the block's output, so its gradient is local and costs no backward pass
    through the block. The dense layer's gradient is:

    * ``"backprop"``: exact (LG-BP);
    * ``"weight"``: :func:`weight_perturbed_mean` over the layer's ``(fan_in + 1) H`` parameters;
    * ``"activity"``: :func:`activity_perturbed` over its ``B x H`` pre-activations, then
      :func:`dense_weight_gradient`.

    Args:
      params: from :func:`blocked_mlp_init`.
      x: ``(B, in)`` inputs.
      y: ``(B,)`` integer labels.
      key: draws the tangents.
      estimator: "backprop", "weight" or "activity".
      num_tangents: tangents averaged per block (forward estimators).

    Returns:
      ``(local losses (L,), gradients shaped like params)``.
    """
    if estimator not in ("backprop", "weight", "activity"):
        raise ValueError(f"estimator must be 'backprop', 'weight' or 'activity', got {estimator!r}")
    losses, grads = [], {}
    for i in range(len(params)):
        x = jax.lax.stop_gradient(x)
        loss, grads[block_name(i)], x = _block_gradient(
            params[block_name(i)], x, y, jax.random.fold_in(key, i), estimator, num_tangents
        )
        losses.append(loss)
    return jnp.stack(losses), grads


def _block_gradient(block: dict, x: jax.Array, y: jax.Array, key: jax.Array, estimator: str, num_tangents: int):
    """(local loss, {"dense", "head"} gradients, block output) of one block; see :func:`local_gradients`."""
    z = _dense(block["dense"], x)
    h = relu(z)

    def per_example(z, head):
        return softmax_cross_entropy(_dense(head, relu(z)), y, reduction="none")

    loss, head_grad = jax.value_and_grad(lambda head: softmax_cross_entropy(_dense(head, h), y))(block["head"])
    if estimator == "backprop":
        dense_grad = jax.grad(lambda d: per_example(_dense(d, x), block["head"]).mean())(block["dense"])
    elif estimator == "weight":
        _, dense_grad = weight_perturbed_mean(
            lambda d: per_example(_dense(d, x), block["head"]).mean(), block["dense"], key, num_tangents
        )
    else:
        _, grad_z = activity_perturbed(lambda z: per_example(z, block["head"]), z, key, num_tangents)
        dense_grad = dense_weight_gradient(x, grad_z)
    return loss, {"dense": dense_grad, "head": head_grad}, h
