"""Data sets generated locally, which need no download."""

from __future__ import annotations

import numpy as np

DIGITS_TRAIN_SIZE = 1437  # the first 80% of scikit-learn's 1,797 digits; the rest is "test"


def make_blobs_dataset(
    n_samples: int = 1000, cluster_std: float = 3.0, random_state: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Tutorial 0's two Gaussian blobs in 2-D.

    The points ``sklearn.datasets.make_blobs(n_samples, n_features=2, centers=2,
    cluster_std, random_state)`` draws (scikit-learn 1.x's algorithm, tested equal
    to it), drawn here with NumPy alone, so that a run of ``jaxdl run blobs`` need
    not import scikit-learn.

    Args:
      n_samples: the number of points, split as evenly as possible between the two blobs.
      cluster_std: each blob's standard deviation.
      random_state: the seed of the ``RandomState`` that draws the centres, the points and the shuffle.

    Returns:
      ``x``: (n_samples, 2) float32 points; ``y``: (n_samples,) int32 labels in {0, 1}.

    Example:
      >>> x, y = make_blobs_dataset(10)
      >>> x.shape, x.dtype, sorted(set(y.tolist()))
      ((10, 2), dtype('float32'), [0, 1])
    """
    rng = np.random.RandomState(random_state)
    centers = rng.uniform(-10.0, 10.0, size=(2, 2))  # center_box=(-10, 10)
    per_center = [n_samples // 2 + (i < n_samples % 2) for i in range(2)]
    x = np.concatenate([rng.normal(loc=centers[i], scale=cluster_std, size=(n, 2)) for i, n in enumerate(per_center)])
    y = np.repeat(np.arange(2), per_center)
    order = np.arange(n_samples)
    rng.shuffle(order)  # sklearn.utils.shuffle
    # The tutorial wraps the float64 arrays in torch.Tensor, i.e. float32.
    return x[order].astype(np.float32), y[order].astype(np.int32)


def make_digits_dataset(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as uint8 images (N, 8, 8, 1) (0..16 scaled to 0..255) and labels.

    "train" is the first 1,437 digits, "test" the last 360, in scikit-learn's order.

    Args:
      split: "train" or "test" (anything else is read as "test").

    Returns:
      ``(images, labels)``: uint8 ``(N, 8, 8, 1)`` and int32 ``(N,)``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    part = slice(None, DIGITS_TRAIN_SIZE) if split == "train" else slice(DIGITS_TRAIN_SIZE, None)
    return images[part], labels[part]


SHAPES = ("circle", "square", "triangle")


def write_shapes_folder(
    path, per_class: tuple[int, int] = (150, 50), size: int = 40, seed: int = 0, splits=("train", "test")
) -> None:
    """Writes a small ``split/class/image.png`` folder of RGB circles, squares and triangles.

    Each image has a random background, shape colour, position and size, so a
    classifier has to learn shape, not colour. It stands in for a learner's own
    photos in the tests and the notebooks.

    Args:
      path: the folder to write into (created if need be).
      per_class: images per class in each split, in the order of ``splits``.
      size: the images' side in pixels.
      seed: the seed of the generator that draws everything.
      splits: the split folders' names.
    """
    from pathlib import Path

    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for split, count in zip(splits, per_class, strict=True):
        for shape in SHAPES:
            folder = Path(path) / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                background = tuple(int(v) for v in rng.integers(0, 256, 3))
                colour = tuple(int(v) for v in (np.array(background) + rng.integers(80, 176, 3)) % 256)
                image = Image.new("RGB", (size, size), background)
                draw = ImageDraw.Draw(image)
                r = rng.uniform(0.2, 0.4) * size
                cx, cy = rng.uniform(r, size - r, 2)
                if shape == "circle":
                    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
                elif shape == "square":
                    draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
                else:
                    draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
                image.save(folder / f"{i}.png")
