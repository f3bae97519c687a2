"""Data sets generated locally, which need no download."""

from __future__ import annotations

import numpy as np


def make_blobs_dataset(
    n_samples: int = 1000, cluster_std: float = 3.0, random_state: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Seed 000's two Gaussian blobs in 2-D.

    ``sklearn.datasets.make_blobs(n_samples, n_features=2, centers=2,
    cluster_std, random_state)`` with the tutorial's defaults.

    Returns:
      ``x``: (n_samples, 2) float32 points; ``y``: (n_samples,) int32 labels in {0, 1}.
    """
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=n_samples,
        n_features=2,
        centers=2,
        cluster_std=cluster_std,
        random_state=random_state,
    )
    # The tutorial wraps the float64 arrays in torch.Tensor, i.e. float32.
    return x.astype(np.float32), y.astype(np.int32)
