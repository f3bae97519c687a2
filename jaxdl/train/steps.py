"""The compiled steps: one train step, and a whole epoch as one ``lax.scan`` of them.

``train_step(state, batch) -> (state, metrics)`` computes the loss, its
gradients, the Optax update and the new batch-norm statistics in one jit,
donating the old state's buffers. ``train_steps`` gathers each batch from
data already on the device and loops the same step over any range of an
epoch's steps, so a chunk of steps is one dispatch, every batch has one shape
and nothing recompiles whatever the range. Each step's result depends only
on the state and the step's batch, so an epoch run in one call or in many
chunks ends bitwise the same: fit runs epochs in chunks of bounded duration,
to stop at a step boundary when asked (preemption) and resume there.

Metrics are returned as sums over the batch's real examples plus their
``count``, so padded batches and epochs of any size average exactly.

With a mesh of several devices, each gathered batch is constrained to be
split over the mesh and the state to stay replicated; ``jit`` partitions the
rest (see :mod:`jaxdl.train.parallel`).

**Replicas.** With ``replicas=R`` every leaf of the state has a leading axis
of R independent runs (seeds, or hyperparameter values: see
:func:`jaxdl.train.state.init_replicas`), and the same step runs under
``jax.vmap``: each replica draws its own shuffled batches and keys, and
the R steps compile into one program. The data are shared, not copied.
Metric sums get a trailing replica axis. A replica marked inactive (stopped
early, or diverged) keeps its state: it is computed with the others and put
back at the end of each chunk, and its sums mean nothing. With several devices, the replica axis,
not the batch, is split over the mesh.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxdl.data.batching import epoch_indices, masked_mean, num_batches
from jaxdl.errors import JaxdlError
from jaxdl.train import parallel
from jaxdl.train.state import TrainState
from jaxdl.train.task import Batch, Task

EVAL_KEY_SALT = 2**31 - 1


def _sums(losses: jax.Array, metrics: dict[str, jax.Array], mask: jax.Array) -> dict[str, jax.Array]:
    weights = mask.astype(jnp.float32)
    out = {"loss": jnp.sum(losses * weights), "count": jnp.sum(weights)}
    out.update({name: jnp.sum(values * weights) for name, values in metrics.items()})
    return out


def train_step_fn(task: Task):
    """The unjitted ``train_step(state, batch) -> (state, metric sums)`` of ``task``.

    The step's key is ``fold_in(state.key, state.step)``; the loss differentiated
    is the mean over the batch's real (``mask``) examples.

    Args:
      task: the model, its per-example loss and its preprocessing.

    Returns:
      ``train_step(state, batch)``: the state after one Optax update (new batch-norm
      statistics included), and the metric sums of the batch (``"loss"``, ``"count"``
      and each of the task's metrics, scalars).
    """

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        key = jax.random.fold_in(state.key, state.step)
        mask = batch["mask"]

        def loss_fn(params):
            losses, metrics, batch_stats = task.forward(params, state.batch_stats, batch, key, train=True)
            return masked_mean(losses, mask), (_sums(losses, metrics, mask), batch_stats)

        (_, (sums, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads, batch_stats), sums

    return train_step


def eval_step_fn(task: Task):
    """The unjitted ``eval_step(state, batch, index) -> metric sums``: running averages, no dropout.

    ``index`` numbers the batches of one evaluation: a model that samples at evaluation (the
    VAE's z) draws fresh noise for every batch, so a test loss averages over every example's
    own draw, not over one batch's draws repeated.

    Args:
      task: the model, its per-example loss and its preprocessing.

    Returns:
      ``eval_step(state, batch, index=0)``: the batch's metric sums (``"loss"``,
      ``"count"`` and the task's metrics) with the model in evaluation mode.
    """

    def eval_step(state: TrainState, batch: Batch, index: jax.Array | int = 0) -> dict[str, jax.Array]:
        # Never a training step's key: those fold in the step number, these the salt first.
        key = jax.random.fold_in(jax.random.fold_in(state.key, EVAL_KEY_SALT), index)
        losses, metrics, _ = task.forward(state.params, state.batch_stats, batch, key, train=False)
        return _sums(losses, metrics, batch["mask"])

    return eval_step


def make_train_step(task: Task):
    """``train_step(state, batch)`` under one jit, the state's buffers donated.

    Args:
      task: the model, its per-example loss and its preprocessing.

    Returns:
      The jitted :func:`train_step_fn` of ``task``; the ``state`` passed in is consumed.
    """
    return jax.jit(train_step_fn(task), donate_argnums=0)


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """Training steps in one epoch: the last partial batch is dropped. A learning-rate schedule's length.

    Args:
      num_train: training examples.
      batch_size: examples per step.

    Returns:
      ``num_train // batch_size``.
    """
    return num_batches(num_train, batch_size, drop_remainder=True)


@dataclasses.dataclass(frozen=True)
class EpochFns:
    """Compiled training-step and evaluation functions for one task, batch size and data size.

    Made by :func:`make_epoch_fns`, which documents the data they take.

    Attributes:
      train_steps: ``(state, data, batches, step_sums, first, stop) -> (state, step_sums)``:
        steps ``first`` to ``stop - 1`` of an epoch, jitted, the state and sums donated.
      evaluate: ``(state, data) -> metric sums`` over the whole data set (one per replica).
      steps_per_epoch: training steps per epoch (the last partial batch dropped).
      mesh: the devices each batch (or, with replicas, the replica axis) is split over.
      batch_size: examples per step.
      num_train: training examples drawn from (the first rows of the training data).
      train_step: the unjitted step of one run, ``(state, batch) -> (state, metric sums)``.
      predict: ``(state, data) ->`` the model's outputs for every example, in order (per replica).
      replicas: R, the runs the state's leading axis holds; None for one run and no such axis.
      _sums_shapes: the metric sums' shapes, traced once by :meth:`zero_sums` (a cache).
    """

    train_steps: Any  # (state, data, batches, step_sums, first, stop) -> (state, step_sums)
    evaluate: Any  # (state, data) -> metric sums over the data set (one per replica)
    steps_per_epoch: int
    mesh: Mesh  # the devices each batch (or, with replicas, the replica axis) is split over
    batch_size: int
    num_train: int
    train_step: Any  # the unjitted step of one run
    predict: Any  # (state, data) -> the model's outputs for every example, in order (per replica)
    replicas: int | None = None  # R: the state's leading axis holds R runs; None: one run, no such axis

    def batches(self, key: jax.Array, active: Any = None) -> tuple[jax.Array, ...]:
        """The epoch shuffled by ``key``: ``(indices, mask)``, one row per step (drawn once per epoch,
        not per chunk: a permutation of CIFAR-10's 50,000 rows costs as much as a step).

        With replicas, ``key`` holds one key per replica (``(R, 2)``), each replica gets its own
        order (``(R, steps, batch)``), and ``active`` (R booleans, default all) is appended:
        an inactive replica's state is left as it is.

        Args:
          key: the epoch's PRNG key, or one per replica, ``(R, 2)``.
          active: with replicas, which ones train this epoch, R booleans (default: all).

        Returns:
          ``(indices, mask)``, ``(steps, batch_size)`` each (``(R, steps, batch_size)``
          with replicas, then ``active`` too), replicated over the mesh.
        """
        draw = functools.partial(epoch_indices, num_examples=self.num_train, batch_size=self.batch_size)
        if self.replicas is None:
            return self.place(draw(key))
        active = np.ones(self.replicas, bool) if active is None else np.asarray(active, bool)
        return self.place((*jax.vmap(draw)(key), active))

    def epoch_batches(self, key: jax.Array, epoch: int, active: Any = None) -> tuple[jax.Array, ...]:
        """Epoch ``epoch``'s :meth:`batches`, shuffled by ``fold_in(key, epoch)`` (each replica's key).

        Args:
          key: the run's shuffling key, or one per replica, ``(R, 2)``.
          epoch: the epoch's number, folded into the key.
          active: with replicas, which ones train this epoch, R booleans (default: all).

        Returns:
          What :meth:`batches` returns for the epoch's key.
        """
        if self.replicas is None:
            return self.batches(jax.random.fold_in(key, epoch))
        return self.batches(jax.vmap(jax.random.fold_in, (0, None))(key, epoch), active)

    _sums_shapes: dict = dataclasses.field(default_factory=dict, repr=False)  # traced once

    def zero_sums(self, state: TrainState, data: dict[str, Any]) -> dict[str, np.ndarray]:
        """An epoch's per-step metric sums before its first step, on the host: zeros,
        ``(steps_per_epoch,)`` each, or ``(steps_per_epoch, R)`` with replicas.

        Args:
          state: the training state (abstract shapes suffice), to trace the step's sums.
          data: the training data, for the batch's shapes.

        Returns:
          ``{metric name: zeros}``, ``"loss"`` and ``"count"`` included, as NumPy arrays.
        """
        if not self._sums_shapes:
            if self.replicas is not None:  # one replica's shapes
                state = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), state)
            self._sums_shapes.update(jax.eval_shape(self.train_step, state, _batch_like(data, self.batch_size))[1])
        extra = () if self.replicas is None else (self.replicas,)
        return {k: np.zeros((self.steps_per_epoch, *extra, *s.shape), s.dtype) for k, s in self._sums_shapes.items()}

    def train_epoch(self, state: TrainState, data: dict[str, Any], key: jax.Array):
        """One whole epoch in one call: ``(state, per-step metric sums)``.

        Args:
          state: the training state, placed with :meth:`place_state`; its buffers are donated.
          data: the training data, placed with :meth:`place_train`.
          key: the epoch's shuffling key (one run: replicas use :meth:`epoch_batches`
            and ``train_steps``).

        Returns:
          The state after the epoch, and ``{metric name: (steps_per_epoch,) sums}``.
        """
        sums = self.place(self.zero_sums(state, data))
        return self.train_steps(state, data, self.batches(key), sums, np.int32(0), np.int32(self.steps_per_epoch))

    def place_train(self, data: dict[str, Any]) -> dict[str, jax.Array]:
        """Training arrays as ``train_steps`` takes them: split by example over the mesh (whole on
        every device with replicas, which are split instead).

        Args:
          data: ``{name: array}``, examples on the leading axis.

        Returns:
          The same arrays on the mesh's devices.
        """
        if self.replicas is not None:
            return parallel.replicate(data, self.mesh)
        return parallel.shard_examples(data, self.mesh)

    def place(self, tree: Any) -> Any:
        """A key, sums or evaluation data set as ``train_steps``/``evaluate`` take them: replicated.

        Args:
          tree: a pytree of arrays.

        Returns:
          The tree, each leaf whole on every device of the mesh.
        """
        return parallel.replicate(tree, self.mesh)

    def place_state(self, state: TrainState) -> TrainState:
        """The state as ``train_steps`` takes it: replicated, or with replicas split by replica.

        Args:
          state: the training state (with replicas, every leaf's leading axis is R).

        Returns:
          The state on the mesh's devices.
        """
        if self.replicas is None:
            return self.place(state)
        return parallel.shard_leading(state, self.mesh)


def make_epoch_fns(
    task: Task, batch_size: int, num_train: int, *, mesh: Mesh | None = None, replicas: int | None = None
) -> EpochFns:
    """Builds the jitted train and eval epochs over data held on the devices.

    ``data`` is a dict of arrays with the examples on the leading axis
    ("inputs", "labels", ...), placed with ``EpochFns.place_train`` (training
    data, of which the first ``num_train`` rows are drawn) or ``EpochFns.place``
    (evaluation data). The train epoch shuffles with ``key``; the eval epoch
    walks the data in order with a masked last batch. ``mesh`` defaults to
    every device JAX sees; ``batch_size`` must divide over it, or with
    ``replicas`` (R runs in one program, vmapped), R must.

    Args:
      task: the model, its per-example loss and its preprocessing.
      batch_size: examples per step (per replica).
      num_train: training examples; an epoch is ``num_train // batch_size`` steps.
      mesh: the devices to split over (default: every device JAX sees).
      replicas: R runs trained together under ``jax.vmap``; None for one run.

    Returns:
      The :class:`EpochFns`.

    Raises:
      JaxdlError: a batch size (or replica count) that does not divide over the mesh.
    """
    mesh = mesh if mesh is not None else parallel.data_mesh()
    if replicas is None:
        parallel.check_batch_size(batch_size, mesh)
    elif replicas % mesh.size:
        raise JaxdlError(f"{replicas} replicas do not divide over {mesh.size} devices; use a multiple of {mesh.size}")
    one_step = train_step_fn(task)
    eval_step = eval_step_fn(task)
    # One run: examples split over the mesh, the state whole on every device. Replicas: replicas split.
    split_sharding = parallel.batch_sharded(mesh)
    state_sharding = parallel.replicated(mesh) if replicas is None else split_sharding
    gather = functools.partial(_gather, sharding=split_sharding)

    train_steps = _train_steps_fn(one_step, gather, state_sharding, replicas)

    def per_replica(fn):  # each replica's state on the same data
        return jax.jit(fn if replicas is None else jax.vmap(fn, in_axes=(0, None)))

    return EpochFns(
        train_steps, per_replica(_evaluate_fn(eval_step, gather, batch_size)), steps_per_epoch(num_train, batch_size),
        mesh, batch_size, num_train, one_step, per_replica(_predict_fn(task, gather, batch_size)), replicas,
    )  # fmt: skip


def _train_steps_fn(one_step: Callable, gather: Callable, state_sharding: Any, replicas: int | None) -> Callable:
    """``train_steps(state, data, batches, step_sums, first, stop)``, jitted with the state and the sums
    donated: one run's steps in a ``fori_loop``, or R replicas' under ``jax.vmap``."""

    def replica_chunk(replica, data, first, stop):
        """One replica through steps ``first`` to ``stop - 1`` (vmapped over replicas by the caller);
        an inactive one is then put back as it was (once per chunk: activity changes only between
        epochs)."""
        state, indices, mask, active, rows = replica

        def body(i, carry):
            state, rows = carry
            state, sums = one_step(state, gather(data, indices[i], mask[i]))
            return state, jax.tree.map(lambda r, value: r.at[i].set(value), rows, sums)

        new, rows = jax.lax.fori_loop(first, stop, body, (state, rows))
        return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, state), rows

    @functools.partial(jax.jit, donate_argnums=(0, 3))
    def train_steps(state: TrainState, data: dict[str, jax.Array], batches, step_sums, first, stop):
        """Steps ``first`` to ``stop - 1`` of an epoch's ``batches``; step i's sums go to row i."""
        indices, mask = batches[:2]
        if replicas is not None:
            rows = jax.tree.map(lambda r: r.T, step_sums)  # (R, steps): a replica's rows together
            group = (state, indices, mask, batches[2], rows)
            state, rows = jax.vmap(functools.partial(replica_chunk, data=data, first=first, stop=stop))(group)
            state = jax.lax.with_sharding_constraint(state, state_sharding)
            return state, jax.tree.map(lambda r: r.T, rows)

        def body(i, carry):
            state, step_sums = carry
            state, sums = one_step(state, gather(data, indices[i], mask[i]))
            state = jax.lax.with_sharding_constraint(state, state_sharding)
            return state, jax.tree.map(lambda rows, value: rows.at[i].set(value), step_sums, sums)

        return jax.lax.fori_loop(first, stop, body, (state, step_sums))

    return train_steps


def _gather(data: dict[str, jax.Array], rows: jax.Array, valid: jax.Array, sharding: Any) -> Batch:
    """The batch of ``rows`` (with its ``mask``), its examples split over the devices as ``sharding`` says."""
    return jax.lax.with_sharding_constraint({**{name: array[rows] for name, array in data.items()}, "mask": valid},
                                           sharding)  # fmt: skip


def _evaluate_fn(eval_step: Callable, gather: Callable, batch_size: int) -> Callable:
    """``evaluate(state, data)``: the eval step's sums over ``data`` in order, the last batch masked."""

    def evaluate_one(state: TrainState, data: dict[str, jax.Array]):
        n = jax.tree.leaves(data)[0].shape[0]
        indices, mask = epoch_indices(jax.random.PRNGKey(0), n, batch_size, shuffle=False, drop_remainder=False)

        def body(totals, batch):
            rows, valid, index = batch
            sums = eval_step(state, gather(data, rows, valid), index)
            return jax.tree.map(jnp.add, totals, sums), None

        shapes = jax.eval_shape(eval_step, state, _batch_like(data, batch_size))
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        totals, _ = jax.lax.scan(body, zeros, (indices, mask, jnp.arange(indices.shape[0])))
        return totals

    return evaluate_one


def _predict_fn(task: Task, gather: Callable, batch_size: int) -> Callable:
    """``predict(state, data)``: the task's predictions for every row of ``data``, in order."""

    def predict_one(state: TrainState, data: dict[str, jax.Array]):
        n = jax.tree.leaves(data)[0].shape[0]
        indices, mask = epoch_indices(jax.random.PRNGKey(0), n, batch_size, shuffle=False, drop_remainder=False)
        key = jax.random.fold_in(state.key, EVAL_KEY_SALT)

        def body(_, batch):
            rows, valid, index = batch
            return None, task.predict(
                state.params, state.batch_stats, gather(data, rows, valid), jax.random.fold_in(key, index)
            )

        _, outputs = jax.lax.scan(body, None, (indices, mask, jnp.arange(indices.shape[0])))
        return jax.tree.map(lambda o: o.reshape(-1, *o.shape[2:])[:n], outputs)

    return predict_one


def _batch_like(data: dict[str, jax.Array], batch_size: int) -> Batch:
    batch = {k: jax.ShapeDtypeStruct((batch_size, *v.shape[1:]), v.dtype) for k, v in data.items()}
    return {**batch, "mask": jax.ShapeDtypeStruct((batch_size,), jnp.bool_)}


def averages(sums: dict[str, Any]) -> dict[str, float]:
    """Per-example averages from metric sums (host side).

    Args:
      sums: ``{name: sum}`` with a ``"count"`` of examples; arrays (per step) are summed first.

    Returns:
      ``{name: sum / count}`` for every metric but ``"count"`` (a count of 0 counts as 1).
    """
    sums = {k: float(jnp.sum(v)) for k, v in sums.items()}
    count = max(sums.pop("count"), 1.0)
    return {k: v / count for k, v in sums.items()}


def replica_averages(sums: dict[str, Any]) -> dict[str, np.ndarray]:
    """Each replica's per-example averages from metric sums whose last axis is the replica's
    (an evaluation's ``(R,)``, an epoch's per-step ``(steps, R)``): ``{name: (R,) array}``.

    Args:
      sums: ``{name: array}`` with a ``"count"``, the replica on the last axis.

    Returns:
      ``{name: (R,) float64 array}`` of sums over count, ``"count"`` left out.
    """
    sums = {k: np.asarray(v, np.float64).reshape(-1, np.shape(v)[-1]).sum(0) for k, v in sums.items()}
    count = np.maximum(sums.pop("count"), 1.0)
    return {k: v / count for k, v in sums.items()}
