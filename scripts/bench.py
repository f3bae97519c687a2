"""Benchmark of the training engine on each tutorial network, optionally beside PyTorch.

    python scripts/bench.py [--steps 30] [--min-seconds 1] [--repeats 3] [--json out.json] [--torch-python PY]
                            [--isa native|avx2] [--no-profile] [--api linen|nnx|both]

For each model: compile time of the epoch function, steady-state training
examples/s (median of repeats of a compiled epoch loop over at least
--steps batches, more where that would take under --min-seconds, blocked),
FLOPs per step from XLA's cost analysis and the FLOP/s achieved against a
float32 matmul peak measured here, and the compiled function's memory
(arguments + temporaries). Data are random uint8 images of the tutorial's
shapes already on the device; loading is not timed. With --torch-python it
also runs scripts/torch_baselines.py (the tutorials' PyTorch networks and
steps) on the same number of batches, right after each model's own timing,
and prints the speed-ups. ``--isa avx2`` runs both sides as on an AVX2-only CPU
(``--xla_cpu_max_isa=AVX2`` for XLA; ``ATEN_CPU_CAPABILITY=avx2`` and
``ONEDNN_MAX_CPU_ISA=AVX2`` for PyTorch). Last, a profile of the CNN's compiled
epoch: the share of its busy time in each kind of work (:func:`profile_breakdown`).

``--api nnx`` times each network's Flax NNX twin as the engine trains it
(``--set api=nnx``: split once, merged inside the compiled step), ``--api both``
the two side by side, alternating in each round, with the NNX/Linen ratio of
the paired rounds and whether XLA compiled the two steps to the same program
(the optimised HLO, source metadata aside). With NNX it also measures what NNX costs outside the compiled
step (:func:`nnx_overhead`): ``nnx.split`` plus ``nnx.merge`` of the twin, and a
call of an ``nnx.jit`` training step against a ``jax.jit`` step that is a pure
function of the ``State``, both on two examples, where the call's Python work
is most of its time.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl.experiments import cifar10, common, mnist_vae
from jaxdl.models.classifiers import MLP, SmallMLP
from jaxdl.rundir import environment
from jaxdl.train.state import init_state
from jaxdl.train.steps import make_epoch_fns, make_train_step
from jaxdl.train.task import Task, classification_loss
from jaxdl.train.timing import compile_ahead, median_seconds


def workloads():
    cnn_config = cifar10.CNNConfig(recipe="tutorial")
    cnn_task, cnn_tx = cifar10.cnn_task(cnn_config), cifar10.cnn_optimizer(cnn_config, 500)
    return {
        # name: (task, optimizer, image shape, batch size, examples per epoch)
        "cifar10-mlp": (Task(MLP(), classification_loss, cifar10.normalize_batch), optax.adam(1e-3),
                        (32, 32, 3), 100, 50000),
        "cifar10-cnn": (cnn_task, cnn_tx, (32, 32, 3), 100, 50000),
        "mnist-vae": (mnist_vae.make_task(mnist_vae.Config()), optax.adam(1e-3), (28, 28, 1), 32, 60000),
        "mnist-mlp": (Task(SmallMLP(), classification_loss, common.unit_pixels), optax.sgd(1e-2),
                      (28, 28, 1), 64, 4096),
    }  # fmt: skip


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """float32 GFLOP/s of an n x n matmul under jit: the machine's practical peak."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    matmul, _ = compile_ahead(jax.jit(lambda a: a @ a), a)
    jax.block_until_ready(matmul(a))
    return 2 * n**3 / median_seconds(matmul, a, repeats=repeats) / 1e9


def _random_data(shape, batch, steps) -> dict[str, jax.Array]:
    rng = np.random.default_rng(0)
    n = steps * batch
    return {
        "inputs": jnp.asarray(rng.integers(0, 256, (n, *shape), dtype=np.uint8)),
        "labels": jnp.asarray(rng.integers(0, 10, n).astype(np.int32)),
    }


def step_cost(task, tx, shape, batch) -> dict:
    """FLOPs (XLA's cost analysis) and memory (arguments + temporaries) of one compiled training step,
    and under ``"program"`` its optimised HLO (:func:`program_text`)."""
    batch_data = _random_data(shape, batch, 1) | {"mask": jnp.ones(batch, bool)}
    state, _ = init_state(task, tx, batch_data, jax.random.key(0), batch_size=batch)
    compiled = make_train_step(task).lower(state, batch_data).compile()
    cost, memory = compiled.cost_analysis() or {}, compiled.memory_analysis()
    return {
        "gflop_per_step": cost["flops"] / 1e9 if cost.get("flops") else None,
        "memory_mb": (memory.argument_size_in_bytes + memory.temp_size_in_bytes) / 2**20 if memory else None,
        "program": program_text(compiled.as_text()),
    }


