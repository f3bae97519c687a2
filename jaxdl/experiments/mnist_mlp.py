"""Tutorial 4's comparison network: a small MNIST MLP trained with early stopping.

784-128-10 with ReLU, SGD lr 1e-2, batch 64, at most 3 epochs on the first
4,096 training images, validated on the first 1,024 test images, stopping
when the validation loss has not improved for 2 epochs (the tutorial's
Lightning ``EarlyStopping(patience=2)``). Test accuracy is measured on the
other 8,976 test images, which validation never saw.
"""

from __future__ import annotations

import optax

from jaxdl import data as data_lib
from jaxdl.claims import PERCENT, Claim, Run
from jaxdl.errors import JaxdlError
from jaxdl.experiments import Experiment
from jaxdl.experiments.common import train_and_test, unit_pixels
from jaxdl.experiments.settings import MNISTMLPConfig as Config
from jaxdl.models.classifiers import SmallMLP
from jaxdl.results import RunResult
from jaxdl.rundir import RunDir
from jaxdl.train.task import Task, classification_loss


def run(config: Config, run_dir: RunDir) -> RunResult:
    """Trains the 784-128-10 MLP with early stopping on validation and tests it on the other test images.

    Args:
      config: ``n_train`` (training images, from the first), ``n_val``
        (validation images, the first of the test split), ``patience``, the
        learning rate and the engine's settings.
      run_dir: where the history, checkpoints and curves go.

    Returns:
      The metrics of :func:`jaxdl.experiments.common.train_and_test`:
      ``test_loss`` and ``test_accuracy`` on the held-out test images, the
      last epoch's ``train_*`` and ``val_*`` figures, ``epochs_run``,
      ``stopped_early`` and timings; with several seeds or a sweep, the
      per-replica and per-setting figures described there.

    Raises:
      JaxdlError: ``n_val`` leaves no test images.
    """
    train = data_lib.load("mnist", "train", data=config.data or None)
    test = data_lib.load("mnist", "test", data=config.data or None)
    if config.n_val >= len(test):
        raise JaxdlError(f"setting n_val must leave test images for testing; got {config.n_val} of {len(test)}")
    held_out = {"inputs": test.inputs[config.n_val :], "labels": test.labels[config.n_val :]}
    _, metrics = train_and_test(
        config, run_dir, Task(SmallMLP(), classification_loss, unit_pixels),
        lambda config, steps_per_epoch: optax.sgd(config.lr), train.arrays(config.n_train), held_out,
        val=test.arrays(config.n_val), patience=config.patience,
        title=f"MNIST 784-128-10, SGD {config.lr}, first {config.n_train} images",
    )  # fmt: skip
    if not metrics.sweep:  # a sweep reports per setting instead
        print(f"test accuracy {100 * metrics['test_accuracy']:.2f}% on {len(held_out['labels'])} held-out images")
    return metrics


EXPERIMENT = Experiment(
    name="mnist-mlp",
    description="tutorial 4: MNIST 784-128-10, SGD 1e-2, 3 epochs on 4,096 images, early stopping",
    config=Config,
    run=run,
    resumable=True,
    smallest=("epochs=1", "batch_size=8", "n_train=24", "n_val=8"),
    vmapped=("lr",),
    claims=(
        Run(name="mnist-mlp", data="mnist", seeds=8, quick_seeds=8, claims=(
            Claim(source="tutorial 4", statement="784-128-10, SGD 1e-2, batch 64, 4,096 images, early stopping: "
                  "test accuracy", tutorial="", metric="test_accuracy", fmt=PERCENT),
        )),
    ),
)  # fmt: skip
