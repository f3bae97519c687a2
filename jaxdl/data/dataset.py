"""The in-memory data set every loader returns."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """One split of a data set, in host memory.

    Attributes:
      name: the data set's name ("mnist", "cifar10", ...).
      split: "train", "test", ...
      inputs: images as uint8 ``(N, H, W, C)``; for ``blobs``, ``(N, 2)`` float32 points.
      labels: ``(N,)`` int32 class indices into ``class_names``.
      class_names: the classes, in label order.
      source: where the arrays came from (a path, "tfds:mnist", "embedded").
    """

    name: str
    split: str
    inputs: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def arrays(self, limit: int | None = None) -> dict[str, np.ndarray]:
        """``{"inputs", "labels"}``, the dict the training engine takes (the first ``limit`` examples).

        Args:
          limit: how many examples from the start; None for all.

        Returns:
          ``{"inputs": ..., "labels": ...}``, views of this data set's arrays.
        """
        return {"inputs": self.inputs[:limit], "labels": self.labels[:limit]}

    def class_counts(self) -> dict[str, int]:
        """The number of examples of each class.

        Returns:
          ``{class name: count}`` in label order, zeros included.
        """
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}

    def subset(self, indices: np.ndarray, split: str | None = None) -> Dataset:
        """The examples at ``indices`` (in that order), as a new Dataset.

        Args:
          indices: integer positions (or a boolean mask) into the examples.
          split: the new split's name; None keeps this one's.

        Returns:
          A :class:`Dataset` with copies of the selected arrays.
        """
        return dataclasses.replace(
            self,
            split=split or self.split,
            inputs=self.inputs[indices],
            labels=self.labels[indices],
        )


def as_arrays(data: Dataset | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A Dataset's ``{"inputs", "labels"}`` dict; a dict of arrays as it is.

    Args:
      data: a :class:`Dataset` or a dict of arrays.

    Returns:
      The dict of arrays.
    """
    return data.arrays() if isinstance(data, Dataset) else data