def program_text(hlo: str) -> str:
    """Compiled HLO without its source metadata (the Python files and lines each operation came from):
    two steps with equal texts are one program, whichever API traced them."""
    hlo = re.sub(r", metadata=\{[^}]*\}", "", hlo)
    tables = ("FileNames", "FunctionNames", "FileLocations", "StackFrames")
    return "\n".join(
        line for line in hlo.splitlines() if " = " in line or line.endswith("{") and not line.startswith(tables)
    )


class EpochTimer:
    """An epoch of ``steps`` batches on the device as one compiled call (fit's ``train_steps`` over the
    whole epoch), and blocked timings of it."""

    def __init__(self, task, tx, shape, batch, steps):
        self.steps, self.examples = steps, steps * batch
        data = _random_data(shape, batch, steps)
        state, _ = init_state(task, tx, data, jax.random.key(0), batch_size=batch)
        self.fns = fns = make_epoch_fns(task, batch, self.examples)
        self.data, self.state = fns.place_train(data), fns.place(state)
        self.zero_sums, self.key = fns.zero_sums(state, data), jax.random.PRNGKey(2)
        start = time.perf_counter()
        batches, sums = fns.batches(self.key), fns.place(self.zero_sums)
        lowered = fns.train_steps.lower(self.state, self.data, batches, sums, np.int32(0), np.int32(steps))
        self.compiled = lowered.compile()
        self.compile_s = time.perf_counter() - start
        self.seconds(1)  # warm-up

    def seconds(self, repeats: int) -> float:
        """Median seconds of ``repeats`` epochs (shuffling and the metric buffer made before the clock starts)."""
        times = []
        for _ in range(repeats):
            self.key = jax.random.fold_in(self.key, 1)
            batches, sums = self.fns.batches(self.key), self.fns.place(self.zero_sums)
            jax.block_until_ready((batches, sums))
            start = time.perf_counter()
            self.state, _ = self.compiled(self.state, self.data, batches, sums, np.int32(0), np.int32(self.steps))
            jax.block_until_ready(self.state)
            times.append(time.perf_counter() - start)
        return statistics.median(times)


