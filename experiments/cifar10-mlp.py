"""Tutorial 1: CIFAR-10 MLP 3072-100-10, Adam 1e-3, 5 epochs.

    python experiments/cifar10-mlp.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run cifar10-mlp`; the experiment itself is jaxdl/experiments/cifar10.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("cifar10-mlp")
