"""Tutorial 0: minibatch gradients are unbiased, their variance falls like 1/B; SGD by batch size.

    python experiments/minibatch-sgd.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run minibatch-sgd`; the experiment itself is jaxdl/experiments/minibatch_sgd.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("minibatch-sgd")
