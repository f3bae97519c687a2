"""Tutorial 3: NumPy MLP with hand-written backprop vs the same in JAX, same init and batches.

    python experiments/scratch-mlp.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run scratch-mlp`; the experiment itself is jaxdl/experiments/scratch_mlp.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("scratch-mlp")
