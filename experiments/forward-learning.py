"""Training by forward mode alone: activity-perturbed forward gradients and local losses against backprop.

    python experiments/forward-learning.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run forward-learning`; the experiment itself is jaxdl/experiments/forward_learning.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("forward-learning")
