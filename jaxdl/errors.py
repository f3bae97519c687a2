"""The one exception type for mistakes a user can fix.

A message names the arguments it is about as ``{out}``, ``{resume}``, ...;
Python callers read them as the library's arguments (``out``,
``resume=True``), the command line as its options (``--out``, ``--resume``).
"""

from __future__ import annotations

import re

# How a Python caller and the command line name the same argument.
PYTHON_NAMES = {
    "out": "out",
    "overwrite": "overwrite=True",
    "resume": "resume=True",
    "data": "data",
    "data_dir": "data_dir",
    "only": "only",
    "coordinator": "coordinator",
    "num_processes": "num_processes",
    "process_id": "process_id",
    "distributed": "distributed",
    "tensorboard": "tensorboard=True",
}
CLI_NAMES = {
    "out": "--out",
    "overwrite": "--overwrite",
    "resume": "--resume",
    "data": "--data",
    "data_dir": "--data-dir",
    "only": "--only",
    "coordinator": "--coordinator",
    "num_processes": "--num-processes",
    "process_id": "--process-id",
    "distributed": "--distributed",
    "tensorboard": "--tensorboard",
}
_ARGUMENT = re.compile(r"\{(" + "|".join(PYTHON_NAMES) + r")\}")


def printable(text: str) -> str:
    r"""``text`` with the bytes of a file name that is not UTF-8 shown escaped (``\xff``).

    Python reads such a name (legal on Linux: ``b"\xff.png"``) as a string holding
    surrogates, which a UTF-8 terminal or file refuses to print.

    Args:
      text: any string, perhaps holding surrogate escapes.

    Returns:
      A string that encodes as UTF-8.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class JaxdlError(Exception):
    """Bad input: the message is one line that names the problem and the fix.

    The command line prints :meth:`cli_message` without a traceback and exits
    with status 2.

    Args:
      message: the line, naming arguments as ``{out}``, ``{resume}``, ...; ``str(error)`` names them
        as Python does (``out``, ``resume=True``).

    Attributes:
      template: the message with its ``{argument}`` placeholders.
    """

    def __init__(self, message: str):
        self.template = printable(message)
        super().__init__(_ARGUMENT.sub(lambda m: PYTHON_NAMES[m.group(1)], self.template))

    def cli_message(self) -> str:
        """The message with arguments named as the command line's options.

        Returns:
          The line, with ``{out}`` as ``--out`` and so on.
        """
        return _ARGUMENT.sub(lambda m: CLI_NAMES[m.group(1)], self.template)


class Stopped(JaxdlError):
    """Training stopped on a signal (SIGTERM, Ctrl-C) after saving where it was.

    The command line prints the one-line message and exits with ``exit_status``
    (128 + the signal's number, as a shell reports a process the signal ended).

    Args:
      message: the line, saying how to resume.
      signal_number: the signal that stopped training.
      run_dir: the run directory to resume.

    Attributes:
      exit_status: 128 + ``signal_number``.
      run_dir: the run directory to resume.
    """

    def __init__(self, message: str, signal_number: int, run_dir: str):
        super().__init__(message)
        self.exit_status = 128 + signal_number
        self.run_dir = run_dir


class Finished(JaxdlError):
    """``resume`` found the run already finished, with nothing to add: no file was touched.

    The command line prints the one-line message and exits 0.
    """
