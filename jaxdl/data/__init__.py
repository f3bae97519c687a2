"""Named data sets as in-memory arrays, and batching on device.

>>> train = jaxdl.data.load("cifar10", "train", data="../shared/datasets/cifar10-jpg.tar.gz")
>>> x = jaxdl.data.normalize(train.inputs, "symmetric")   # [-1, 1], as tutorial 1

Names are imported on first use, so reading a data set imports no JAX.
"""

from __future__ import annotations

from jaxdl.lazy import lazy_exports

_EXPORTS = {
    "channel_stats": "jaxdl.data.batching",
    "epoch_indices": "jaxdl.data.batching",
    "generate_mini_batches": "jaxdl.data.batching",
    "masked_mean": "jaxdl.data.batching",
    "normalize": "jaxdl.data.batching",
    "num_batches": "jaxdl.data.batching",
    "standardize": "jaxdl.data.batching",
    "train_val_split": "jaxdl.data.batching",
    "cache_dir": "jaxdl.data.cache",
    "DATASETS": "jaxdl.data.catalog",
    "DatasetSpec": "jaxdl.data.catalog",
    "Dataset": "jaxdl.data.dataset",
    "make_blobs_dataset": "jaxdl.data.embedded",
    "make_digits_dataset": "jaxdl.data.embedded",
    "write_shapes_folder": "jaxdl.data.embedded",
    "DATA_DIR_ENV": "jaxdl.data.loader",
    "load": "jaxdl.data.loader",
    "load_image_folder": "jaxdl.data.loader",
    "local_copies": "jaxdl.data.loader",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