_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (?:\S+|\(.*?\)) ([\w\-]+)\(")
_COMPUTATION = re.compile(r"^%?([\w.\-]+) \(.*\{$")
_LAYOUT_OPS = {"parameter", "constant", "bitcast", "reshape", "copy", "transpose", "slice", "concatenate", "pad",
               "broadcast", "select", "dynamic-slice", "dynamic-update-slice", "iota", "compare", "tuple",
               "get-tuple-element"}  # fmt: skip


def _parse_hlo(text: str) -> tuple[dict[str, tuple[str, str, str | None]], dict[str, tuple[set, set]]]:
    """Compiled HLO text as ``{instruction: (opcode, op_name, called computation)}`` and
    ``{computation: (its opcodes, the Flax layers its instructions' name stacks mention)}``."""
    instructions, computations, current = {}, collections.defaultdict(lambda: (set(), set())), None
    for line in text.splitlines():
        if m := _COMPUTATION.match(line):
            current = m.group(1)
        elif m := _INSTRUCTION.match(line):
            name, opcode = m.groups()
            calls, op_name = re.search(r"calls=%?([\w.\-]+)", line), re.search(r'op_name="([^"]*)"', line)
            op_name = op_name.group(1) if op_name else ""
            instructions[name] = (opcode, op_name, calls and calls.group(1))
            computations[current][0].add(opcode)
            computations[current][1].update(re.findall(r"/(conv|bn|fc)\d", op_name))
    return instructions, computations


def _category(opcode: str, op_name: str, calls: str | None, computations: dict) -> str:
    """Where an executed HLO instruction belongs, from its opcode (a fusion's: those of its fused
    computation) and the Flax layers in its JAX name stack (``.../conv3/dot_general``)."""
    opcodes, layers = computations[calls] if calls else ({opcode}, set())
    layers = layers | set(re.findall(r"/(conv|bn|fc)\d", op_name))
    product = bool(opcodes & {"dot", "convolution"})  # a YNNPACK fusion may also be a reduction
    if "conv" in layers:
        return "convolutions: " + ("matrix products" if product else "patches, transforms, gradient sums")
    if product:
        return "dense layers: matrix products"
    if "bn" in layers:
        return "batch norm"
    if opcodes <= _LAYOUT_OPS:
        return "other data movement"
    if "jvp(" not in op_name and "while/body/" in op_name:  # in the step, outside the network's passes
        return "optimizer"
    return "other arithmetic: activations, loss, dropout"


def profile_breakdown(timer: EpochTimer, repeats: int = 2) -> dict[str, float]:
    """Shares of the compiled epoch's busy time (both threads) by what XLA's CPU profiler saw executing.

    Each executed instruction (the profiler names them) is looked up in the compiled
    HLO: its opcode, its fused computation's opcodes and its JAX name stack (which
    carries the Flax module, ``conv3`` or ``bn2``) say where it belongs.
    """
    from jax.profiler import ProfileData

    instructions, computations = _parse_hlo(timer.compiled.as_text())
    busy = collections.Counter()
    with tempfile.TemporaryDirectory() as folder:
        jax.profiler.start_trace(folder)
        timer.seconds(repeats)
        jax.profiler.stop_trace()
        data = ProfileData.from_file(str(next(Path(folder).rglob("*.xplane.pb"))))
    for plane in data.planes:
        for line in plane.lines if plane.name == "/host:CPU" else ():
            for event in line.events:
                if event.name in instructions:
                    busy[_category(*instructions[event.name], computations)] += event.duration_ns
    total = sum(busy.values())
    return {category: ns / total for category, ns in busy.most_common()}


def torch_examples_per_second(python: str, name: str, steps: int, repeats: int) -> float:
    """The tutorial's PyTorch step for ``name`` (scripts/torch_baselines.py), timed over ``steps`` batches."""
    script = Path(__file__).with_name("torch_baselines.py")
    out = subprocess.run([python, str(script), "--steps", str(steps), "--repeats", str(repeats), "--only", name],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])["examples_per_second"]


def as_nnx(task: Task) -> Task:
    """``task`` with its network's NNX twin, as ``--set api=nnx`` trains it."""
    from jaxdl.models.nnx_models import AsLinen

    return dataclasses.replace(task, model=AsLinen(task.model))


def bench(name, task, tx, shape, batch, per_epoch, args) -> dict:
    """jaxdl's (and PyTorch's) training speed on ``name``: medians over ``args.rounds`` rounds.

    Each round times jaxdl and then PyTorch on the same number of batches, so that a slow
    spell of a shared machine falls on both. At least ``args.steps`` batches, more where
    a timing would last under ``args.min_seconds``: short timings are mostly noise.
    """
    return bench_apis(name, task, tx, shape, batch, per_epoch, args, ("linen",))[0]


def bench_apis(name, task, tx, shape, batch, per_epoch, args, apis=("linen", "nnx")) -> list[dict]:
    """:func:`bench` for the network in each API of ``apis`` (its NNX twin for "nnx"), one row each;
    each round times them in turn on the same number of batches (and PyTorch after them), and a
    second API's row has its speed over the first's, the median of the paired rounds."""
    tasks = {api: as_nnx(task) if api == "nnx" else task for api in apis}
    timers = {api: EpochTimer(t, tx, shape, batch, args.steps) for api, t in tasks.items()}
    first = timers[apis[0]].seconds(args.repeats)
    if first < args.min_seconds:
        steps = math.ceil(args.steps * args.min_seconds / first)
        timers = {api: EpochTimer(t, tx, shape, batch, steps) for api, t in tasks.items()}
    rates, torch_rates = {api: [] for api in apis}, []
    for _ in range(args.rounds):
        for api, timer in timers.items():
            rates[api].append(timer.examples / timer.seconds(args.repeats))
        if args.torch_python:
            steps = timers[apis[0]].steps
            torch_rates.append(torch_examples_per_second(args.torch_python, name, steps, args.repeats))
    rows, programs = [], {}
    for api, timer in timers.items():
        rate = statistics.median(rates[api])
        row = {"model": name if apis == ("linen",) else f"{name} ({api})", "api": api, "steps": timer.steps,
               "compile_s": timer.compile_s, "examples_per_second": rate, "examples_per_second_rounds": rates[api],
               "seconds_per_epoch": per_epoch / rate, **step_cost(tasks[api], tx, shape, batch)}  # fmt: skip
        programs[api] = row.pop("program")
        row["achieved_gflops"] = row["gflop_per_step"] * rate / batch if row["gflop_per_step"] else None
        if api != apis[0]:
            paired = [r / f for r, f in zip(rates[api], rates[apis[0]], strict=True)]
            row[f"over_{apis[0]}_rounds"], row[f"over_{apis[0]}"] = paired, statistics.median(paired)
            row[f"same_program_as_{apis[0]}"] = programs[api] == programs[apis[0]]
        if torch_rates:
            row["torch_examples_per_second"] = statistics.median(torch_rates)
            row["torch_examples_per_second_rounds"] = torch_rates
            row["speedup_rounds"] = [j / t for j, t in zip(rates[api], torch_rates, strict=True)]
            row["speedup_over_torch"] = statistics.median(row["speedup_rounds"])  # paired: same machine state
        rows.append(row)
    return rows


