"""Tutorial 1: CIFAR-10 CNN (4 conv + BN), 10 epochs; recipe=tutorial|improved.

    python experiments/cifar10-cnn.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run cifar10-cnn`; the experiment itself is jaxdl/experiments/cifar10.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("cifar10-cnn")
