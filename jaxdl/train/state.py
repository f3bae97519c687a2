"""TrainState: everything a training step reads and replaces, as one pytree."""

from __future__ import annotations

from typing import Any

import flax.struct as struct
import jax
import jax.numpy as jnp
import optax


class TrainState(struct.PyTreeNode):
    """Parameters, batch statistics, optimizer state, step and PRNG key.

    ``key`` is a raw uint32 PRNG key (``jax.random.PRNGKey``), so checkpoints
    store it as a plain array; each step draws its dropout and sampling keys
    as ``fold_in(key, step)``, which makes a resumed run replay the same keys.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    key: jax.Array
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, variables: dict[str, Any], tx: optax.GradientTransformation, key: jax.Array) -> TrainState:
        """A fresh state from a Flax ``variables`` dict (``params`` and optional ``batch_stats``)."""
        params = variables["params"]
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=tx.init(params),
            key=key,
            tx=tx,
        )

    def apply_gradients(self, grads: Any, batch_stats: Any) -> TrainState:
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(
            step=self.step + 1,
            params=optax.apply_updates(self.params, updates),
            batch_stats=batch_stats,
            opt_state=opt_state,
        )

    def variables(self) -> dict[str, Any]:
        """The Flax variables dict for ``model.apply``."""
        return {"params": self.params, **({"batch_stats": self.batch_stats} if self.batch_stats else {})}
