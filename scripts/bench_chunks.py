"""What stopping at a step boundary costs: epochs in compiled chunks against one ``lax.scan`` per epoch.

    python scripts/bench_chunks.py [--seconds 4] [--rounds 5] [--chunk-seconds 10 1]

Before preemption support, ``fit`` ran each epoch as one compiled ``lax.scan``
(reproduced here as ``scan_epoch``): a SIGTERM could only be answered at the
end of an epoch. Now an epoch runs as ``train_in_chunks``: a compiled
``fori_loop`` over any range of the epoch's steps, called once per chunk of
about ``chunk_seconds``. For each tutorial network, on random data of its
shapes already on the device (an epoch of about --seconds), this times both
ways side by side, alternating, in one process, and prints the median epoch
seconds, the steps per chunk the sizer settled on, and the ratio (chunked /
scan, median of paired rounds; >1 is slower). Both ways end bitwise equal; the
script checks that too.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import _random_data, workloads  # noqa: E402

from jaxdl.data.batching import epoch_indices  # noqa: E402
from jaxdl.train.fit import ChunkSizer, train_in_chunks  # noqa: E402
from jaxdl.train.state import init_state  # noqa: E402
from jaxdl.train.steps import make_epoch_fns, train_step_fn  # noqa: E402


def scan_epoch(task, batch_size: int, num_train: int):
    """fit's epoch before chunks: one jitted ``lax.scan`` over every step, shuffled by ``key``."""
    train_step = train_step_fn(task)

    @functools.partial(jax.jit, donate_argnums=0)
    def train_epoch(state, data, key):
        indices, mask = epoch_indices(key, num_train, batch_size, drop_remainder=True)

        def body(state, rows_valid):
            rows, valid = rows_valid
            return train_step(state, {**{k: v[rows] for k, v in data.items()}, "mask": valid})

        return jax.lax.scan(body, state, (indices, mask))

    return train_epoch


def copy(tree):
    return jax.tree.map(lambda x: x.copy(), tree)


def bench(name: str, args) -> dict:
    task, tx, shape, batch, _ = workloads()[name]
    probe = _random_data(shape, batch, 8)
    state0, _ = init_state(task, tx, probe, jax.random.key(0), batch_size=batch)
    # size the epoch to about --seconds from one compiled 8-step run
    old = scan_epoch(task, batch, batch * 8)
    s, _ = old(copy(state0), probe, jax.random.PRNGKey(0))
    jax.block_until_ready(s)
    t0 = time.perf_counter()
    jax.block_until_ready(old(s, probe, jax.random.PRNGKey(1)))
    steps = max(8, int(args.seconds / ((time.perf_counter() - t0) / 8)))
    n = steps * batch
    data = _random_data(shape, batch, steps)
    fns, old = make_epoch_fns(task, batch, n), scan_epoch(task, batch, n)
    zero_sums = fns.zero_sums(state0, data)

    def run_scan(state, key):
        state, sums = old(state, data, key)
        return state, jax.device_get(sums)

    sizers = {c: ChunkSizer(c, steps) for c in args.chunk_seconds}  # as in fit: one per run, sized as it goes

    def run_chunks(state, key, chunk_seconds):
        batches, sums = fns.batches(key), fns.place(zero_sums)
        state, sums, _, _ = train_in_chunks(fns.train_steps, state, data, batches, sums, 0, sizers[chunk_seconds])
        return state, jax.tree.map(lambda s: s[:, 0], jax.device_get(sums))  # (steps, R = 1) -> the scan's (steps,)

    # warm up (compile) both, and check they agree bitwise
    key = jax.random.PRNGKey(2)
    a, sums_a = run_scan(copy(state0), key)
    same = True
    for c in args.chunk_seconds:
        b, sums_b = run_chunks(copy(state0), key, c)
        pairs = zip(jax.tree.leaves((a, sums_a)), jax.tree.leaves((b, sums_b)), strict=True)
        same &= all(np.array_equal(x, y) for x, y in pairs)
    times = {"scan": []} | {c: [] for c in args.chunk_seconds}
    states = {k: copy(state0) for k in times}
    for r in range(args.rounds):
        key = jax.random.PRNGKey(10 + r)
        t0 = time.perf_counter()
        states["scan"], _ = run_scan(states["scan"], key)
        times["scan"].append(time.perf_counter() - t0)
        for c in args.chunk_seconds:
            t0 = time.perf_counter()
            states[c], _ = run_chunks(states[c], key, c)
            times[c].append(time.perf_counter() - t0)
    scan_s = statistics.median(times["scan"])
    row = {"model": name, "steps": steps, "scan_s": scan_s, "bitwise_equal": same}
    for c in args.chunk_seconds:
        row[f"chunks_{c}s"] = statistics.median(times[c])
        row[f"ratio_{c}s"] = statistics.median(t / s for t, s in zip(times[c], times["scan"], strict=True))
        row[f"chunk_steps_{c}s"] = sizers[c].size
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="about how long one epoch runs")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timings of each way")
    parser.add_argument("--chunk-seconds", type=float, nargs="+", default=[10.0, 1.0])
    parser.add_argument("--only", nargs="+", help="models (default: all)")
    args = parser.parse_args()
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    print(f"# {cpu}, {jax.devices()[0].device_kind}; median of {args.rounds} alternating rounds per way")
    header = ["model", "steps", "scan epoch s"]
    for c in args.chunk_seconds:
        header += [f"chunks of {c:g} s: epoch s", "steps per chunk", "ratio (paired)"]
    print("| " + " | ".join(header + ["bitwise equal"]) + " |")
    print("|" + " --- |" * (len(header) + 1))
    for name in args.only or list(workloads()):
        row = bench(name, args)
        cells = [name, str(row["steps"]), f"{row['scan_s']:.3f}"]
        for c in args.chunk_seconds:
            cells += [f"{row[f'chunks_{c}s']:.3f}", str(row[f"chunk_steps_{c}s"]), f"{row[f'ratio_{c}s']:.3f}"]
        print("| " + " | ".join(cells + [str(row["bitwise_equal"])]) + " |", flush=True)


if __name__ == "__main__":
    main()
