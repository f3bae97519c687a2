"""Builds the documentation site from docs/ and the tutorial notebooks into OUT, offline, warnings as errors.

  python scripts/build_docs.py OUT                           # the notebooks as code, without outputs
  JAXDL_QUICK=1 python scripts/build_notebooks.py NB         # execute them (a few minutes), then
  python scripts/build_docs.py OUT --notebooks NB            # the site with every notebook's outputs

Needs the ``[docs]`` extra (``pip install -e '.[docs]'``): Sphinx, MyST-NB, the Sphinx Book Theme and a
bundled MathJax, so the site requests nothing from outside itself. A broken cross-reference, a
malformed docstring or a page missing from the table of contents fails the build.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS, TUTORIALS = ROOT / "docs", ROOT / "experiments" / "tutorials"
RESULTS = ROOT / "scripts" / "readme_results.json"  # the full run the README's and the Results page's tables show
NEEDS = ("sphinx", "myst_nb", "sphinx_book_theme", "jupytext")


def write_results_table(path: Path) -> None:
    """The saved full run's claims table for the Results page: the block ``scripts/readme_table.py``
    writes into the README, rendered from the same ``scripts/readme_results.json`` by the same code."""
    spec = importlib.util.spec_from_file_location("readme_table", ROOT / "scripts" / "readme_table.py")
    readme_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(readme_table)
    from jaxdl.reproduce import read_results

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(readme_table.render(read_results(RESULTS)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the HTML site")
    parser.add_argument("--notebooks", type=Path, help="executed NAME.ipynb files (scripts/build_notebooks.py OUT)")
    args = parser.parse_args(argv)
    missing = [m for m in NEEDS if not find_spec(m)]
    if missing:
        parser.exit(2, f"{parser.prog}: needs {', '.join(missing)}: pip install -e '.[docs]'\n")
    from sphinx.cmd.build import build_main

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "docs"
        shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build", "_generated"))
        write_results_table(source / "_generated" / "results_table.md")
        (source / "tutorials").mkdir()
        for notebook in sorted(TUTORIALS.glob("[0-9][0-9]_*.py")):
            executed = args.notebooks / f"{notebook.stem}.ipynb" if args.notebooks else None
            if executed is not None and executed.is_file():
                shutil.copy(executed, source / "tutorials" / executed.name)
            else:
                shutil.copy(notebook, source / "tutorials" / notebook.name)
        # -E: read every page afresh (warnings are not repeated from a cache); -W: a warning fails the build
        status = build_main(["-E", "-W", "--keep-going", "-q", "-b", "html", str(source), str(args.out)])
    if status == 0:
        print(f"wrote {args.out / 'index.html'} in {time.perf_counter() - start:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
