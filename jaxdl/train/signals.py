"""Stop requests: SIGTERM (a cluster's preemption) and Ctrl-C, turned into a flag a training loop polls.

Inside :class:`StopRequests`, the first SIGTERM or SIGINT only records itself;
the loop finishes the chunk of steps under way, saves a checkpoint and stops.
A second signal stops at once (KeyboardInterrupt), for a user who will not wait.
Outside the main thread, where Python delivers no signals, nothing is installed.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequests:
    """A context in which SIGTERM and SIGINT set :attr:`signal_number` instead of ending the process.

    Args:
      enabled: install the handlers; False (or a thread other than the main one)
        makes the context a no-op whose :attr:`requested` stays False.

    Attributes:
      enabled: whether the handlers are installed on entry.
      signal_number: the first signal received inside the context, or None.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signal_number: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for: a signal arrived inside the context."""
        return self.signal_number is not None

    @property
    def signal_name(self) -> str:
        """The name of the signal received ("SIGTERM", "SIGINT"), or "" when none was."""
        return signal.Signals(self.signal_number).name if self.signal_number else ""

    def _handle(self, number: int, frame) -> None:
        if self.signal_number is not None:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signal_number = number

    def __enter__(self) -> StopRequests:
        if self.enabled:
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
