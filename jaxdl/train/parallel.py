"""Data parallelism: one global batch split over a 1-D device mesh, the rest left to ``jit``.

The engine's arithmetic is written for one global batch. Placing that batch
with a ``NamedSharding`` over the mesh's ``data`` axis, and parameters,
optimizer state and keys replicated, lets XLA's SPMD partitioner run each
device on its slice and insert the collectives: the gradient's all-reduce,
and the batch-norm means and variances over the whole global batch, exactly
what one device would compute. The training set is sharded by example (each
device holds 1/N of it; a batch's rows are gathered locally and summed over
devices), evaluation data are replicated.

Across processes (``jax.distributed``) the mesh spans every process's
devices, and :func:`shard_examples` transfers to each process's devices only
the rows they hold.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxdl.errors import JaxdlError

DATA_AXIS = "data"


def data_mesh(devices: int = 0) -> Mesh:
    """A mesh over the first ``devices`` of ``jax.devices()`` (0: all of them), axis ``data``.

    Args:
      devices: how many devices to use; 0 means all that JAX sees. A
        multi-process run must use all of them.

    Returns:
      A 1-D Mesh whose one axis is named ``DATA_AXIS`` ("data").

    Raises:
      JaxdlError: more devices asked for than JAX sees, or fewer than all in
        a multi-process run.

    Example:
      >>> data_mesh().axis_names
      ('data',)
    """
    available = jax.devices()
    count = devices or len(available)
    if count > len(available):
        hint = " (on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N)"
        raise JaxdlError(
            f"devices={count}, but JAX sees {len(available)} {available[0].platform} device(s)"
            + (hint if available[0].platform == "cpu" else "")
        )
    if count < len(available) and jax.process_count() > 1:
        raise JaxdlError(f"devices={count}: a multi-process run uses all {len(available)} devices (devices=0)")
    return Mesh(np.array(available[:count]), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device of ``mesh`` holds the whole array (parameters, optimizer state, keys).

    Args:
      mesh: the data mesh of :func:`data_mesh`.

    Returns:
      A NamedSharding with an empty PartitionSpec.
    """
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (example) axis split over the mesh, other axes whole.

    Args:
      mesh: the data mesh of :func:`data_mesh`.

    Returns:
      A NamedSharding splitting axis 0 over ``DATA_AXIS``; the leading axis
      must divide by ``mesh.size``.
    """
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Checks that a global batch divides evenly over the mesh's devices.

    Args:
      batch_size: the global batch size (all devices together).
      mesh: the data mesh.

    Raises:
      JaxdlError: ``batch_size`` is not a multiple of ``mesh.size``.
    """
    if batch_size % mesh.size:
        raise JaxdlError(
            f"batch_size {batch_size} does not divide over {mesh.size} devices; "
            f"use a multiple of {mesh.size} or set devices"
        )


def _place(array: Any, sharding: NamedSharding) -> jax.Array:
    # Each process builds only the shards of its own devices, from the same host array.
    host = np.asarray(array)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def place(tree: Any, sharding: NamedSharding) -> Any:
    """Every leaf of ``tree`` as a global array placed by ``sharding``.

    Args:
      tree: a pytree of host or device arrays, the same in every process.
      sharding: how each leaf is laid out over the mesh's devices.

    Returns:
      The same tree with each leaf a ``jax.Array`` placed by ``sharding``.
    """
    return jax.tree.map(lambda x: _place(x, sharding), tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every leaf of ``tree`` as a global array replicated over ``mesh``.

    Args:
      tree: a pytree of host or device arrays, the same in every process.
      mesh: the data mesh.

    Returns:
      The same tree with each leaf a ``jax.Array`` sharded by :func:`replicated`.
    """
    return jax.tree.map(lambda x: _place(x, replicated(mesh)), tree)


def shard_examples(data: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Arrays split by example over ``mesh``, zero-padded to a multiple of its size.

    The padding rows are never drawn: epochs draw indices below the true count.

    Args:
      data: ``{name: array}``, examples on the leading axis, equal in length.
      mesh: the data mesh; each device gets ``ceil(n / mesh.size)`` rows.

    Returns:
      ``{name: jax.Array}`` sharded by :func:`batch_sharded`, each padded with
      zero rows to a multiple of ``mesh.size``; each process transfers only
      its own devices' rows.
    """
    n = len(next(iter(data.values())))
    padded = -(-n // mesh.size) * mesh.size

    def pad(array: np.ndarray) -> np.ndarray:
        array = np.asarray(array)
        if padded == n:
            return array
        return np.concatenate([array, np.zeros((padded - n, *array.shape[1:]), array.dtype)])

    return {name: _place(pad(array), batch_sharded(mesh)) for name, array in data.items()}


def initialize_distributed(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """``jax.distributed.initialize``, also reading ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``.

    JAX itself reads ``JAX_COORDINATOR_ADDRESS`` and detects Slurm, Open MPI
    and Cloud TPU; anything left unset is left to that detection. Call it once
    per process, before any other JAX call.

    Args:
      coordinator: ``HOST:PORT`` of process 0's coordination service (None:
        from the environment or cluster detection).
      num_processes: the number of processes (None: ``JAX_NUM_PROCESSES`` or
        detection).
      process_id: this process's index, 0 to ``num_processes - 1`` (None:
        ``JAX_PROCESS_ID`` or detection).

    Raises:
      JaxdlError: an environment variable is not an integer, or JAX could not
        initialise (e.g. missing settings, coordinator unreachable).
    """

    def env_int(name: str) -> int | None:
        value = os.environ.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise JaxdlError(f"{name} must be an integer, got {value!r}") from None

    num_processes = num_processes if num_processes is not None else env_int("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else env_int("JAX_PROCESS_ID")
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    except (ValueError, RuntimeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise JaxdlError(
            f"{{distributed}}: {first_line} (give {{coordinator}} HOST:PORT, {{num_processes}} and {{process_id}}, "
            "or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID)"
        ) from None
