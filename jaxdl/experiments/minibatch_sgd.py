"""Tutorial 0's minibatch SGD claims on the blob classifier: an unbiased gradient whose variance falls like 1/B.

1. The mean of many minibatch gradients (batches of B drawn uniformly without replacement) equals the
   full-batch gradient: a z-test per parameter leaf.
2. The variance of the minibatch gradient (its trace) against B: for sampling without replacement it is
   (n - B) / (n - 1) * sigma^2 / B, so the log-log slope is -1 for B << n and steeper towards B = n;
   tutorial 2's "less than linear returns" are in the time axis: a batch of B costs less than B batches of 1.
3. SGD with several batch sizes, from the same start, for the same number of epochs: loss against epochs
   and against wall time.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import plots
from jaxdl.claims import Claim, Run, at_most, between
from jaxdl.compilation_cache import run_once
from jaxdl.data import epoch_indices, make_blobs_dataset
from jaxdl.experiments import Experiment
from jaxdl.experiments.blobs import make_loss_fn
from jaxdl.experiments.settings import MinibatchSGDConfig as Config
from jaxdl.models.blobs import BlobClassifier
from jaxdl.rundir import RunDir


def _flat(tree) -> jax.Array:
    return jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """The three studies of the module docstring on the blob classifier, from one initialisation.

    Writes one history record per SGD batch size and epoch (cumulative
    seconds, full-data loss) and ``minibatch.png``.

    Args:
      config: the draws per batch size, the batch size of the bias test, the
        SGD batch sizes (comma-separated), learning rate, epochs and seed.
      run_dir: where the history and the figure go.

    Returns:
      Metrics: ``unbiased_max_abs_z`` (the largest |z| of the mean minibatch
      gradient against the full one, over parameters; about 3 or less is
      unbiased) and ``unbiased_z_by_leaf``; ``variance_by_batch`` (the
      gradient variance's trace by B), ``variance_slope_small_batches`` (its
      log-log slope for B <= 32, theory -1) and ``corrected_variance_spread``
      (max over min of the variance times B (n - 1) / (n - B), 1 when the
      theory holds exactly); and ``sgd_final_loss_bB`` and ``sgd_seconds_bB``
      (training wall time, compile excluded) per SGD batch size B.
    """
    x, y = (jnp.asarray(a) for a in make_blobs_dataset())
    n = len(y)
    model = BlobClassifier()
    key = jax.random.key(config.seed)
    params = model.init(key, x[:1])["params"]
    loss_fn = make_loss_fn(model)
    grad = jax.grad(lambda p, xb, yb: loss_fn(p, (xb, yb))[0])
    full = grad(params, x, y)

    def minibatch_grads(b: int, k):
        def one(k):
            rows = jax.random.choice(k, n, (b,), replace=False)
            return grad(params, x[rows], y[rows])

        return run_once(jax.vmap(one), jax.random.split(k, config.draws))

    # 1. unbiasedness, leaf by leaf
    draws = minibatch_grads(config.batch_for_bias, jax.random.fold_in(key, 1))
    z = jax.tree.map(lambda d, f: (d.mean(0) - f) / (d.std(0, ddof=1) / np.sqrt(config.draws) + 1e-30), draws, full)
    z_by_leaf = {
        jax.tree_util.keystr(path): float(jnp.max(jnp.abs(v))) for path, v in jax.tree_util.tree_leaves_with_path(z)
    }
    # 2. variance against the batch size
    sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    variance = []
    for b in sizes:
        g = jax.vmap(_flat)(minibatch_grads(b, jax.random.fold_in(key, 100 + b)))
        variance.append(float(jnp.sum(jnp.var(g, axis=0, ddof=1))))
    small = slice(0, 6)  # B << n, where theory says slope -1
    slope = float(np.polyfit(np.log(sizes[small]), np.log(variance[small]), 1)[0])
    corrected = [v * b * (n - 1) / (n - b) for v, b in zip(variance, sizes, strict=True)]  # constant if theory holds
    # 3. SGD with several batch sizes
    curves = {}
    for b in config.sgd_batches:
        tx = optax.sgd(config.lr)

        @jax.jit
        def epoch(p, opt_state, k, b=b, tx=tx):
            rows, _ = epoch_indices(k, n, b)

            def step(carry, r):
                p, s = carry
                g = grad(p, x[r], y[r])
                u, s = tx.update(g, s, p)
                return (optax.apply_updates(p, u), s), None

            (p, opt_state), _ = jax.lax.scan(step, (p, opt_state), rows)
            return p, opt_state, loss_fn(p, (x, y))[0]

        p, s = params, tx.init(params)
        epoch.lower(p, s, key).compile()
        history, elapsed = [], 0.0
        for e in range(config.epochs):
            t0 = time.perf_counter()
            p, s, loss = jax.block_until_ready(epoch(p, s, jax.random.fold_in(key, 1000 + e)))
            elapsed += time.perf_counter() - t0
            history.append({"epoch": e + 1, "seconds": elapsed, "loss": float(loss)})
        curves[b] = history
    run_dir.append_history([{"batch": b, **r} for b, h in curves.items() for r in h])
    run_dir.save_figure(plots.minibatch(sizes, variance, curves), "minibatch.png")
    metrics = {
        "unbiased_max_abs_z": max(z_by_leaf.values()),
        "unbiased_z_by_leaf": z_by_leaf,
        "variance_slope_small_batches": slope,
        "variance_by_batch": dict(zip(map(str, sizes), variance, strict=True)),
        "corrected_variance_spread": float(np.max(corrected) / np.min(corrected)),
        **{f"sgd_final_loss_b{b}": h[-1]["loss"] for b, h in curves.items()},
        **{f"sgd_seconds_b{b}": h[-1]["seconds"] for b, h in curves.items()},
    }
    print(f"mean of {config.draws} minibatch gradients (B={config.batch_for_bias}) vs the full gradient: "
          f"largest |z| over leaves {metrics['unbiased_max_abs_z']:.2f}")  # fmt: skip
    print(f"gradient variance against B: fitted slope {slope:.3f} for B <= 32 (theory -1); with the "
          f"(n - B)/(n - 1) correction it varies by a factor {metrics['corrected_variance_spread']:.2f} "
          "over B = 1..512")  # fmt: skip
    for b, h in curves.items():
        print(f"SGD batch {b:>4}: loss {h[-1]['loss']:.4f} after {config.epochs} epochs, {h[-1]['seconds']:.3f} s")
    return metrics


EXPERIMENT = Experiment(
    name="minibatch-sgd",
    description="tutorial 0: minibatch gradients are unbiased, their variance falls like 1/B; SGD by batch size",
    config=Config,
    run=run,
    smallest=("draws=500", "epochs=2", "sgd_batches=100,1000"),
    claims=(
        Run(name="minibatch-sgd", quick=("draws=1000", "epochs=10"), claims=(
            Claim(source="tutorial 2", statement="a minibatch gradient is an unbiased estimate of the full gradient: "
                  "worst |z| over leaves", tutorial="unbiased", metric="unbiased_max_abs_z", fmt="{:.2f}",
                  target=at_most(3.5, "<= 3.5")),
            Claim(source="tutorial 2", statement="its variance falls like 1/B: fitted slope for B <= 32", tutorial="-1",
                  metric="variance_slope_small_batches", fmt="{:.3f}", target=between(-1.15, -0.85, "-1 +- 0.15")),
        )),
    ),
)  # fmt: skip
