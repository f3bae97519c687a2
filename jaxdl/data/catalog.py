"""What each named data set is: classes, image shape, splits, where copies live."""

from __future__ import annotations

import dataclasses

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
DIGIT_CLASSES = tuple(str(d) for d in range(10))


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What jaxdl knows about one named data set.

    Attributes:
      name: the name :func:`jaxdl.data.load` and ``jaxdl data info`` take.
      description: one line for ``jaxdl data``.
      splits: the splits it has; ``()`` for any split the source holds.
      class_names: the classes in label order; None for a folder's alphabetical class folders.
      image_shape: ``(H, W, C)``; None for feature vectors, or when taken from the data.
      tfds_name: the TFDS builder, for sets TFDS can download; None otherwise.
      local_names: file or folder names looked for in ``$JAXDL_DATA_DIR``.
    """

    name: str
    description: str
    splits: tuple[str, ...]
    class_names: tuple[str, ...] | None
    image_shape: tuple[int, int, int] | None
    tfds_name: str | None = None
    local_names: tuple[str, ...] = ()


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "mnist", "MNIST handwritten digits, 28x28 grayscale", ("train", "test"),
            DIGIT_CLASSES, (28, 28, 1), "mnist", ("mnist-png.tar.gz", "mnist"),
        ),
        DatasetSpec(
            "fashion_mnist", "Fashion-MNIST clothing, 28x28 grayscale", ("train", "test"),
            FASHION_MNIST_CLASSES, (28, 28, 1), "fashion_mnist",
            ("fashion-mnist", "fashion_mnist", "fashion-mnist.tar.gz"),
        ),
        DatasetSpec(
            "cifar10", "CIFAR-10 objects, 32x32 RGB", ("train", "test"),
            CIFAR10_CLASSES, (32, 32, 3), "cifar10",
            ("cifar10-jpg.tar.gz", "cifar10", "cifar-10-binary.tar.gz", "cifar-10-batches-bin"),
        ),
        DatasetSpec(
            "digits", "scikit-learn's 1,797 handwritten digits, 8x8 grayscale (embedded)",
            ("train", "test"), DIGIT_CLASSES, (8, 8, 1),
        ),
        DatasetSpec(
            "blobs", "tutorial 0's two Gaussian blobs in 2-D, 1,000 points (embedded)",
            ("train",), ("0", "1"), None,
        ),
        DatasetSpec(
            "imagefolder", "any split/class/image folder or .tar.gz given as data",
            (), None, None,  # any split the folder holds
        ),
    )
}  # fmt: skip

EMBEDDED = ("digits", "blobs")
