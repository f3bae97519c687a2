"""Builds the documentation site from docs/ into OUT, offline, with warnings as errors.

  python scripts/build_docs.py OUT        # then open OUT/index.html

Needs the ``[docs]`` extra (``pip install -e '.[docs]'``): Sphinx, MyST, the Sphinx Book Theme and a
bundled MathJax, so the site requests nothing from outside itself. A broken cross-reference, a
malformed docstring or a page missing from the table of contents fails the build.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib.util import find_spec
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
NEEDS = ("sphinx", "myst_parser", "sphinx_book_theme")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the HTML site")
    args = parser.parse_args(argv)
    missing = [m for m in NEEDS if not find_spec(m)]
    if missing:
        parser.exit(2, f"{parser.prog}: needs {', '.join(missing)}: pip install -e '.[docs]'\n")
    from sphinx.cmd.build import build_main

    start = time.perf_counter()
    # -E: read every page afresh (warnings are not repeated from a cache); -W: a warning fails the build
    status = build_main(["-E", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(args.out)])
    if status == 0:
        print(f"wrote {args.out / 'index.html'} in {time.perf_counter() - start:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
