"""Executes the tutorial notebooks and writes each as an executed .ipynb and an HTML page.

    python scripts/build_notebooks.py OUT [--only 01_blobs_autodiff_monte_carlo ...]
    JAXDL_QUICK=1 python scripts/build_notebooks.py OUT    # small settings, a minute or two each

The notebooks live in experiments/tutorials/ as Jupytext percent-format .py
files; each is converted, run top to bottom in a fresh Jupyter kernel (full
settings unless JAXDL_QUICK=1), checked (no error, a figure in every cell
that shows one) and written to OUT/NAME.ipynb and OUT/NAME.html, with
OUT/index.html listing them and each one's run time. `jaxdl reproduce
--notebooks OUT` links these pages from its report. The test suite runs the
same `execute` and `missing_figures` at the small settings.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import time
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "experiments" / "tutorials"


def notebooks() -> list[Path]:
    """The tutorial notebooks, in reading order."""
    return sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))


def execute(path: Path, workdir: Path, timeout: int = 3600):
    """The notebook at ``path``, run in a fresh kernel whose working directory is ``workdir``.

    Raises nbclient's ``CellExecutionError`` (naming the cell and the error) on a failure.
    """
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(path)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    return notebook


def missing_figures(notebook) -> list[int]:
    """Indices of the code cells that call ``plt.show()`` but produced no image."""
    missing = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and "plt.show()" in cell.source:
            if not any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])):
                missing.append(index)
    return missing


def write_html(notebook, path: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    path.write_text(body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the executed .ipynb and .html files")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these notebooks (file names without .py)")
    args = parser.parse_args(argv)
    missing = [m for m in ("jupytext", "nbclient", "nbconvert", "nbformat", "ipykernel") if not find_spec(m)]
    if missing:
        parser.exit(2, f"{parser.prog}: needs {', '.join(missing)}: pip install -e '.[notebooks]'\n")
    import nbformat

    chosen = [p for p in notebooks() if not args.only or p.stem in args.only]
    unknown = set(args.only or ()) - {p.stem for p in chosen}
    if unknown:
        parser.error(f"unknown notebook {sorted(unknown)[0]}; known: {', '.join(p.stem for p in notebooks())}")
    args.out.mkdir(parents=True, exist_ok=True)
    quick = os.environ.get("JAXDL_QUICK") == "1"
    rows, failed = [], 0
    for path in chosen:
        start = time.perf_counter()
        try:
            notebook = execute(path, args.out)
        except Exception as e:  # report the notebook, go on with the others
            failed += 1
            last = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines()[-1]  # without the traceback's colours
            print(f"{path.stem}: FAILED: {last}", file=sys.stderr)
            continue
        seconds = time.perf_counter() - start
        missing = missing_figures(notebook)
        nbformat.write(notebook, args.out / f"{path.stem}.ipynb")
        write_html(notebook, args.out / f"{path.stem}.html")
        note = f"; no figure in cells {missing}" if missing else ""
        failed += bool(missing)
        print(f"{path.stem}: {seconds:.1f} s{note} -> {args.out / path.stem}.html")
        rows.append(f'<li><a href="{path.stem}.html">{html.escape(path.stem)}</a> ({seconds:.0f} s)</li>')
    settings = "small settings (JAXDL_QUICK=1)" if quick else "full settings"
    (args.out / "index.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>jaxdl tutorials</title><h1>jaxdl tutorial notebooks</h1>"
        f"<p>Executed at {settings} on {time.strftime('%Y-%m-%d %H:%M')}.</p><ul>{''.join(rows)}</ul>",
        encoding="utf-8",
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
