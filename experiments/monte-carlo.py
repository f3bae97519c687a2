"""Tutorial 0: Monte Carlo unbiasedness and 1/sqrt(S) consistency, GAN loss, score vs pathwise gradients.

    python experiments/monte-carlo.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run monte-carlo`; the experiment itself is jaxdl/experiments/monte_carlo.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("monte-carlo")
