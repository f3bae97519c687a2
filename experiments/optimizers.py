"""Tutorial 2: SGD, momentum, Nesterov, Adagrad, RMSProp, Adam, L-BFGS on a quadratic, Rosenbrock, a saddle; LR finder.

    python experiments/optimizers.py [--set key=value ...] [--seed N] [--out DIR]

The same as `jaxdl run optimizers`; the experiment itself is jaxdl/experiments/optimizers.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("optimizers")
