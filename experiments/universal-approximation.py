"""Tutorial 0: one hidden layer of N sigmoids fitting 1-D and 2-D functions; max error against N.

    python experiments/universal-approximation.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run universal-approximation`; the experiment itself is jaxdl/experiments/universal_approximation.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("universal-approximation")
