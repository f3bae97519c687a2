"""Tutorial 0: jacfwd vs jacrev over n, m = 1..1000 (time, FLOPs, memory); gradient by jvp vs vjp.

    python experiments/autodiff-modes.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run autodiff-modes`; the experiment itself is jaxdl/experiments/autodiff_modes.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("autodiff-modes")
