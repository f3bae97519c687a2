"""The Hessian of the CIFAR-10 MLP and CNN: Lanczos, spectral density, loss slices, HVP costs.

    python experiments/curvature.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run curvature`; the experiment itself is jaxdl/experiments/curvature.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("curvature")
