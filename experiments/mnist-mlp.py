"""Tutorial 4: MNIST 784-128-10, SGD 1e-2, 3 epochs on 4,096 images, early stopping.

    python experiments/mnist-mlp.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run mnist-mlp`; the experiment itself is jaxdl/experiments/mnist_mlp.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("mnist-mlp")
