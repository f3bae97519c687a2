"""The tutorial notebooks (experiments/tutorials/*.py) cannot rot: each runs top to bottom at its small
setting (JAXDL_QUICK=1) in a fresh Jupyter kernel, with no error and a figure in every cell that shows one."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import SHARED_ENV, assert_figure

from jaxdl.data.catalog import CIFAR10_CLASSES

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "datasets"
# Whether every cell runs and draws does not depend on XLA's machine code: the kernels compile at -O0
# (tests/conftest.py; they inherit the environment), as the experiments' tests do.
pytestmark = pytest.mark.xla_o0


@pytest.fixture(scope="module")
def build(load_script):
    return load_script("build_notebooks")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, image_folder):
    """The real MNIST and CIFAR-10 copies when they sit beside the checkout (as in CI); otherwise small
    synthetic folders of the same layout, so that a fresh clone still runs every cell."""
    if (SHARED_DATA / "cifar10-jpg.tar.gz").exists() and (SHARED_DATA / "mnist-png.tar.gz").exists():
        return SHARED_DATA
    root = tmp_path_factory.mktemp("notebook-data")
    image_folder(root / "cifar10", CIFAR10_CLASSES, 32, "RGB", {"train": 12, "test": 4})
    image_folder(root / "mnist", [str(d) for d in range(10)], 28, "L", {"train": 40, "test": 10})
    return root


@pytest.fixture(scope="module")
def cache_dir():
    # decoded data shared by the notebooks, in every xdist worker: the first to need a data set decodes
    # it, the others wait for its cache entry (jaxdl.data.cache.one_writer)
    return Path(os.environ[SHARED_ENV]) / "notebook-cache"


def test_there_are_six_notebooks_in_reading_order(build):
    # the five tutorials, then the bridge from their Linen networks to Flax NNX
    assert [p.name[:3] for p in build.notebooks()] == ["01_", "02_", "03_", "04_", "05_", "06_"]


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.stem for p in sorted((ROOT / "experiments" / "tutorials").glob("0*.py"))])
def test_notebook_runs_at_its_small_setting(name, build, data_dir, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDL_QUICK", "1")
    monkeypatch.setenv("JAXDL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("JAXDL_CACHE_DIR", str(cache_dir))
    notebook = build.execute(ROOT / "experiments" / "tutorials" / f"{name}.py", tmp_path, timeout=900)
    assert build.missing_figures(notebook) == []
    figures = sum("image/png" in out.get("data", {}) for cell in notebook.cells for out in cell.get("outputs", []))
    assert figures >= 1
    if name.startswith("04_"):  # the build script's page for one notebook: the figures are in it
        build.write_html(notebook, tmp_path / "page.html")
        page = (tmp_path / "page.html").read_text()
        assert page.count("data:image/png;base64") >= figures


def test_missing_figures_names_a_cell_that_showed_nothing(build):
    notebook = nbformat.v4.new_notebook()
    shown = nbformat.v4.new_code_cell("plt.show()")
    shown.outputs = [nbformat.v4.new_output("display_data", {"image/png": "iVBORw0KGgo="})]
    empty = nbformat.v4.new_code_cell("plt.plot([1]); plt.show()")
    notebook.cells = [nbformat.v4.new_markdown_cell("text"), shown, empty]
    assert build.missing_figures(notebook) == [2]


def test_build_script_refuses_an_unknown_notebook(build, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build.main([str(tmp_path), "--only", "06_nope"])
    assert exit_info.value.code == 2
    assert "unknown notebook 06_nope" in capsys.readouterr().err


@pytest.mark.slow
def test_a_notebook_run_as_a_script_saves_its_figures_beside_itself(tmp_path):
    script = tmp_path / "07_example.py"
    script.write_text(
        "import matplotlib.pyplot as plt\n"
        "from jaxdl import plots\n"
        'plots.save_shown_figures(globals().get("__file__"))\n'
        "plt.plot([1, 2, 3]); plt.show()\n"
        "plt.figure(); plt.bar([1, 2], [3, 1]); plt.show()\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, check=True)
    folder = tmp_path / "07_example_figures"
    assert done.stdout == f"figure saved to {folder / '01.png'}\nfigure saved to {folder / '02.png'}\n"
    for name in ("01.png", "02.png"):
        assert_figure(folder / name, (640, 480))
    # in a kernel there is no __file__: plt.show is left alone
    kernel = subprocess.run([sys.executable, "-c", "import matplotlib.pyplot as plt; show = plt.show\n"
                             "from jaxdl import plots; plots.save_shown_figures(None); print(plt.show is show)"],
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert kernel.stdout == "True\n"


def test_every_notebook_saves_its_figures_when_run_as_a_script():
    for path in sorted((ROOT / "experiments" / "tutorials").glob("0*.py")):
        assert 'plots.save_shown_figures(globals().get("__file__"))' in path.read_text(), path.name


def test_build_script_without_the_notebooks_extra_says_which_in_one_line(build, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(build, "find_spec", lambda name: None if name in ("jupytext", "nbclient") else object())
    with pytest.raises(SystemExit) as exit_info:
        build.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "build_notebooks.py: needs jupytext, nbclient: pip install -e '.[notebooks]'\n"
