"""TrainState: everything a training step reads and replaces, as one pytree; and how to make the first one."""

from __future__ import annotations

from typing import Any

import flax.struct as struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl.compilation_cache import run_once
from jaxdl.data.dataset import Dataset, as_arrays
from jaxdl.train.task import Task


def raw_key(key: jax.Array) -> jax.Array:
    """A PRNG key as raw uint32 data, whether it came from ``jax.random.key`` or ``PRNGKey``.

    Args:
      key: a typed key (``jax.random.key``) or a raw uint32 one (``PRNGKey``).

    Returns:
      The key's raw uint32 data (shape ``(2,)`` for the default threefry
      implementation); a raw key is returned as it is.

    Example:
      >>> raw_key(jax.random.key(0)).dtype
      dtype('uint32')
    """
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


class TrainState(struct.PyTreeNode):
    """Parameters, batch statistics, optimizer state, step and PRNG key.

    ``key`` is kept as raw uint32 data (typed keys are converted), so
    checkpoints store it as a plain array; each step draws its dropout and
    sampling keys as ``fold_in(key, step)``, which makes a resumed run replay
    the same keys.

    Attributes:
      step: optimizer steps taken, an int32 scalar.
      params: the model's parameters (Flax's ``"params"`` collection).
      batch_stats: batch-normalisation statistics, ``{}`` when the model has none.
      opt_state: the optimizer's state.
      key: the per-step PRNG key, raw uint32.
      tx: the optimizer; static (not a pytree leaf), so it is never checkpointed.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    key: jax.Array
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, variables: dict[str, Any], tx: optax.GradientTransformation, key: jax.Array) -> TrainState:
        """A fresh state from a Flax ``variables`` dict (``params`` and optional ``batch_stats``).

        Args:
          variables: what ``Task.init`` returned: ``"params"``, and
            ``"batch_stats"`` when the model has batch normalisation.
          tx: the optimizer; its state is initialised from the parameters.
          key: the per-step PRNG key (typed or raw; stored raw).

        Returns:
          A TrainState at step 0.
        """
        params = variables["params"]
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=tx.init(params),
            key=raw_key(key),
            tx=tx,
        )

    def apply_gradients(self, grads: Any, batch_stats: Any) -> TrainState:
        """One optimizer step: the state after applying ``grads``, with the step counted.

        Args:
          grads: gradients of the loss, a pytree shaped like ``params``.
          batch_stats: the batch statistics the forward pass returned, stored
            as they are.

        Returns:
          A new TrainState with updated parameters, optimizer state and batch
          statistics, and ``step`` increased by one; ``key`` is unchanged.
        """
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(
            step=self.step + 1,
            params=optax.apply_updates(self.params, updates),
            batch_stats=batch_stats,
            opt_state=opt_state,
        )


def init_state(
    task: Task,
    tx: optax.GradientTransformation,
    data: dict[str, np.ndarray] | Dataset,
    key: jax.Array,
    *,
    batch_size: int = 8,
) -> tuple[TrainState, jax.Array]:
    """A fresh TrainState for ``task``, shaped by the first examples of ``data``, and the shuffling key.

    ``key`` (typed or raw) splits into the initialisation, per-step (dropout,
    sampling, augmentation) and shuffling keys, so a run is fixed by it.

    Args:
      task: the model, loss and preprocessing; initialised on a sample batch.
      tx: the optimizer.
      data: the training data, as ``{name: array}`` or a Dataset; only the
        first ``batch_size`` examples are read, for their shapes and dtypes.
      key: the run's PRNG key (typed or raw).
      batch_size: the size of the sample batch used for initialisation; the
        parameters do not depend on it.

    Returns:
      ``(state, shuffle_key)``: pass ``shuffle_key`` to :func:`jaxdl.train.fit` as ``key``.

    Example:
      >>> state, shuffle_key = init_state(task, optax.adam(1e-3), train, jax.random.key(0))
    """
    init_key, step_key, shuffle_key = jax.random.split(key, 3)
    data = as_arrays(data)
    sample = {name: np.asarray(array[:batch_size]) for name, array in data.items()}
    sample["mask"] = np.ones(len(next(iter(sample.values()))), bool)
    # Compiled: run op by op, every im2col convolution of the CNN's initialisation would be dispatched alone.
    variables = run_once(task.init, init_key, sample)
    return TrainState.create(variables, tx, step_key), raw_key(shuffle_key)
