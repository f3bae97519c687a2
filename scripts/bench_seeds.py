"""What seeds cost: N replicas vmapped in one program, against N runs one after another, and one run.

    python scripts/bench_seeds.py [--replicas 8] [--steps 10] [--repeats 3] [--only MODEL ...] [--json F]

For each tutorial network (the workloads of scripts/bench.py, plus tutorial 0's
blob classifier with full-batch SGD), the training engine's compiled chunk of
--steps steps is timed three ways in one invocation, each blocked until done,
compilation excluded (reported apart): one run; N runs one after another (the
same compiled program, N states); and N replicas as one vmapped program
(``jaxdl.train.init_replicas`` + ``make_epoch_fns(replicas=N)``, what
``--seeds N`` trains). Each figure is the median of --repeats, and the three
are taken round by round, so a slow spell of a shared machine falls on all.
Memory is XLA's compiled figure (arguments + outputs + temporaries - aliased)
for one run and for the vmapped N. Data are random uint8 images of the
tutorial's shapes, on the device.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl.data import make_blobs_dataset
from jaxdl.experiments import blobs
from jaxdl.models.blobs import BlobClassifier
from jaxdl.train.replicas import init_replicas
from jaxdl.train.state import init_state
from jaxdl.train.steps import make_epoch_fns
from jaxdl.train.task import Task

_spec = importlib.util.spec_from_file_location("bench", Path(__file__).with_name("bench.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


class BlobNet(nn.Module):
    """Tutorial 0's network as the engine calls a model (with ``train``)."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        return BlobClassifier()(x)


def blob_loss(logits, batch):
    labels = batch["labels"].astype(jnp.float32)
    losses = optax.sigmoid_binary_cross_entropy(logits, labels)
    return losses, {"accuracy": ((logits > 0) == (labels > 0.5)).astype(jnp.float32)}


def workloads() -> dict:
    """name: (task, optimizer, data, batch size)."""
    out = {}
    for name, (task, tx, shape, batch, _) in bench.workloads().items():
        out[name] = (task, tx, bench._random_data(shape, batch, 1), batch)
    config = blobs.Config()
    x, y = make_blobs_dataset(config.n_samples, config.cluster_std, config.data_seed)
    out["blobs"] = (Task(BlobNet(), blob_loss), optax.sgd(5e-4),
                    {"inputs": np.asarray(x, np.float32), "labels": np.asarray(y, np.int32)}, len(y))  # fmt: skip
    return out


def _memory_mb(compiled) -> float:
    m = compiled.memory_analysis()
    return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes) / 2**20


class Timer:
    """A compiled chunk of ``steps`` training steps for one run or ``replicas`` vmapped ones."""

    def __init__(self, task, tx, data, batch, steps, replicas=None):
        mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
        n = len(data["labels"])
        # the chunk walks `steps` batches of one epoch of `steps` batches (data repeated to fill it)
        reps = -(-steps * batch // n)
        data = {k: np.concatenate([v] * reps)[: steps * batch] for k, v in data.items()}
        self.fns = make_epoch_fns(task, batch, steps * batch, mesh=mesh, replicas=replicas)
        self.data = self.fns.place_train(data)
        if replicas is None:
            state, key = init_state(task, tx, data, jax.random.key(0), batch_size=batch)
        else:
            state, key = init_replicas(task, tx, data, list(range(replicas)), batch_size=batch)
        self.state, self.batches = self.fns.place_state(state), self.fns.batches(key)
        self.steps = steps
        t0 = time.perf_counter()
        self.compiled = self.fns.train_steps.lower(*self._args(self.state)).compile()
        self.compile_s = time.perf_counter() - t0
        self.memory_mb = _memory_mb(self.compiled)

    def _args(self, state):
        sums = self.fns.place(self.fns.zero_sums(state, self.data))
        return state, self.data, self.batches, sums, np.int32(0), np.int32(self.steps)

    def run(self, state):
        state, sums = self.compiled(*self._args(state))
        jax.block_until_ready(sums)
        return state

    def seconds(self, runs: int = 1) -> float:
        """Wall seconds of ``runs`` chunks one after another, each from its own copy of the state."""
        states = [jax.tree.map(jnp.copy, self.state) for _ in range(runs)]
        t0 = time.perf_counter()
        for i in range(runs):
            states[i] = self.run(states[i])
        return time.perf_counter() - t0


def bench_model(name, task, tx, data, batch, args) -> dict:
    one = Timer(task, tx, data, batch, args.steps)
    many = Timer(task, tx, data, batch, args.steps, replicas=args.replicas)
    one.run(jax.tree.map(jnp.copy, one.state))  # warm both (first-run allocations)
    many.run(jax.tree.map(jnp.copy, many.state))
    single, sequential, vmapped = [], [], []
    for _ in range(args.repeats):
        single.append(one.seconds(1))
        sequential.append(one.seconds(args.replicas))
        vmapped.append(many.seconds(1))
    row = {
        "model": name,
        "batch": batch,
        "steps": args.steps,
        "replicas": args.replicas,
        "one_s": statistics.median(single),
        "sequential_s": statistics.median(sequential),
        "vmapped_s": statistics.median(vmapped),
        "compile_one_s": one.compile_s,
        "compile_vmapped_s": many.compile_s,
        "memory_one_mb": one.memory_mb,
        "memory_vmapped_mb": many.memory_mb,
    }
    row["vmapped_over_one"] = row["vmapped_s"] / row["one_s"]
    row["sequential_over_one"] = row["sequential_s"] / row["one_s"]
    row["vmapped_over_sequential"] = row["vmapped_s"] / row["sequential_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=8, help="N: replicas vmapped, runs in sequence")
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed chunk")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (median)")
    parser.add_argument("--only", nargs="*", help="model names (default: all)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
          f"({jax.devices()[0].device_kind}), XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")  # fmt: skip
    n = args.replicas
    print(f"{args.steps} steps per timing, median of {args.repeats} rounds; compile excluded\n")
    rows = []
    header = (f"{'model':<12}{'batch':>6}{'1 run s':>9}{f'{n} seq s':>9}{f'{n} vmap s':>10}{'vmap/1':>8}"
              f"{'seq/1':>7}{'vmap/seq':>9}{'compile 1/vmap s':>18}{'MB 1':>8}{f'MB {n} vmap':>11}")  # fmt: skip
    print(header)
    for name, spec in workloads().items():
        if args.only and name not in args.only:
            continue
        r = bench_model(name, *spec, args)
        rows.append(r)
        print(f"{name:<12}{r['batch']:>6}{r['one_s']:>9.3f}{r['sequential_s']:>9.3f}{r['vmapped_s']:>10.3f}"
              f"{r['vmapped_over_one']:>7.2f}x{r['sequential_over_one']:>6.2f}x{r['vmapped_over_sequential']:>8.2f}x"
              f"{r['compile_one_s']:>9.1f} / {r['compile_vmapped_s']:<6.1f}{r['memory_one_mb']:>8.1f}"
              f"{r['memory_vmapped_mb']:>11.1f}", flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
