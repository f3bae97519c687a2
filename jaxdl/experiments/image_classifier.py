"""Tutorial 1's MLP or CNN on your own images: any ``split/class/image`` folder or ``.tar.gz`` of one.

The classes and the image size come from the data (``image_size`` resizes
images that differ), the normalisation is computed from the training split,
and a validation or test split the folder lacks is carved from ``train``.
The run writes the training curves, a confusion matrix on the test split and
a grid of misclassified test images.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import optax

from jaxdl import data as data_lib
from jaxdl import plots
from jaxdl.errors import JaxdlError
from jaxdl.experiments import Experiment
from jaxdl.experiments.cifar10 import augment
from jaxdl.experiments.common import train_and_test
from jaxdl.experiments.settings import ImageClassifierConfig as Config
from jaxdl.experiments.settings import parse_size
from jaxdl.models.classifiers import CNN, MLP
from jaxdl.results import RunResult
from jaxdl.rundir import RunDir
from jaxdl.train.task import Task, classification_loss


def image_task(model: str, train: data_lib.Dataset, *, hidden: int = 100, drop_rate: float = 0.5,
               augment_images: bool = False) -> Task:  # fmt: skip
    """The MLP or CNN for ``train``'s classes, its inputs standardised by ``train``'s channel statistics.

    Args:
      model: "mlp" or "cnn" (tutorial 1's networks).
      train: the training split; gives the number of classes and the
        per-channel mean and standard deviation used for every split.
      hidden: the MLP's hidden width.
      drop_rate: the CNN's dropout rate.
      augment_images: random crops (padding of 1/8 of the image's height) and
        horizontal flips in training.

    Returns:
      The Task, with classification loss and accuracy.
    """
    num_classes = len(train.class_names)
    network = MLP(hidden=hidden, num_classes=num_classes) if model == "mlp" else CNN(num_classes, drop_rate)
    standardize = data_lib.standardize(*data_lib.channel_stats(train.inputs))
    pad = max(1, train.inputs.shape[1] // 8)

    def preprocess(batch, key, train_mode):
        batch = standardize(batch, key, train_mode)
        if augment_images and train_mode:
            batch = {**batch, "inputs": augment(batch["inputs"], key, pad)}
        return batch

    return Task(network, classification_loss, preprocess)


def misclassified(test: data_lib.Dataset, predicted: np.ndarray, limit: int = 32) -> tuple[np.ndarray, list[str]]:
    """Up to ``limit`` misclassified test images and their captions ("true -> predicted").

    Args:
      test: the test split, with ``class_names``.
      predicted: the predicted class of every test image, int ``(len(test),)``.
      limit: at most this many, the first in the split's order.

    Returns:
      ``(images, captions)``: the images as stored ``(k, H, W, C)`` and one
      caption per image with the class names.
    """
    wrong = np.flatnonzero(predicted != test.labels)[:limit]
    names = test.class_names
    return test.inputs[wrong], [f"{names[test.labels[i]]} -> {names[predicted[i]]}" for i in wrong]


def run(config: Config, run_dir: RunDir) -> RunResult:
    """Trains on a folder of images, tests, and draws the confusion matrix and the misclassified images.

    Args:
      config: the folder (``data``), image size, carved split fractions, the
        model and its training settings (with early stopping by ``patience``).
      run_dir: where the history, checkpoints and figures go.

    Returns:
      The metrics of :func:`jaxdl.experiments.common.train_and_test`
      (``test_loss``, ``test_accuracy``, the last epoch's ``train_*`` and
      ``val_*`` figures, ``epochs_run``, ``stopped_early``, timings), plus
      ``class_names``, ``image_shape`` ``[H, W, C]``, ``examples`` (images per
      split) and ``test_accuracy_per_class`` (``{class: accuracy}``; with
      several seeds, the first seed's).

    Raises:
      JaxdlError: the training split has fewer images than one batch.
    """
    splits = data_lib.load_image_folder(
        config.data, image_size=parse_size(config.image_size), val_fraction=config.val_fraction,
        test_fraction=config.test_fraction, seed=config.seed,
    )  # fmt: skip
    train, val, test = splits["train"], splits["val"], splits["test"]
    names = train.class_names
    shape = "x".join(map(str, train.inputs.shape[1:]))
    print(f"{len(names)} classes ({', '.join(names)}), images {shape}; "
          f"train {len(train)}, val {len(val)}, test {len(test)}")  # fmt: skip
    for ds in (val, test):
        if "carved" in ds.source:
            print(f"no {ds.split} folder: {len(ds)} images carved from train")
    if len(train) < config.batch_size:
        raise JaxdlError(f"batch_size {config.batch_size} is larger than the {len(train)} training images")
    task = image_task(config.model, train, hidden=config.hidden, drop_rate=config.drop_rate,
                      augment_images=config.augment)  # fmt: skip
    result, metrics = train_and_test(
        config, run_dir, task, lambda config, steps_per_epoch: optax.adam(config.lr), train, test, val=val,
        patience=config.patience or None, title=f"{config.model.upper()} on {len(names)} classes of {shape} images",
    )  # fmt: skip
    outputs = result.predict(test)
    predicted = (outputs if outputs.ndim == 2 else outputs[0]).argmax(axis=-1)  # with seeds: the first seed's
    run_dir.save_figure(plots.confusion_matrix(test.labels, predicted, names), "confusion_matrix.png")
    images, captions = misclassified(test, predicted)
    if len(images):
        title = f"misclassified test images ({int((predicted != test.labels).sum())} of {len(test)}): true -> predicted"
        run_dir.save_figure(plots.image_grid(images, captions, title=title), "misclassified.png")
    per_class = {n: float(np.mean(predicted[test.labels == k] == k)) for k, n in enumerate(names)}
    print(f"test accuracy {100 * metrics['test_accuracy']:.2f}%; per class: "
          + ", ".join(f"{n} {100 * a:.1f}%" for n, a in per_class.items()))  # fmt: skip
    return dataclasses.replace(metrics, figures={
        **metrics.figures,
        "class_names": list(names),
        "image_shape": list(train.inputs.shape[1:]),
        "examples": {"train": len(train), "val": len(val), "test": len(test)},
        "test_accuracy_per_class": per_class,
    })  # fmt: skip


EXPERIMENT = Experiment(
    name="image-classifier",
    description="tutorial 1's MLP or CNN on your own split/class/image folder (--data DIR)",
    config=Config,
    run=run,
    resumable=True,
    smallest=("epochs=2", "batch_size=8"),
)
