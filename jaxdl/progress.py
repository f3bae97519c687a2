"""A progress bar on a terminal, silence elsewhere (logs, CI, pipes)."""

from __future__ import annotations

from tqdm import tqdm


def progress_bar(total: int, desc: str, unit: str = "it") -> tqdm:
    """A tqdm bar on stderr that disables itself when stderr is not a terminal.

    Use as a context manager and call ``bar.update(n)`` / ``bar.set_postfix_str``.
    """
    # disable=None is tqdm's "off unless the stream is a TTY".
    return tqdm(total=total, desc=desc, unit=unit, disable=None, leave=False, dynamic_ncols=True)
