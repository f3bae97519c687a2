"""What writing to JAX's persistent compilation cache costs per program, as the folder fills.

    python scripts/bench_compilation_cache.py [--programs 1200] [--block 200]

Compiles ``--programs`` small distinct programs (each a fresh ``jax.jit``, as a run's eager operations
and steps are) into an empty cache folder, once per setting, each in a fresh process:

- ``off``: no cache (the compiling alone);
- ``jax-bounded``: JAX's own size bound (``jax_compilation_cache_max_size`` = 1 GiB), which jaxdl used
  to set: each write lists and reads the whole folder;
- ``jaxdl``: what ``jaxdl.compilation_cache.enable`` does now: JAX unbounded, the folder trimmed to
  1 GiB once as the command starts.

Prints the milliseconds per program in each block of ``--block`` programs: the bounded cache's cost
grows with the entries already in the folder, the others' does not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
import jax, jax.numpy as jnp
setting, programs, block, folder = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if setting == "jaxdl":
    import os
    os.environ["JAXDL_COMPILATION_CACHE"] = folder
    from jaxdl import compilation_cache
    compilation_cache.enable()
elif setting == "jax-bounded":
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", 2**30)
x = jnp.ones((4,))
blocks = []
for start in range(0, programs, block):
    t = time.perf_counter()
    for i in range(start, start + block):
        jax.jit(lambda a, i=i: a * i + i).lower(x).compile()
    blocks.append(1e3 * (time.perf_counter() - t) / block)
print(json.dumps(blocks))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=1200)
    parser.add_argument("--block", type=int, default=200)
    args = parser.parse_args()
    rows = {}
    for setting in ("off", "jax-bounded", "jaxdl"):
        with tempfile.TemporaryDirectory() as folder:
            done = subprocess.run([sys.executable, "-c", CHILD, setting, str(args.programs), str(args.block), folder],
                                  capture_output=True, text=True, check=True)  # fmt: skip
            rows[setting] = json.loads(done.stdout.splitlines()[-1])
    starts = range(0, args.programs, args.block)
    print("| entries already in the folder | " + " | ".join(rows) + " |")
    print("| --- |" + " --- |" * len(rows))
    for index, start in enumerate(starts):
        cells = " | ".join(f"{rows[s][index]:.1f} ms" for s in rows)
        print(f"| {start:,}-{start + args.block - 1:,} | {cells} |")
    totals = {s: sum(v) * args.block / 1e3 for s, v in rows.items()}
    print("whole: " + ", ".join(f"{s} {t:.1f} s" for s, t in totals.items()) + f" for {args.programs:,} programs")


if __name__ == "__main__":
    main()
