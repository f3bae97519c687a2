"""Full-batch gradient descent with the whole run compiled as one ``lax.scan``.

For data that fits in one batch (tutorial 0's 1,000 blobs), an epoch is one
step, so the epoch loop itself can live inside XLA: no Python and no dispatch
between epochs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax

# loss_fn(params, batch) -> (scalar loss, {metric name: scalar})
LossFn = Callable[[Any, Any], tuple[jax.Array, dict[str, jax.Array]]]


def full_batch_scan(
    loss_fn: LossFn, optimizer: optax.GradientTransformation, num_epochs: int
) -> Callable[[Any, Any], tuple[Any, dict[str, jax.Array]]]:
    """Returns ``train(params, batch) -> (params, history)`` running ``num_epochs`` updates.

    ``history`` maps "loss" and each metric of ``loss_fn`` to a ``(num_epochs,)``
    array holding the value *before* that epoch's update, as the tutorials log
    it. The returned function is pure and unjitted: wrap it in ``jax.jit``, or
    ``jax.jit(jax.vmap(...))`` to train many initialisations at once.

    Args:
      loss_fn: ``loss_fn(params, batch) -> (scalar loss, {metric name: scalar})``,
        differentiated with respect to ``params``.
      optimizer: the Optax transformation applied once per epoch; its state is
        initialised from ``params`` inside ``train``.
      num_epochs: updates to run, each on the whole batch.

    Returns:
      ``train(params, batch) -> (params after num_epochs updates, history)``.

    Example:
      >>> train = jax.jit(full_batch_scan(loss_fn, optax.sgd(0.1), num_epochs=100))
      >>> params, history = train(params, (x, y))
    """

    def train(params, batch):
        def epoch(carry, _):
            params, opt_state = carry
            (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), {"loss": loss, **metrics}

        (params, _), history = jax.lax.scan(epoch, (params, optimizer.init(params)), length=num_epochs)
        return params, history

    return train
