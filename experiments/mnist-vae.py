"""Tutorial 2: MNIST VAE 784-400-20, Adam 1e-3, batch 32, 10 epochs; conditional option.

    python experiments/mnist-vae.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run mnist-vae`; the experiment itself is jaxdl/experiments/mnist_vae.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("mnist-vae")
