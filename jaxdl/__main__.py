"""``python -m jaxdl ...``: the ``jaxdl`` command, for an environment whose scripts are not on the PATH."""

import sys

from jaxdl.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m jaxdl"))
