"""Many runs as one: a TrainState whose every leaf has a leading replica axis, trained by ``jax.vmap``.

Replica i of :func:`init_replicas` starts exactly where ``init_state(task, tx,
data, jax.random.key(seeds[i]))`` starts, and :func:`jaxdl.train.fit` given
the stacked state and the stacked shuffling keys trains all replicas in one
compiled program: replica i ends as the single run of seed ``seeds[i]`` would,
to float32 rounding. Hyperparameters that change only values, not shapes
(learning rates, weight decay), can differ between replicas: build the
optimizer with :func:`injected` and give each replica its values.

Example:
    >>> tx = injected(lambda lr: optax.adam(lr), lr=1e-3)
    >>> state, keys = init_replicas(task, tx, train, seeds=[0, 1, 0, 1],
    ...                             hyperparams={"lr": [1e-3, 1e-3, 3e-3, 3e-3]})
    >>> result = fit(task, state, train, epochs=5, batch_size=100, key=keys)
    >>> result.evaluate(test)["accuracy"]  # one per replica
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl.compilation_cache import run_once
from jaxdl.data.dataset import Dataset, as_arrays
from jaxdl.errors import JaxdlError
from jaxdl.train.state import TrainState, raw_key
from jaxdl.train.task import Task


def injected(factory: Callable[..., optax.GradientTransformation], **values: float) -> optax.GradientTransformation:
    """``optax.inject_hyperparams`` over ``factory(**values)``: the values live in the optimizer state
    (``opt_state.hyperparams``), so each replica of a vmapped run can hold its own.

    ``factory`` takes the named values as keyword arguments and may use them anywhere, a
    schedule's peak included (``lambda peak_lr: optax.adam(optax.cosine_onecycle_schedule(n, peak_lr))``).

    Args:
      factory: builds the optimizer from the named values, passed as keyword
        arguments.
      **values: each hyperparameter's initial value; :func:`with_hyperparams`
        (or ``init_replicas(hyperparams=...)``) sets per-replica values later.

    Returns:
      The optimizer, whose state holds the values under ``hyperparams``.

    Example:
      >>> tx = injected(lambda lr: optax.sgd(lr), lr=0.5)
      >>> float(tx.init({"w": jnp.zeros(2)}).hyperparams["lr"])
      0.5
    """

    def inner(**kwargs):
        return factory(**kwargs)

    # inject_hyperparams reads the factory's signature to find the values it stores.
    inner.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in values]
    )
    return optax.inject_hyperparams(inner)(**{name: float(v) for name, v in values.items()})


def init_replicas(
    task: Task,
    tx: optax.GradientTransformation,
    data: dict[str, np.ndarray] | Dataset,
    seeds: Sequence[int],
    *,
    batch_size: int = 8,
    hyperparams: Mapping[str, Sequence[float]] | None = None,
) -> tuple[TrainState, jax.Array]:
    """R = len(seeds) fresh TrainStates stacked on a leading axis, and their shuffling keys ``(R, 2)``.

    Replica i is :func:`jaxdl.train.init_state` of ``jax.random.key(seeds[i])``. ``hyperparams``
    gives each replica its own value of optimizer hyperparameters declared with :func:`injected`.

    Args:
      task: the model, loss and preprocessing.
      tx: the optimizer, the same for every replica (built with :func:`injected`
        when ``hyperparams`` is given).
      data: the training data; only its first ``batch_size`` examples are read,
        for shapes and dtypes.
      seeds: one seed per replica; repeating a seed repeats its initialisation
        (e.g. to compare learning rates from the same start).
      batch_size: the size of the sample batch used for initialisation.
      hyperparams: ``{name: one value per replica}`` for injected hyperparameters.

    Returns:
      ``(state, shuffle_keys)``: the stacked TrainState (every leaf with a
      leading axis of R) and the raw shuffling keys ``(R, 2)`` to pass to
      :func:`jaxdl.train.fit` as ``key``.

    Raises:
      JaxdlError: no seeds, the R states would not fit in the device's memory,
        or ``hyperparams`` does not match the injected ones.
    """
    if not len(seeds):
        raise JaxdlError("init_replicas needs at least one seed")
    data = as_arrays(data)
    # Before allocating: R states must fit, with room for their gradients and updates.
    check_memory(3 * len(seeds) * state_bytes(task, tx, data, batch_size), f"{len(seeds)} replicas' states")
    sample = {name: np.asarray(array[:batch_size]) for name, array in data.items()}
    sample["mask"] = np.ones(len(next(iter(sample.values()))), bool)

    def one(key):
        init_key, step_key, shuffle_key = jax.random.split(key, 3)
        variables = task.init(init_key, sample)
        return TrainState.create(variables, tx, step_key), raw_key(shuffle_key)

    keys = jnp.stack([jax.random.key(int(s)) for s in seeds])
    # Compiled, as init_state is: the CNN's eager init dispatches every convolution alone.
    state, shuffle_keys = run_once(jax.vmap(one), keys)
    if hyperparams:
        state = with_hyperparams(state, hyperparams)
    return state, shuffle_keys


def with_hyperparams(state: TrainState, hyperparams: Mapping[str, Sequence[float]]) -> TrainState:
    """The stacked ``state`` with replica i's injected hyperparameter ``name`` set to ``hyperparams[name][i]``.

    Args:
      state: a stacked TrainState whose optimizer was built with :func:`injected`.
      hyperparams: ``{name: values}``, one value per replica for each named
        hyperparameter; names not given keep their values.

    Returns:
      The state with ``opt_state.hyperparams`` replaced.

    Raises:
      JaxdlError: the optimizer has no injected hyperparameters, a name is not
        among them, or a list's length is not the number of replicas.
    """
    stored = getattr(state.opt_state, "hyperparams", None)
    if stored is None:
        raise JaxdlError("per-replica hyperparameters need an optimizer built with jaxdl.train.injected")
    replicas = state.step.shape[0]
    values = dict(stored)
    for name, column in hyperparams.items():
        if name not in stored:
            raise JaxdlError(f"hyperparameter {name!r} is not injected; the optimizer has {', '.join(stored)}")
        column = jnp.asarray(column, stored[name].dtype)
        if column.shape != (replicas,):
            raise JaxdlError(f"hyperparameter {name!r}: {column.shape[0]} values for {replicas} replicas")
        values[name] = column
    return state.replace(opt_state=state.opt_state._replace(hyperparams=values))


def available_bytes() -> int | None:
    """Memory the first device can still take: a GPU's free memory, on a CPU the host's ``MemAvailable``.

    Returns:
      Bytes available, or None where neither is known.
    """
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(needed: int, what: str) -> None:
    """JaxdlError if ``needed`` bytes exceed what the device has left (when that is known).

    Checked before allocating, so an oversized study fails with a message
    instead of an out-of-memory crash part-way.

    Args:
      needed: the estimated bytes.
      what: what needs them, for the message (e.g. "8 replicas' states").

    Raises:
      JaxdlError: ``needed`` exceeds :func:`available_bytes`.
    """
    free = available_bytes()
    if free is not None and needed > free:
        raise JaxdlError(
            f"{what} need an estimated {needed / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB available; "
            "use fewer seeds or grid values"
        )


def state_bytes(task: Task, tx: optax.GradientTransformation, data: dict[str, np.ndarray], batch_size: int) -> int:
    """Bytes of one run's TrainState, from shapes alone (nothing is computed).

    Args:
      task: the model, loss and preprocessing.
      tx: the optimizer (its state counts too).
      data: ``{name: array}``; only shapes and dtypes are read.
      batch_size: the sample batch's size for initialisation.

    Returns:
      The total bytes of the state's arrays: parameters, batch statistics,
      optimizer state, step and key.
    """
    sample = {name: jax.ShapeDtypeStruct((batch_size, *np.shape(a)[1:]), np.asarray(a[:1]).dtype)
              for name, a in data.items()}  # fmt: skip
    sample["mask"] = jax.ShapeDtypeStruct((batch_size,), jnp.bool_)

    def one(key, sample):
        return TrainState.create(task.init(key, sample), tx, key)

    shapes = jax.eval_shape(one, jax.ShapeDtypeStruct((2,), jnp.uint32), sample)
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes))


def replica(tree: Any, index: int) -> Any:
    """Replica ``index`` of a stacked state (or any tree with a leading replica axis).

    Args:
      tree: a pytree whose every leaf has the replica axis first.
      index: which replica, 0 to R - 1.

    Returns:
      The same tree with the replica axis indexed away: one run's state.
    """
    return jax.tree.map(lambda x: x[index], tree)
