"""``jaxdl data info`` and ``jaxdl data show``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from jaxdl import data as data_lib
from jaxdl.data.folder import find_splits
from jaxdl.errors import JaxdlError, printable


def _splits(name: str, split: str | None, data: str | None) -> list[str]:
    spec = data_lib.loader.spec_for(name)
    if split:
        return [split]
    if spec.splits:
        return list(spec.splits)
    path = data_lib.loader.find_local_copy(spec, data)
    if path is None:
        raise JaxdlError(f"{name} needs --data: a split/class/image folder or a .tar.gz of one")
    found = find_splits(path)
    if not found:
        raise JaxdlError(f"{path} holds no split/class/image files (e.g. train/cat/1.png)")
    return found


def _mean_std(values: np.ndarray, chunk: int = 4096) -> tuple[float, float]:
    """Mean and std over all entries, in float64 chunks (a float64 copy of CIFAR-10 is 1.2 GB)."""
    total = total_sq = 0.0
    for start in range(0, len(values), chunk):
        part = values[start : start + chunk].astype(np.float64)
        total += part.sum()
        total_sq += np.square(part).sum()
    mean = total / values.size
    return mean, float(np.sqrt(max(total_sq / values.size - mean**2, 0.0)))


def info(args: argparse.Namespace) -> int:
    """``jaxdl data info NAME``: where a data set comes from, its splits' sizes and pixel statistics, and
    its class counts, printed as tables.

    Args:
      args: the parsed command line: ``name``, ``split`` (None for every split) and ``data``.

    Returns:
      The exit status, 0.
    """
    spec = data_lib.loader.spec_for(args.name)
    loaded = []
    for split in _splits(args.name, args.split, args.data):
        start = time.perf_counter()
        ds = data_lib.load(args.name, split, data=args.data)
        loaded.append((ds, time.perf_counter() - start))
    first = loaded[0][0]
    print(f"{spec.name}: {spec.description}")
    print(f"source: {first.source}")
    print(f"cache:  {data_lib.cache_dir()}")
    kind = "pixel" if first.inputs.dtype == np.uint8 else "value"
    header = f"{'split':<8}{'examples':>10}  {'shape':<14}{'dtype':<9}"
    print(f"\n{header}{kind + ' mean':>11}{kind + ' std':>11}{'load s':>9}")
    for ds, seconds in loaded:
        mean, std = _mean_std(ds.inputs)
        print(
            f"{ds.split:<8}{len(ds):>10}  {str(ds.inputs.shape[1:]):<14}{str(ds.inputs.dtype):<9}"
            f"{mean:>11.3f}{std:>11.3f}{seconds:>9.2f}"
        )
    print(f"\n{'class':<16}" + "".join(f"{ds.split:>10}" for ds, _ in loaded))
    counts = [ds.class_counts() for ds, _ in loaded]
    for label, cls in enumerate(first.class_names):
        print(f"{label:>2} {cls:<13}" + "".join(f"{c[cls]:>10}" for c in counts))
    return 0


def show(args: argparse.Namespace) -> int:
    """``jaxdl data show NAME``: a grid of random examples (or a scatter of points) saved as a PNG.

    Args:
      args: the parsed command line: ``name``, ``split`` (default "train"), ``data``, ``count``
        (images in the grid), ``seed`` (which ones) and ``out`` (default ``runs/data/NAME-SPLIT.png``).

    Returns:
      The exit status, 0.

    Raises:
      JaxdlError: a count below 1, or an output path that is not a ``.png``.
    """
    from jaxdl import plots
    from jaxdl.rundir import save_figure

    split = args.split or "train"
    if args.count < 1:
        raise JaxdlError(f"--count must be >= 1, got {args.count}")
    out = Path(args.out or Path("runs") / "data" / f"{args.name}-{split}.png")
    if out.suffix.lower() != ".png":
        raise JaxdlError(f"--out {out} must end in .png")
    ds = data_lib.load(args.name, split, data=args.data)
    title = f"{args.name} {split}: {len(ds)} examples"
    if ds.inputs.ndim == 2:  # points, not images
        fig = plots.scatter_classes(ds.inputs, ds.labels, ds.class_names, title=title)
    else:
        pick = np.sort(np.random.default_rng(args.seed).choice(len(ds), min(args.count, len(ds)), replace=False))
        captions = [f"{label}: {ds.class_names[label]}" for label in ds.labels[pick]]
        fig = plots.image_grid(ds.inputs[pick], captions, title=title)
    save_figure(fig, out)
    print(f"wrote {printable(str(out))}")
    return 0


def main(args: argparse.Namespace) -> int:
    """Runs ``jaxdl data info`` or ``jaxdl data show``, as ``args.data_command`` says.

    Args:
      args: the parsed command line.

    Returns:
      The command's exit status.
    """
    return {"info": info, "show": show}[args.data_command](args)
