"""Trains the MLP and the CNN for a few steps on a device mesh and saves the final parameters.

Run by tests/test_parallel.py in subprocesses, because the number of (fake
CPU) devices and the distributed runtime are fixed when JAX starts:

  python tests/parallel_worker.py OUT.npz --devices N
  python tests/parallel_worker.py OUT.npz --coordinator HOST:PORT --num-processes P --process-id I

Each model trains 2 epochs of 4 steps (batch 8) on 38 random 8x8 images (MLP)
and 32x32 images (CNN: batch norm and dropout, so the test covers batch
statistics over the global batch and per-example random keys). The npz holds
every parameter and batch statistic, the per-step losses, and how many times
each compiled epoch was traced.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--devices", type=int, default=0)
    parser.add_argument("--coordinator")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--replicas", type=int, default=0, help="train this many seeds as vmapped replicas")
    args = parser.parse_args()

    import jax
    import optax
    from flax import traverse_util

    from jaxdl.experiments.common import unit_pixels
    from jaxdl.models import CNN, MLP
    from jaxdl.train import parallel
    from jaxdl.train.fit import fit
    from jaxdl.train.replicas import init_replicas
    from jaxdl.train.state import init_state
    from jaxdl.train.task import Task, classification_loss

    if args.coordinator:
        parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    mesh = parallel.data_mesh(args.devices)

    results = {}
    # im2col, not Winograd: batched over replicas on one device and not on four, the Winograd layer's
    # products round differently, and 8 steps grew that to 1e-4-7e-4 (left for later); this compares
    # the placement of batches and replicas, which the convolution does not change.
    for name, model, shape in (("mlp", MLP(hidden=16), (8, 8, 3)), ("cnn", CNN(conv="im2col"), (32, 32, 3))):
        rng = np.random.default_rng(0)  # every process draws the same full data set
        data = {
            # 38 examples: 4 batches of 8 drawn from all 38, and padded to 40 to split over 4 devices
            "inputs": rng.integers(0, 256, (38, *shape), dtype=np.uint8),
            "labels": rng.integers(0, 10, 38).astype(np.int32),
        }
        task = Task(model, classification_loss, unit_pixels, compute_dtype=args.precision)
        # lr 0.01: at 0.05 these 8 steps on random labels are chaotic, and float32 rounding of another
        # reduction order grew to 2.5e-2 on one CPU (an Intel Xeon), as large as a real bug would move them.
        tx = optax.sgd(0.01, momentum=0.9)
        if args.replicas:  # seeds 0..R-1 as replicas: with several devices, the replica axis is split
            state, shuffle_key = init_replicas(task, tx, data, list(range(args.replicas)))
        else:
            state, shuffle_key = init_state(task, tx, data, jax.random.key(0))
        result = fit(task, state, data, epochs=2, batch_size=8, key=shuffle_key, mesh=mesh,
                     log=lambda line: None)  # fmt: skip
        variables = {"params": result.state.params, "batch_stats": result.state.batch_stats}
        for path, value in traverse_util.flatten_dict(jax.device_get(variables), sep="/").items():
            results[f"{name}/{path}"] = np.asarray(value, np.float32)
        results[f"{name}/losses"] = np.array([r["train_loss"] for r in result.history])
        # fit runs an ahead-of-time compiled epoch; the jitted one must not retrace either.
        fns, placed, state = result.fns, result.fns.place_train(data), result.state
        for epoch in range(2):
            key = jax.random.PRNGKey(10 + epoch)
            state, _ = fns.train_epoch(state, placed, jax.random.split(key, args.replicas) if args.replicas else key)
        results[f"{name}/traces"] = np.array(fns.train_steps._cache_size())
        results[f"{name}/param_dtypes"] = np.array(sorted({str(x.dtype) for x in jax.tree.leaves(result.state.params)}))
    results["devices"] = np.array(mesh.size)
    results["processes"] = np.array(jax.process_count())
    if jax.process_index() == 0:
        np.savez(args.out, **results)
    if args.coordinator:
        jax.distributed.shutdown()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
