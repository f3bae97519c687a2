"""Tutorial 2: dropout, weight decay, early stopping, clipping on an over-fitting MLP; generalisation gaps.

    python experiments/regularization.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run regularization`; the experiment itself is jaxdl/experiments/regularization.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("regularization")
