"""Tutorial 4: MLP(784,[64,32,10]) in the scalar engine vs NumPy vs jax.jit, same updates; divergence reported.

    python experiments/scalar-engine.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run scalar-engine`; the experiment itself is jaxdl/experiments/scalar_engine.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("scalar-engine")
