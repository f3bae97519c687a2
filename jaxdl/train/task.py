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
    """Softmax cross-entropy and accuracy, per example."""
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
        """Initial variables for a batch shaped like ``batch``."""
        init_key, data_key, sample_key = jax.random.split(key, 3)
        batch = self.preprocess(batch, data_key, False)
        rngs = {"params": init_key, "dropout": sample_key, "sample": sample_key}
        return self.model.init(rngs, batch["inputs"], **self._keywords(batch), train=False)

    def _keywords(self, batch: Batch) -> dict[str, jax.Array]:
        return {name: batch[name] for name in self.keyword_inputs}

    def apply(self, params: Any, batch_stats: Any, batch: Batch, key: jax.Array, train: bool) -> tuple[Any, Batch, Any]:
        """``(float32 model outputs, the preprocessed batch, the new batch statistics)``."""
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
        """Per-example losses, per-example metrics and the updated batch statistics."""
        outputs, batch, batch_stats = self.apply(params, batch_stats, batch, key, train)
        losses, metrics = self.example_loss(outputs, batch)
        return losses, metrics, batch_stats

    def predict(self, params: Any, batch_stats: Any, batch: Batch, key: jax.Array) -> Any:
        """The model's outputs on ``batch`` as at evaluation (no dropout, running statistics)."""
        return self.apply(params, batch_stats, batch, key, train=False)[0]
