"""Tutorial 0: 2-D blob classifier, full-batch SGD as one lax.scan, 64 seeds via vmap.

    python experiments/blobs.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run blobs`; the experiment itself is jaxdl/experiments/blobs.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("blobs")