def nnx_overhead(task, shape, calls: int = 200) -> dict:
    """What NNX costs outside the compiled step, in microseconds per call (medians of ``calls``).

    ``split_merge_us``: ``nnx.split`` then ``nnx.merge`` of the network's twin (the graph traversal
    the engine does once per trace, and an eager NNX user once per call). ``nnx_jit_us`` and
    ``jax_jit_us``: a call of the same training step (the twin in training mode, a sum of the
    outputs' tanh as the loss, SGD) written with ``nnx.jit`` on the model and its ``nnx.Optimizer``,
    and written as ``jax.jit`` of a pure function of the ``State`` (split once, merged inside); on
    two examples, so that the call's Python work, not the arithmetic, is most of what is timed.
    """
    from flax import nnx

    from jaxdl.models.nnx_models import _twin_of

    data = _random_data(shape, 2, 1)
    x = task.preprocess(data, jax.random.key(0), True)["inputs"]
    tx = optax.sgd(1e-3)
    model = _twin_of(task.model, x, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    def loss_of(model, x):
        return sum(jnp.sum(jnp.tanh(o)) for o in jax.tree.leaves(model(x, train=True)))

    @nnx.jit
    def nnx_step(model, optimizer, x):
        optimizer.update(model, nnx.grad(loss_of)(model, x))

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = tx.init(params)

    @jax.jit
    def pure_step(params, rest, opt_state, x):
        def loss(params):
            model = nnx.merge(graphdef, params, rest, copy=True)  # new Variables, updatable under grad
            return loss_of(model, x), nnx.state(model, nnx.Not(nnx.Param))  # batch statistics, random counts

        grads, rest = jax.grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state

    def per_call_us(call) -> float:
        jax.block_until_ready(call())  # compiles
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            jax.block_until_ready(call())
            times.append(time.perf_counter() - start)
        return 1e6 * statistics.median(times)

    state = [params, rest, opt_state]

    def pure_call():
        state[:] = pure_step(*state, x)
        return state

    return {
        "split_merge_us": per_call_us(lambda: nnx.merge(*nnx.split(model))),
        "nnx_jit_us": per_call_us(lambda: (nnx_step(model, optimizer, x), nnx.state(model))[1]),
        "jax_jit_us": per_call_us(pure_call),
    }


TORCH_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def limit_isa(isa: str) -> None:
    """For ``avx2``: restarts this script with XLA and PyTorch (its subprocesses) limited to AVX2.

    XLA reads its flags when the CPU client starts, so they are set before anything else runs.
    """
    flag = "--xla_cpu_max_isa=AVX2"
    if isa == "native" or flag in os.environ.get("XLA_FLAGS", ""):
        return
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    os.environ.update(TORCH_AVX2)
    os.execv(sys.executable, [sys.executable, *sys.argv])


def cpu_isa() -> str:
    """The widest vector instructions this CPU has (from /proc/cpuinfo's flags)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "ISA unknown"
    words = set(flags.split())
    return "AVX-512" if "avx512f" in words else "AVX2" if "avx2" in words else "no AVX2"


def positive_int(text: str) -> int:
    """An argparse type: a count of at least 1 (a median of nothing has no value)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive_int, default=30, help="batches per timed epoch (at least)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="more batches until a timing lasts this long")
    parser.add_argument("--repeats", type=positive_int, default=3, help="epochs timed per round (median)")
    parser.add_argument("--rounds", type=positive_int, default=3, help="alternating jaxdl/PyTorch rounds (median)")
    parser.add_argument("--only", nargs="*", choices=sorted(workloads()), help="model names (default: all)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--torch-python", help="python with torch, for the tutorials' PyTorch code")
    parser.add_argument("--isa", choices=("native", "avx2"), default="native",
                        help="avx2: both sides limited to AVX2, as on a CPU without AVX-512")  # fmt: skip
    parser.add_argument("--no-profile", action="store_true", help="skip the CNN's profile")
    parser.add_argument("--api", choices=("linen", "nnx", "both"), default="linen",
                        help="the Linen networks, their Flax NNX twins, or both side by side")  # fmt: skip
    args = parser.parse_args()
    limit_isa(args.isa)

    peak = matmul_peak()
    flags = {k: os.environ[k] for k in ("XLA_FLAGS", *TORCH_AVX2) if os.environ.get(k)}
    print(
        f"machine: {environment()['cpu_model']} ({cpu_isa()}), {platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} ({jax.devices()[0].device_kind}); {flags or 'no ISA limits'}"
    )
    print(f"float32 matmul peak (2048^3, jit): {peak:.1f} GFLOP/s\n")
    apis = ("linen", "nnx") if args.api == "both" else (args.api,)
    chosen = {name: spec for name, spec in workloads().items() if not args.only or name in args.only}
    rows = [row for name, spec in chosen.items() for row in bench_apis(name, *spec, args, apis)]
    with_torch = bool(args.torch_python)

    width = max(12, *(len(r["model"]) + 1 for r in rows))
    header = f"{'model':<{width}}{'steps':>6}{'compile s':>10}{'ex/s':>10}{'s/epoch':>9}{'GFLOP/step':>11}"
    header += f"{'GFLOP/s':>9}{'% peak':>8}{'MB':>8}"
    if with_torch:
        header += f"{'torch ex/s':>12}{'speed-up':>10}  per round"
    if len(apis) == 2:
        header += f"{'same HLO':>9}{'nnx/linen':>11}  per round"
    print(header)
    for r in rows:
        achieved = r["achieved_gflops"] or 0
        line = (f"{r['model']:<{width}}{r['steps']:>6}{r['compile_s']:>10.2f}{r['examples_per_second']:>10.0f}"
                f"{r['seconds_per_epoch']:>9.2f}{r['gflop_per_step'] or 0:>11.3f}{achieved:>9.1f}"
                f"{100 * achieved / peak:>7.0f}%{r['memory_mb'] or 0:>8.0f}")  # fmt: skip
        if with_torch:
            rounds = ", ".join(f"{x:.2f}" for x in r["speedup_rounds"])
            line += f"{r['torch_examples_per_second']:>12.0f}{r['speedup_over_torch']:>9.2f}x  ({rounds})"
        if "over_linen" in r:
            rounds = ", ".join(f"{x:.3f}" for x in r["over_linen_rounds"])
            line += f"{'yes' if r['same_program_as_linen'] else 'no':>9}{r['over_linen']:>11.3f}  ({rounds})"
        print(line)
    if "nnx" in apis:
        print("\nNNX outside the compiled step, microseconds per call (two examples):")
        print(f"{'model':<{width}}{'split+merge':>12}{'nnx.jit step':>14}{'jax.jit step':>14}{'difference':>12}")
        for name, (task, *_rest) in chosen.items():
            cost = nnx_overhead(task, _rest[1])
            row = next(r for r in rows if r["model"].startswith(name) and r["api"] == "nnx")
            row["nnx_overhead"] = cost
            print(f"{name:<{width}}{cost['split_merge_us']:>12.0f}{cost['nnx_jit_us']:>14.0f}"
                  f"{cost['jax_jit_us']:>14.0f}{cost['nnx_jit_us'] - cost['jax_jit_us']:>12.0f}")  # fmt: skip
    if not args.no_profile and (not args.only or "cifar10-cnn" in args.only):
        task, tx, shape, batch, _ = workloads()["cifar10-cnn"]
        shares = profile_breakdown(EpochTimer(task, tx, shape, batch, 5))
        print("\nthe CNN's training epoch, share of busy time (XLA's CPU profiler, both threads):")
        for category, share in shares.items():
            print(f"  {100 * share:5.1f}%  {category}")
        next(r for r in rows if r["model"].startswith("cifar10-cnn") and r["api"] == apis[0])["profile"] = shares
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {usage:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"matmul_peak_gflops": peak, "rows": rows}, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
