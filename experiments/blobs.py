"""Seed 000's blob classifier.

    python experiments/blobs.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run blobs`; the experiment itself is jaxdl/experiments/blobs.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("blobs")
