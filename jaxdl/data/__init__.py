"""Named data sets as in-memory arrays, and batching on device.

>>> train = jaxdl.data.load("cifar10", "train", data="../shared/datasets/cifar10-jpg.tar.gz")
>>> x = jaxdl.data.normalize(train.inputs, "symmetric")   # [-1, 1], as seed 001
"""

from jaxdl.data.batching import (
    channel_stats,
    epoch_indices,
    generate_mini_batches,
    masked_mean,
    normalize,
    num_batches,
    standardize,
    train_val_split,
)
from jaxdl.data.cache import cache_dir
from jaxdl.data.catalog import DATASETS, DatasetSpec
from jaxdl.data.dataset import Dataset
from jaxdl.data.embedded import make_blobs_dataset, make_digits_dataset, write_shapes_folder
from jaxdl.data.loader import DATA_DIR_ENV, load, load_image_folder, local_copies

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "Dataset",
    "DatasetSpec",
    "cache_dir",
    "channel_stats",
    "epoch_indices",
    "generate_mini_batches",
    "load",
    "load_image_folder",
    "local_copies",
    "make_blobs_dataset",
    "make_digits_dataset",
    "masked_mean",
    "normalize",
    "standardize",
    "num_batches",
    "train_val_split",
    "write_shapes_folder",
]
