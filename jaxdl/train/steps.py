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

**Replicas: one code path.** Every program trains R >= 1 independent runs (seeds, or
hyperparameter values: see :func:`jaxdl.train.replicas.init_replicas`) whose state has a
leading axis of R, by running the same step under ``jax.vmap``: each replica draws its own
shuffled batches and keys, and the R steps compile into one program. The data are shared,
not copied. Metric sums get a trailing replica axis. A replica marked inactive (stopped
early, or diverged) keeps its state: it is computed with the others and put back at the end
of each chunk, and its sums mean nothing. A single run is R = 1: its state is stacked to a
leading axis of 1 on the way into each program and unstacked on the way out (inside the
jit, see :func:`_boundary`), so callers see one run's shapes.

The only branch between one replica and several is what the mesh splits
(:func:`_sharding`): one replica's batch examples over the devices, the state
replicated (``jit`` partitions the rest, see :mod:`jaxdl.train.parallel`); several
replicas, the replica axis.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding

from jaxdl.data.batching import epoch_indices, masked_mean, num_batches
from jaxdl.errors import JaxdlError
from jaxdl.train import parallel
from jaxdl.train.state import TrainState, raw_key
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


class _Sharding(NamedTuple):
    """What the programs split over the mesh (chosen by :func:`_sharding`)."""

    state: NamedSharding  # the state's sharding
    split_examples: bool  # the training set split by example over the mesh; False: whole on every device


def _sharding(mesh: Mesh, batch_size: int, replicas: int) -> _Sharding:
    """The one branch between one replica and several: what is split over the mesh.

    One replica (a single run, R = 1): each batch's examples are split over the devices and
    the state is whole on each, so XLA all-reduces the gradients (data parallelism). Several:
    the replicas are split over the devices, each trained whole on its own, and every device
    holds the whole training set, which every replica draws from.
    """
    if replicas == 1:
        parallel.check_batch_size(batch_size, mesh)
        return _Sharding(parallel.replicated(mesh), split_examples=True)
    if replicas % mesh.size:
        raise JaxdlError(f"{replicas} replicas do not divide over {mesh.size} devices; use a multiple of {mesh.size}")
    return _Sharding(parallel.batch_sharded(mesh), split_examples=False)


def _stack(tree: Any) -> Any:
    return jax.tree.map(lambda x: x[None], tree)


def _unstack(tree: Any) -> Any:
    return jax.tree.map(lambda x: x[0], tree)


def _same(tree: Any) -> Any:
    return tree


def _over_replicas(fn: Callable, in_axes: tuple[int | None, ...]) -> Callable:
    """``jax.vmap(fn, in_axes)`` over the replicas' leading axis (the arguments whose axis is 0).

    Over an axis of one replica it applies ``fn`` to that replica alone and stacks the result:
    what vmap computes, compiled as the unbatched program. (Batched by vmap, one replica's
    convolutions and matmuls ran slower on XLA's CPU backend and rounded differently from one
    run's.) The axis's size is known when tracing: no branch at run time, and R = 1 and R > 1
    share every other line.
    """

    def mapped(*args):
        sizes = {jnp.shape(x)[0] for a, ax in zip(args, in_axes, strict=True) if ax == 0 for x in jax.tree.leaves(a)}
        if sizes == {1}:
            return _stack(fn(*(_unstack(a) if ax == 0 else a for a, ax in zip(args, in_axes, strict=True))))
        return jax.vmap(fn, in_axes=in_axes)(*args)

    return mapped


def _boundary(replicas: int | None) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """The one place where a single run becomes R = 1: ``(into, out)``, giving one run's state (or
    its outputs) a leading replica axis of 1 and taking it away again; for replicas, whose state
    already has that axis, both leave trees as they are."""
    return (_stack, _unstack) if replicas is None else (_same, _same)


