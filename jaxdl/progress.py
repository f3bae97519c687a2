"""Progress you can see: a line for each long stage (decoding data, compiling), and bars on a terminal or in a
notebook; bars stay off in logs, CI and pipes, and both go quiet under :func:`quiet` (``jaxdl run --quiet``)."""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator
from importlib.util import find_spec

from tqdm import tqdm

_quiet = contextvars.ContextVar("jaxdl_quiet", default=False)


@contextlib.contextmanager
def quiet(on: bool = True) -> Iterator[None]:
    """No stage lines and no bars inside the block (a run's own lines, such as each epoch's, stay).

    Args:
      on: False makes the block as loud as usual (so a flag can be passed straight through).
    """
    token = _quiet.set(on)
    try:
        yield
    finally:
        _quiet.reset(token)


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress_bar(total: int, desc: str, unit: str = "it", delay: float = 0.0) -> tqdm:
    """A tqdm bar on stderr, or a notebook's; disabled when quiet or when stderr is not a terminal.

    Use as a context manager and call ``bar.update(n)`` / ``bar.set_postfix_str``.

    Args:
      total: the number of units the work has.
      desc: what is being done, shown before the bar.
      unit: what one unit is ("image", "step").
      delay: seconds before it first shows (a step that ends sooner shows no bar).

    Returns:
      The ``tqdm`` bar (disabled where it would not be seen).
    """
    notebook = _in_notebook()
    bar = tqdm
    if notebook and find_spec("ipywidgets"):  # a widget; without ipywidgets, text in the cell's output
        from tqdm.notebook import tqdm as bar
    shown = not _quiet.get() and (notebook or sys.stderr.isatty())
    return bar(total=total, desc=desc, unit=unit, disable=not shown, leave=False, dynamic_ncols=True, delay=delay)


def stage(text: str) -> None:
    """One line on stdout saying what a long step is doing (in a log too); none when quiet.

    Args:
      text: the line, e.g. "compiling the train step".
    """
    if not _quiet.get():
        print(text, flush=True)
