"""Plain SGD and momentum written as pure pytree updates (tutorial 3's ``update_parameters``).

Each optimizer is an ``(init, update)`` pair with optax's signature,
``update(grads, state, params) -> (updates, state)``, its state a NamedTuple,
so it drops in wherever an ``optax.GradientTransformation`` goes; the tests
check both against optax step for step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax


class SGDState(NamedTuple):
    """Plain SGD keeps no state."""


def sgd(learning_rate: float) -> optax.GradientTransformation:
    """Tutorial 3's ``update_parameters`` for any pytree: p <- p - lr * dp.

    Args:
      learning_rate: the step size lr.

    Returns:
      An ``optax.GradientTransformation``: ``update`` returns ``-lr * grads`` as the updates, to be
      added with ``optax.apply_updates``.

    Example:
      >>> opt = sgd(0.1)
      >>> updates, _ = opt.update({"w": 2.0}, opt.init({"w": 1.0}))
      >>> updates
      {'w': -0.2}
    """

    def init(params):
        del params
        return SGDState()

    def update(grads, state, params=None):
        del params
        return jax.tree.map(lambda g: -learning_rate * g, grads), state

    return optax.GradientTransformation(init, update)


class MomentumState(NamedTuple):
    """Momentum's state.

    Attributes:
      velocity: the running sum v <- beta v + g, a pytree shaped like the parameters.
    """

    velocity: Any


def momentum(learning_rate: float, beta: float = 0.9) -> optax.GradientTransformation:
    """Heavy-ball momentum: v <- beta v + g; p <- p - lr v (optax.sgd(lr, momentum=beta)).

    Args:
      learning_rate: the step size lr.
      beta: how much of the previous velocity each step keeps, in [0, 1).

    Returns:
      An ``optax.GradientTransformation`` whose state is a :class:`MomentumState`.
    """

    def init(params):
        return MomentumState(jax.tree.map(lambda p: 0.0 * p, params))

    def update(grads, state, params=None):
        del params
        velocity = jax.tree.map(lambda v, g: beta * v + g, state.velocity, grads)
        return jax.tree.map(lambda v: -learning_rate * v, velocity), MomentumState(velocity)

    return optax.GradientTransformation(init, update)
