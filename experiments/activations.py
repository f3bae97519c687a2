"""Tutorial 2: per-layer gradient norms of a 20-layer MLP for six activations, initialisations and batch norm.

    python experiments/activations.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run activations`; the experiment itself is jaxdl/experiments/activations.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("activations")
