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
  objectives trained by backprop inside each block). With G heads per block,
  head j's loss reaches only the j-th group of the block's units, so an
  activity-perturbed estimate covers ``H / G`` directions per example and head.

Averaging ``k`` independent tangents divides the variance by k: the squared
cosine between the estimate and ``g`` follows ``Beta(k / 2, (n - 1) / 2)``, of
mean ``k / (k + n - 1)``. Fournier et al. ("Can Forward Gradient Match
Backpropagation?", 2023) replace the random direction by a guess, such as the
gradient of a local loss: ``(g . u) u / |u|^2`` projects g on the guess.

Every estimator is a pure function of arrays and a key, so ``jax.vmap`` batches
it over keys (several draws) or over replicas (several seeds).
"""

from __future__ import annotations

import math
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
    "group_losses",
    "guessed",
    "local_gradients",
    "local_losses",
    "random_signs",
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


def random_signs(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Independent fair ``+1`` / ``-1`` entries (Rademacher), 32 from each random 32-bit word.

    A tangent needs ``E[u u^T] = I``, which random signs have as normal draws do; drawing a normal costs a
    whole random word, a sign one bit of one.

    Args:
      key: the draw's key.
      shape: the array's shape.
      dtype: its dtype.

    Returns:
      An array of ``shape`` holding -1 and 1.
    """
    n = math.prod(shape)
    words = jax.random.bits(key, (-(-n // 32),), jnp.uint32)
    bits = (words[:, None] >> jnp.arange(32, dtype=jnp.uint32)[None, :]) & 1
    return (2 * bits.reshape(-1)[:n].astype(dtype) - 1).reshape(shape)


def activity_perturbed(
    per_example_loss: Callable[[jax.Array], jax.Array],
    z: jax.Array,
    key: jax.Array,
    num_tangents: int = 1,
    *,
    signs: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """Forward-gradient estimate of the gradient of ``mean(per_example_loss(z))`` with respect to ``z``.

    ``per_example_loss(z)`` maps pre-activations ``(B, H)`` to losses ``(B,)``, or
    ``(B, G)`` for G local losses per example, loss ``[i, j]`` reading (in its
    derivative) only row i and the j-th of G equal column groups. One ``jvp``
    along ``u ~ N(0, I)`` of shape ``(B, H)`` then gives every directional
    derivative ``d_ij = g_ij . u_ij`` at once (``g_ij`` the gradient of loss
    ``[i, j]`` over its ``H / G`` inputs), and ``d_ij u_ij / (B G)`` estimates
    ``g_ij / (B G)`` without bias, with variance ``(H / G + 1) |g_ij|^2 / (B G)^2``
    summed over its entries. With ``num_tangents = k`` the k estimates are averaged.
    With ``signs``, ``u`` holds random signs (:func:`random_signs`) instead: still
    unbiased, with variance ``(H / G - 1) |g_ij|^2 / (B G)^2``, and far cheaper to
    draw when many tangents make the draws most of the work.

    Args:
      per_example_loss: ``(B, H) -> (B,)`` or ``(B, G)``, as above.
      z: ``(B, H)`` pre-activations (already cut from earlier layers by ``stop_gradient``).
      key: draws the tangents.
      num_tangents: k >= 1.
      signs: draw random signs rather than normal tangents.

    Returns:
      ``(mean loss, estimate of its gradient with respect to z, shaped (B, H))``.
    """
    if num_tangents < 1:
        raise ValueError(f"num_tangents must be >= 1, got {num_tangents}")
    if z.ndim != 2:
        raise ValueError(f"z must be (batch, features), got shape {z.shape}")

    def one(k):
        u = random_signs(k, z.shape, z.dtype) if signs else jax.random.normal(k, z.shape, z.dtype)
        losses, directional = jax.jvp(per_example_loss, (z,), (u,))
        directional = directional.reshape(z.shape[0], -1)  # (B, G)
        groups = directional.shape[1]
        if z.shape[1] % groups:
            raise ValueError(f"{groups} loss groups do not split {z.shape[1]} features evenly")
        grouped = u.reshape(z.shape[0], groups, -1) * directional[:, :, None]
        return losses.mean(), grouped.reshape(z.shape) / directional.size

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
    """The cosine between two pytrees of the same structure, read as flat vectors.

    Args:
      a: a pytree of arrays, such as a gradient estimate.
      b: a pytree of the same structure, such as the exact gradient.

    Returns:
      ``a . b / (|a| |b|)``, a scalar.
    """
    a, b = ravel_pytree(a)[0], ravel_pytree(b)[0]
    return a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b))


# A blocked MLP for local learning: block i is a dense layer and ReLU, with G linear heads to the classes.


def block_name(i: int) -> str:
    """The key of block ``i`` in a blocked MLP's parameters.

    Args:
      i: the block's index, from 0 at the input.

    Returns:
      ``"block{i}"``.
    """
    return f"block{i}"


def blocked_mlp_init(key: jax.Array, sizes: list[int], num_classes: int, *, groups: int = 1, dtype=jnp.float32) -> dict:
    """An MLP of ``len(sizes) - 1`` blocks, each a dense layer with ReLU and ``groups`` linear classifier heads.

    Every head reads the whole block output; head j's local loss lets its
    gradient into the j-th group of the block's units only (see
    :func:`local_losses`). The mean of the last block's heads is the network's
    output; the other heads serve the local losses only.

    Args:
      key: draws the weights (He normal dense layers, Glorot uniform heads, zero biases).
      sizes: ``[in, hidden_1, ..., hidden_L]``, L >= 1 blocks, each width a multiple of ``groups``.
      num_classes: width of every head.
      groups: local losses per block.
      dtype: parameter dtype.

    Returns:
      ``{"block0": {"dense": {"w", "b"}, "head": {"w": (G, H, C), "b": (G, C)}}, ...}``.
    """
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes needs an input and at least one positive hidden width, got {sizes}")
    if groups < 1 or any(h % groups for h in sizes[1:]):
        raise ValueError(f"groups must be >= 1 and divide every hidden width {sizes[1:]}, got {groups}")
    keys = jax.random.split(key, 2 * (len(sizes) - 1))

    def heads(k, n_in):
        layers = [
            mlp_init(g, [n_in, num_classes], init="glorot", dtype=dtype)["dense0"] for g in jax.random.split(k, groups)
        ]
        return jax.tree.map(lambda *a: jnp.stack(a), *layers)

    return {
        block_name(i): {
            "dense": mlp_init(keys[2 * i], [n_in, n_out], dtype=dtype)["dense0"],
            "head": heads(keys[2 * i + 1], n_out),
        }
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    }


def _dense(layer: dict, x: jax.Array) -> jax.Array:
    return x @ layer["w"] + layer["b"][None, :]


def _heads(head: dict, h: jax.Array) -> jax.Array:
    """Every head's logits ``(G, B, C)`` from ``h``: ``(B, H)``, or ``(G, B, H)`` one view per head."""
    h = jnp.broadcast_to(h, (head["w"].shape[0], *h.shape[-2:]))
    return jnp.einsum("gbh,ghc->gbc", h, head["w"]) + head["b"][:, None, :]


def group_losses(head: dict, z: jax.Array, y: jax.Array) -> jax.Array:
    """A block's local losses ``(B, G)``: head j's cross-entropy, differentiable in group j of ``z`` only.

    Every head reads ``relu(z)`` whole, as a constant, plus a term that is zero in value and carries the
    derivative: group j of ``relu(z)`` minus itself held constant, times the rows of head j's weights that
    read group j. So a ``jvp`` or a gradient through the heads costs ``B H C`` multiply-adds, a G-th of
    the heads' forward pass, not ``G B H C``: k tangents of an activity-perturbed estimate cost little more
    than one.

    Args:
      head: the block's heads, ``{"w": (G, H, C), "b": (G, C)}``.
      z: ``(B, H)`` the block's pre-activations; every head reads ``relu(z)`` whole.
      y: ``(B,)`` integer labels.

    Returns:
      ``(B, G)`` per-example losses, loss ``[i, j]`` passing derivatives to ``z[i]``'s group j only.
    """
    groups, width, classes = head["w"].shape
    h = relu(z)
    logits = _heads(head, jax.lax.stop_gradient(h))  # (G, B, C), the values
    own = h.reshape(h.shape[0], groups, width // groups)  # (B, G, H / G): group j of every example
    own_rows = head["w"].reshape(groups, groups, width // groups, classes)[jnp.arange(groups), jnp.arange(groups)]
    logits = logits + jnp.einsum("bgk,gkc->gbc", own - jax.lax.stop_gradient(own), own_rows)  # adds 0
    return softmax_cross_entropy(logits, jnp.broadcast_to(y[None], logits.shape[:2]), reduction="none").T


def blocked_mlp_apply(params: dict, x: jax.Array) -> jax.Array:
    """The network's logits: every block in turn, then the mean of the last block's heads.

    Args:
      params: from :func:`blocked_mlp_init`.
      x: ``(B, in)`` inputs.

    Returns:
      ``(B, classes)`` logits.
    """
    for i in range(len(params)):
        x = relu(_dense(params[block_name(i)]["dense"], x))
    return _heads(params[block_name(len(params) - 1)]["head"], x).mean(0)


def end_to_end_loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """The cross-entropy of the network's output: what backprop trains.

    Args:
      params: from :func:`blocked_mlp_init`.
      x: ``(B, in)`` inputs.
      y: ``(B,)`` integer labels.

    Returns:
      The mean cross-entropy, a scalar.
    """
    return softmax_cross_entropy(blocked_mlp_apply(params, x), y)


def local_losses(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """Each block's greedy loss ``(L,)``: the mean over its examples and heads of :func:`group_losses`.

    ``stop_gradient`` on each block's input cuts the blocks apart, so
    ``jax.grad`` of the sum trains each block (and its heads) on its own loss
    alone: LG-BP, backprop inside each block. With G heads, head j's loss
    reaches the dense layer through the j-th group of units only.

    Args:
      params: from :func:`blocked_mlp_init`.
      x: ``(B, in)`` inputs.
      y: ``(B,)`` integer labels.

    Returns:
      ``(L,)`` one loss per block.
    """
    losses = []
    for i in range(len(params)):
        block = params[block_name(i)]
        z = _dense(block["dense"], jax.lax.stop_gradient(x))
        losses.append(group_losses(block["head"], z, y).mean())
        x = relu(z)
    return jnp.stack(losses)


def local_gradients(
    params: dict,
    x: jax.Array,
    y: jax.Array,
    key: jax.Array,
    *,
    estimator: str,
    num_tangents: int = 1,
    signs: bool = False,
) -> tuple[jax.Array, dict]:
    """Each block's gradient of its own local loss (:func:`local_losses`), exact or estimated by forward mode.

    The heads' gradients are exact in every case: a head is one linear layer
    on the block's output, so its gradient is local and costs no backward pass
    through the block. The dense layer's gradient is:

    * ``"backprop"``: exact (LG-BP);
    * ``"weight"``: a weight-perturbed forward gradient: one tangent ``V`` over
      the layer's ``(fan_in + 1) H`` parameters, head j's directional derivative
      scaling V's j-th group of columns (``(fan_in + 1) H / G`` directions each);
    * ``"activity"``: :func:`activity_perturbed` over its ``B x H`` pre-activations
      (``H / G`` directions per example and head), then :func:`dense_weight_gradient`.

    Args:
      params: from :func:`blocked_mlp_init`.
      x: ``(B, in)`` inputs.
      y: ``(B,)`` integer labels.
      key: draws the tangents.
      estimator: "backprop", "weight" or "activity".
      num_tangents: tangents averaged per block (forward estimators).
      signs: the activity-perturbed tangents are random signs (:func:`activity_perturbed`).

    Returns:
      ``(local losses (L,), gradients shaped like params)``.
    """
    if estimator not in ("backprop", "weight", "activity"):
        raise ValueError(f"estimator must be 'backprop', 'weight' or 'activity', got {estimator!r}")
    if num_tangents < 1:
        raise ValueError(f"num_tangents must be >= 1, got {num_tangents}")
    losses, grads = [], {}
    for i in range(len(params)):
        x = jax.lax.stop_gradient(x)
        loss, grads[block_name(i)], x = _block_gradient(
            params[block_name(i)], x, y, jax.random.fold_in(key, i), estimator, num_tangents, signs
        )
        losses.append(loss)
    return jnp.stack(losses), grads


def _block_gradient(
    block: dict, x: jax.Array, y: jax.Array, key: jax.Array, estimator: str, num_tangents: int, signs: bool
):
    """(local loss, {"dense", "head"} gradients, block output) of one block; see :func:`local_gradients`."""
    z = _dense(block["dense"], x)
    loss, head_grad = jax.value_and_grad(lambda head: group_losses(head, z, y).mean())(block["head"])
    if estimator == "backprop":
        dense_grad = jax.grad(lambda d: group_losses(block["head"], _dense(d, x), y).mean())(block["dense"])
    elif estimator == "weight":
        dense_grad = _weight_perturbed_groups(block, x, y, key, num_tangents)
    else:
        _, grad_z = activity_perturbed(lambda z: group_losses(block["head"], z, y), z, key, num_tangents, signs=signs)
        dense_grad = dense_weight_gradient(x, grad_z)
    return loss, {"dense": dense_grad, "head": head_grad}, relu(z)


def _weight_perturbed_groups(block: dict, x: jax.Array, y: jax.Array, key: jax.Array, num_tangents: int) -> dict:
    """The dense layer's weight-perturbed forward gradient, head j's derivative scaling the tangent's group j."""
    groups = block["head"]["w"].shape[0]

    def per_head(dense):  # (G,): head j's loss, mean over the batch, reading group j of the units only
        return group_losses(block["head"], _dense(dense, x), y).mean(0) / groups

    def one(k):
        kw, kb = jax.random.split(k)
        v = {"w": jax.random.normal(kw, block["dense"]["w"].shape, x.dtype),
             "b": jax.random.normal(kb, block["dense"]["b"].shape, x.dtype)}  # fmt: skip
        _, directional = jax.jvp(per_head, (block["dense"],), (v,))
        scale = jnp.repeat(directional, v["b"].shape[0] // groups)  # (H,): each column's head
        return {"w": v["w"] * scale[None, :], "b": v["b"] * scale}

    return jax.tree.map(lambda e: e.mean(0), jax.vmap(one)(jax.random.split(key, num_tangents)))
