"""A Task ties a Flax model to its per-example loss, metrics and on-device preprocessing.

The training engine needs nothing else: ``Task.forward`` runs the model on a
batch and returns one loss per example plus per-example metrics, which the
steps reduce with the batch's mask so that padded examples never count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.functional.losses import softmax_cross_entropy

Batch = dict[str, jax.Array]  # "inputs", "labels", "mask", ...
# (model outputs, batch) -> (per-example loss (B,), {metric: per-example values (B,)})
ExampleLoss = Callable[[Any, Batch], tuple[jax.Array, dict[str, jax.Array]]]
# (batch, key, train) -> batch, e.g. uint8 -> float and random crops
Preprocess = Callable[[Batch, jax.Array, bool], Batch]


def classification_loss(logits: jax.Array, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Softmax cross-entropy and accuracy, per example.

    The default ``Task.example_loss``; the steps average both with the batch's
    mask, so padded examples never count.

    Args:
      logits: the model's outputs, float ``(B, classes)``.
      batch: the preprocessed batch; ``batch["labels"]`` holds integer class
        indices ``(B,)``.

    Returns:
      ``(losses, {"accuracy": correct})``: the cross-entropy of each example
      ``(B,)``, and 1.0 where the arg-max class is the label, else 0.0 ``(B,)``.
    """
    labels = batch["labels"]
    chex.assert_rank([logits, labels], [2, 1])
    chex.assert_equal_shape_prefix([logits, labels], 1)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return softmax_cross_entropy(logits, labels, reduction="none"), {"accuracy": correct}


def _cast_floats(tree: Any, dtype: str) -> Any:
    """Floating-point leaves of ``tree`` as ``dtype``; integer leaves (labels, keys) unchanged."""
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


@dataclasses.dataclass(frozen=True)
class Task:
    """A model, its per-example loss and its preprocessing.

    Attributes:
      model: a Flax module called as ``model(batch["inputs"], train=...)``.
      example_loss: ``(outputs, batch) -> (per-example loss, {name: per-example metric})``;
        ``batch`` is the preprocessed one.
      preprocess: ``(batch, key, train) -> batch``, run on the device inside the
        step: it returns the batch with ``"inputs"`` replaced by what the model
        takes (e.g. uint8 images as floats, randomly cropped when ``train``);
        the other keys ("labels", "mask") pass through.
      keyword_inputs: batch keys the model also takes, as keyword arguments of
        the same name (the conditional VAE's ``labels``).
      compute_dtype: "bfloat16" runs the model in bfloat16 (mixed precision):
        float32 parameters are cast on the way in, so gradients, optimizer
        state and updates stay float32, and the outputs are cast back to
        float32 before the loss. bfloat16 has float32's exponent range, so
        no loss scaling is needed (float16 would need it and is refused).
    """

    model: nn.Module
    example_loss: ExampleLoss = classification_loss
    preprocess: Preprocess = lambda batch, key, train: batch  # noqa: E731
    keyword_inputs: tuple[str, ...] = ()
    compute_dtype: str = "float32"

    def __post_init__(self):
        if self.compute_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"compute_dtype must be float32 or bfloat16, got {self.compute_dtype!r}")

    def init(self, key: jax.Array, batch: Batch) -> dict[str, Any]:
        """Initial variables for a batch shaped like ``batch``.

        The batch is preprocessed as at evaluation first, so the model is
        initialised on the inputs it will see.

        Args:
          key: PRNG key; split into the parameter, augmentation and
            dropout/sampling keys.
          batch: a raw (not preprocessed) example batch; only its shapes and
            dtypes matter.

        Returns:
          The Flax variables dict: ``"params"``, and ``"batch_stats"`` when the
          model has batch normalisation.
        """
        init_key, data_key, sample_key = jax.random.split(key, 3)
        batch = self.preprocess(batch, data_key, False)
        rngs = {"params": init_key, "dropout": sample_key, "sample": sample_key}
        return self.model.init(rngs, batch["inputs"], **self._keywords(batch), train=False)

    def _keywords(self, batch: Batch) -> dict[str, jax.Array]:
        return {name: batch[name] for name in self.keyword_inputs}

    def apply(self, params: Any, batch_stats: Any, batch: Batch, key: jax.Array, train: bool) -> tuple[Any, Batch, Any]:
        """Preprocesses ``batch`` and runs the model on it, in ``compute_dtype``.

        Args:
          params: the model's parameters (float32; cast to ``compute_dtype``
            for the call).
          batch_stats: batch-normalisation statistics, or ``{}`` when the
            model has none.
          batch: a raw batch ("inputs", "labels", "mask", ...).
          key: PRNG key, split into the augmentation, dropout and sampling keys.
          train: training mode: augmentation, dropout and batch statistics
            computed from (and folded into) this batch.

        Returns:
          ``(outputs, batch, batch_stats)``: the model's outputs as float32, the
          preprocessed batch (what the loss reads its labels from), and the
          batch statistics, updated when ``train`` and unchanged otherwise.
        """
        data_key, dropout_key, sample_key = jax.random.split(key, 3)
        batch = self.preprocess(batch, data_key, train)
        inputs = batch["inputs"]
        if self.compute_dtype != "float32":
            params, inputs = _cast_floats(params, self.compute_dtype), _cast_floats(inputs, self.compute_dtype)
        variables = {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}
        rngs = {"dropout": dropout_key, "sample": sample_key}
        if train and batch_stats:
            outputs, updates = self.model.apply(
                variables, inputs, **self._keywords(batch), train=True, rngs=rngs, mutable=["batch_stats"]
            )
            batch_stats = jax.tree.map(lambda new, old: new.astype(old.dtype), updates["batch_stats"], batch_stats)
        else:
            outputs = self.model.apply(variables, inputs, **self._keywords(batch), train=train, rngs=rngs)
        return _cast_floats(outputs, "float32"), batch, batch_stats

    def forward(
        self, params: Any, batch_stats: Any, batch: Batch, key: jax.Array, train: bool
    ) -> tuple[jax.Array, dict[str, jax.Array], Any]:
        """Per-example losses, per-example metrics and the updated batch statistics.

        Args:
          params: the model's parameters.
          batch_stats: batch-normalisation statistics, or ``{}``.
          batch: a raw batch ("inputs", "labels", "mask", ...).
          key: PRNG key for augmentation, dropout and sampling.
          train: training mode (see :meth:`apply`).

        Returns:
          ``(losses, metrics, batch_stats)``: ``example_loss``'s per-example
          losses ``(B,)`` and ``{name: (B,)}`` metrics, unreduced (the caller
          applies the mask), and the batch statistics from :meth:`apply`.
        """
        outputs, batch, batch_stats = self.apply(params, batch_stats, batch, key, train)
        losses, metrics = self.example_loss(outputs, batch)
        return losses, metrics, batch_stats

    def predict(self, params: Any, batch_stats: Any, batch: Batch, key: jax.Array) -> Any:
        """The model's outputs on ``batch`` as at evaluation (no dropout, running statistics).

        Args:
          params: the model's parameters.
          batch_stats: batch-normalisation statistics, or ``{}``.
          batch: a raw batch; it is preprocessed as at evaluation.
          key: PRNG key; only a sampling model (the VAE) uses it here.

        Returns:
          The model's outputs as float32, e.g. logits ``(B, classes)``.
        """
        return self.apply(params, batch_stats, batch, key, train=False)[0]
