"""cifar10-speedrun's ablations: the recipe, then the recipe with each ingredient removed in turn.

    python scripts/speedrun_ablations.py --data ../shared/datasets/cifar10-jpg.tar.gz --seeds 4 \\
        --out runs/ablations [--torch torch.json] [--only recipe whitening]

Each variant is ``jaxdl run cifar10-speedrun`` once per seed, one after another, at the recipe's budget:
on a CPU the seeds' vmapped program costs more per seed than single runs, and a learner runs one seed.
Prints a Markdown table (seconds of training per seed to the target, test accuracy at the budget in
percent, each as mean +- 95% interval over seeds, and the accuracy's change from the whole recipe's
run of the same seed) and writes ``accuracy_vs_time.png`` beside the runs: test accuracy after
each epoch against the training seconds per seed. ``--torch`` adds the tutorial's PyTorch recipe, from
the JSON line of ``scripts/torch_cifar10_tutorial.py --eval-every-epoch``.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxdl import stats  # noqa: E402
from jaxdl.results import RunResult  # noqa: E402
from jaxdl.rundir import read_history  # noqa: E402

# name: (what is removed, the settings that remove it)
VARIANTS = {
    "recipe": ("nothing: the whole recipe", ()),
    "whitening": ("the whitening layer (a learned 2x2 stride-2 convolution instead)", ("whiten=false",)),
    "tta": ("mirror-image test-time augmentation", ("tta=false",)),
    "label-smoothing": ("label smoothing (0.2 -> 0)", ("label_smoothing=0",)),
    "bias-scaler": ("the batch-norm biases' 64x learning rate", ("bias_scaler=1",)),
    "flip": ("random flips", ("flip=false",)),
    "translate": ("random 2-pixel shifts", ("translate=0",)),
    "schedule": ("the warm-up and decay (a constant rate)", ("schedule=constant",)),
}


def run_variant(name: str, seed: int, args: argparse.Namespace) -> Path:
    out = args.out / name / f"seed{seed}"
    if not (out / "metrics.json").exists():
        settings = [a for s in (f"seed={seed}", *VARIANTS[name][1], *args.set) for a in ("--set", s)]
        command = [sys.executable, "-m", "jaxdl", "run", "cifar10-speedrun", "--data", args.data, "--out", str(out)]
        subprocess.run([*command, *settings], check=True)
    return out


def curve(out: Path) -> tuple[np.ndarray, np.ndarray]:
    """Training seconds after each epoch, and the accuracy then."""
    history = read_history(out / "history.jsonl")
    return np.cumsum([r["seconds"] for r in history]), np.array([r["val_accuracy"] for r in history])


def cell(summary: dict) -> str:
    return stats.format_interval(summary, "{:.1f}") if summary["n"] else "not reached"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="CIFAR-10's local copy")
    parser.add_argument("--out", type=Path, required=True, help="a folder for the runs and the figure")
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0..N-1, one run each")
    parser.add_argument("--recipe-seeds", type=int, default=0, help="seeds of the whole recipe (0: --seeds)")
    parser.add_argument("--set", action="append", default=[], help="a further setting for every variant")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--torch", type=Path, help="the JSON line of scripts/torch_cifar10_tutorial.py")
    args = parser.parse_args()

    print("| removed | seconds per seed to the target | test accuracy at the budget | change, paired by seed "
          "| seeds reaching it |")  # fmt: skip
    print("| --- | --- | --- | --- | --- |")
    recipe = {}  # seed -> the whole recipe's test accuracy, for the paired differences
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.set_prop_cycle(color=["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
                             "tab:cyan"])  # fmt: skip  # red is the tutorial's, black the recipe's
    for name in args.only:
        seeds = args.recipe_seeds if name == "recipe" and args.recipe_seeds else args.seeds
        outs = [run_variant(name, seed, args) for seed in range(seeds)]
        rows = [RunResult.read(out).figures for out in outs]
        seconds = stats.interval([r["seconds_to_target"] for r in rows if r["seconds_to_target"] is not None])
        accuracy = stats.interval([100 * r["test_accuracy"] for r in rows])
        reached = sum(r["seconds_to_target"] is not None for r in rows)
        if name == "recipe":
            recipe = {seed: 100 * r["test_accuracy"] for seed, r in enumerate(rows)}
        change = [100 * r["test_accuracy"] - recipe[seed] for seed, r in enumerate(rows) if seed in recipe]
        paired = "" if name == "recipe" or not change else stats.format_interval(stats.interval(change), "{:+.2f}")
        print(f"| {VARIANTS[name][0]} | {cell(seconds)} | {stats.format_interval(accuracy, '{:.2f}')} "
              f"| {paired} | {reached} of {len(rows)} |")  # fmt: skip
        curves = [curve(out) for out in outs]  # the seeds' mean after each epoch (runs stopped early: fewer)
        epochs = min(len(x) for x, _ in curves)
        x, y = (np.mean([c[i][:epochs] for c in curves], axis=0) for i in (0, 1))
        style = {"linewidth": 3, "color": "black"} if name == "recipe" else {"linewidth": 1.2}
        label = "jaxdl speedrun, " + ("the recipe" if name == "recipe" else f"no {name}")
        ax.plot(x, 100 * y, marker="o", label=label, **style)
    if args.torch:
        line = json.loads(args.torch.read_text().strip().splitlines()[-1])
        ax.plot(np.cumsum(line["epoch_s"]), line["epoch_accuracy"], marker="s", color="tab:red", linewidth=2,
                label=f"tutorial's CNN and recipe, PyTorch {line['torch'].split('+')[0]} (10 epochs)")  # fmt: skip
    target = 100 * RunResult.read(args.out / args.only[0] / "seed0")["target"]
    ax.axhline(target, color="grey", linestyle="--", linewidth=1)
    ax.text(0.01, target + 0.3, f"target {target:.2f}%", color="grey", fontsize=8, transform=ax.get_yaxis_transform())
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([20, 30, 50, 100, 200, 300, 500, 1000]))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set(
        xlabel="training seconds per seed (log scale; compilation excluded)",
        ylabel="test accuracy after each epoch (%)",
        title="CIFAR-10: accuracy against training time",
    )
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out / "accuracy_vs_time.png", dpi=120)
    print(f"wrote {args.out / 'accuracy_vs_time.png'}")


if __name__ == "__main__":
    main()
