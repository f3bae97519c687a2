"""Writes jaxdl/experiments/_index.py from the experiments' declarations (``Experiment(...)`` in each module).

    python scripts/build_index.py          # after adding an experiment or changing a description

A test checks that the file is up to date.
"""

from pathlib import Path

from jaxdl import experiments

if __name__ == "__main__":
    path = Path(experiments.__file__).parent / "_index.py"
    path.write_text(experiments.build_index())
    print(f"wrote {path}")
