"""Training by forward mode alone: the forward gradient against backprop.

    python experiments/forward-gradient.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run forward-gradient`; the experiment itself is jaxdl/experiments/forward_gradient.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("forward-gradient")