@dataclasses.dataclass(frozen=True)
class EpochFns:
    """Compiled training-step and evaluation functions for one task, batch size and data size.

    Made by :func:`make_epoch_fns`, which documents the data they take. Every program trains
    R >= 1 replicas under ``jax.vmap``; one run (``replicas=None``) is R = 1, its state stacked
    to a leading axis of 1 on the way in and unstacked on the way out, inside the jit.

    Attributes:
      train_steps: ``(state, data, batches, step_sums, first, stop) -> (state, step_sums)``:
        steps ``first`` to ``stop - 1`` of an epoch, jitted, the state and sums donated.
      evaluate: ``(state, data) -> metric sums`` over the whole data set (one per replica).
      steps_per_epoch: training steps per epoch (the last partial batch dropped).
      mesh: the devices each batch (or, with several replicas, the replica axis) is split over.
      batch_size: examples per step.
      num_train: training examples drawn from (the first rows of the training data).
      train_step: the unjitted step of one run, ``(state, batch) -> (state, metric sums)``.
      predict: ``(state, data) ->`` the model's outputs for every example, in order (per replica).
      replicas: R, the runs the state's leading axis holds; None for one run and no such axis.
      sharding: what the programs split over the mesh, from :func:`_sharding`.
      _sums_shapes: the metric sums' shapes, traced once by :meth:`zero_sums` (a cache).
    """

    train_steps: Any  # (state, data, batches, step_sums, first, stop) -> (state, step_sums)
    evaluate: Any  # (state, data) -> metric sums over the data set (one per replica)
    steps_per_epoch: int
    mesh: Mesh  # the devices each batch (or, with several replicas, the replica axis) is split over
    batch_size: int
    num_train: int
    train_step: Any  # the unjitted step of one run
    predict: Any  # (state, data) -> the model's outputs for every example, in order (per replica)
    replicas: int | None  # R: the state's leading axis holds R runs; None: one run, no such axis
    sharding: _Sharding  # what is split over the mesh
    _sums_shapes: dict = dataclasses.field(default_factory=dict, repr=False)  # traced once

    @property
    def num_replicas(self) -> int:
        """R, the replicas each program trains: 1 for one run.

        Returns:
          ``replicas``, or 1 where it is None.
        """
        return self.replicas or 1

    def batches(self, key: jax.Array, active: Any = None) -> tuple[jax.Array, ...]:
        """The epoch shuffled by ``key``: ``(indices, mask, active)``, each replica its own order
        (drawn once per epoch, not per chunk: a permutation of CIFAR-10's 50,000 rows costs as much
        as a step). An inactive replica's state is left as it is.

        Args:
          key: the epoch's PRNG key (raw or typed), or one per replica, ``(R, 2)``.
          active: which replicas train this epoch, R booleans (default: all).

        Returns:
          ``(indices, mask, active)``: ``(R, steps, batch_size)``, the same, and ``(R,)``, with
          R = 1 for one key; replicated over the mesh.
        """
        key = raw_key(key)
        keys = jnp.reshape(key, (-1, key.shape[-1]))  # one run's key is R = 1's
        draw = functools.partial(epoch_indices, num_examples=self.num_train, batch_size=self.batch_size)
        active = np.ones(len(keys), bool) if active is None else np.asarray(active, bool)
        return self.place((*_over_replicas(draw, (0,))(keys), active))

    def epoch_batches(self, key: jax.Array, epoch: int, active: Any = None) -> tuple[jax.Array, ...]:
        """Epoch ``epoch``'s :meth:`batches`, shuffled by ``fold_in(key, epoch)`` (each replica's key).

        Args:
          key: the run's shuffling key (raw), or one per replica, ``(R, 2)``.
          epoch: the epoch's number, folded into the key.
          active: which replicas train this epoch, R booleans (default: all).

        Returns:
          What :meth:`batches` returns for the epoch's key.
        """
        keys = jnp.reshape(key, (-1, key.shape[-1]))
        return self.batches(jax.vmap(jax.random.fold_in, (0, None))(keys, epoch), active)

    def zero_sums(self, state: TrainState, data: dict[str, Any]) -> dict[str, np.ndarray]:
        """An epoch's per-step metric sums before its first step, on the host: zeros,
        ``(steps_per_epoch, R)`` each (R = 1 for one run).

        Args:
          state: the training state (abstract shapes suffice), to trace the step's sums.
          data: the training data, for the batch's shapes.

        Returns:
          ``{metric name: zeros}``, ``"loss"`` and ``"count"`` included, as NumPy arrays.
        """
        if not self._sums_shapes:
            stacked = jax.eval_shape(_boundary(self.replicas)[0], state)
            one = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), stacked)  # one replica's
            self._sums_shapes.update(jax.eval_shape(self.train_step, one, _batch_like(data, self.batch_size))[1])
        shape = (self.steps_per_epoch, self.num_replicas)
        return {k: np.zeros((*shape, *s.shape), s.dtype) for k, s in self._sums_shapes.items()}

    def train_epoch(self, state: TrainState, data: dict[str, Any], key: jax.Array):
        """One whole epoch in one call: ``(state, per-step metric sums)``.

        Args:
          state: the training state, placed with :meth:`place_state`; its buffers are donated.
          data: the training data, placed with :meth:`place_train`.
          key: the epoch's shuffling key, or one per replica.

        Returns:
          The state after the epoch, and ``{metric name: (steps_per_epoch, R) sums}`` (R = 1 for one run).
        """
        sums = self.place(self.zero_sums(state, data))
        return self.train_steps(state, data, self.batches(key), sums, np.int32(0), np.int32(self.steps_per_epoch))

    def averages(self, sums: dict[str, Any]) -> dict[str, Any]:
        """Per-example averages of :attr:`evaluate`'s sums.

        Args:
          sums: what :attr:`evaluate` returned.

        Returns:
          ``{metric name: average}``: floats for one run, ``(R,)`` arrays with replicas.
        """
        return averages(sums) if self.replicas is None else replica_averages(sums)

    def place_train(self, data: dict[str, Any]) -> dict[str, jax.Array]:
        """Training arrays as ``train_steps`` takes them: split by example over the mesh for one
        replica, whole on every device for several (which are split instead).

        Args:
          data: ``{name: array}``, examples on the leading axis.

        Returns:
          The same arrays on the mesh's devices.
        """
        if self.sharding.split_examples:
            return parallel.shard_examples(data, self.mesh)
        return parallel.replicate(data, self.mesh)

    def place(self, tree: Any) -> Any:
        """A key, sums or evaluation data set as ``train_steps``/``evaluate`` take them: replicated.

        Args:
          tree: a pytree of arrays.

        Returns:
          The tree, each leaf whole on every device of the mesh.
        """
        return parallel.replicate(tree, self.mesh)

    def place_state(self, state: TrainState) -> TrainState:
        """The state as ``train_steps`` takes it: replicated for one replica, split by replica for several.

        Args:
          state: the training state (with replicas, every leaf's leading axis is R).

        Returns:
          The state on the mesh's devices.
        """
        return parallel.place(state, self.sharding.state)


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
    several replicas (R runs in one program, vmapped), R must.

    Every program is the vmapped one of R >= 1 replicas: one run (``replicas=None``) is
    R = 1, stacked on the way in and unstacked on the way out (inside the jit), so its
    functions take and return one run's state, without a replica axis.

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
    sharding = _sharding(mesh, batch_size, replicas or 1)
    one_step = train_step_fn(task)
    gather = functools.partial(_gather, sharding=parallel.batch_sharded(mesh))  # a batch's examples split
    into, out = _boundary(replicas)
    program = _train_steps_fn(one_step, gather, sharding.state)

    @functools.partial(jax.jit, donate_argnums=(0, 3))
    def train_steps(state: TrainState, data: dict[str, jax.Array], batches, step_sums, first, stop):
        state, step_sums = program(into(state), data, batches, step_sums, first, stop)
        return out(state), step_sums

    def per_replica(fn):  # each replica's state on the same data
        return jax.jit(lambda state, data: out(_over_replicas(fn, (0, None))(into(state), data)))

    evaluate = per_replica(_evaluate_fn(eval_step_fn(task), gather, batch_size))
    predict = per_replica(_predict_fn(task, gather, batch_size))
    return EpochFns(train_steps, evaluate, steps_per_epoch(num_train, batch_size), mesh, batch_size, num_train,
                    one_step, predict, replicas, sharding)  # fmt: skip


def _train_steps_fn(one_step: Callable, gather: Callable, state_sharding: Any) -> Callable:
    """``train_steps(state, data, batches, step_sums, first, stop)`` of R replicas (unjitted): each
    replica's steps in a ``fori_loop``, mapped over the replicas by :func:`_over_replicas`; step i's
    sums go to row i."""

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

    def train_steps(state: TrainState, data: dict[str, jax.Array], batches, step_sums, first, stop):
        indices, mask, active = batches
        rows = jax.tree.map(lambda r: jnp.moveaxis(r, 1, 0), step_sums)  # (R, steps): a replica's rows together
        chunk = functools.partial(replica_chunk, data=data, first=first, stop=stop)
        state, rows = _over_replicas(chunk, (0,))((state, indices, mask, active, rows))
        state = jax.lax.with_sharding_constraint(state, state_sharding)
        return state, jax.tree.map(lambda r: jnp.moveaxis(r, 0, 1), rows)

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
