"""The package's shape: no import cycle among jaxdl's modules, no import-time side effects, and the README's
Python example runs."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jaxdl"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """jaxdl module -> the jaxdl modules it imports anywhere in its source (functions included)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                # `from jaxdl import data` names a module; `from jaxdl.data import load` a package's attribute
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_among_jaxdl_modules():
    graph = import_graph()
    assert "jaxdl.runner" in graph["jaxdl.cli"] and "jaxdl.runner" in graph["jaxdl.reproduce"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"<!-- example:begin -->\n```python\n(.*?)```\n<!-- example:end -->", readme, re.S)
    assert len(blocks) == 1, "README.md has one marked Python example"
    assert len(blocks[0].strip().splitlines()) <= 20
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md example", "exec"), namespace)
    out = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy ([0-9.]+)%", out).group(1))
    assert accuracy > 85, out  # an MLP on the 8x8 digits
    assert namespace["result"].epochs_run == namespace["result"].history[-1]["epoch"]


@pytest.mark.parametrize("name", ["normalise", "montecarlo", "regularisation"])
def test_code_names_use_one_spelling(name):
    sources = [p for p in PACKAGE.rglob("*.py") if re.search(rf"\b{name}\w*\(|\bimport {name}\b|\.{name}\b",
                                                               p.read_text())]  # fmt: skip
    assert not sources, f"{name} in {sources}"


_PROCESS_STATE = """
import logging, sys, warnings
def state():
    # every logger's level, filters and handlers; a logger created later with none of them is the default
    default = (logging.NOTSET, [], [])
    loggers = {name: (logger.level, list(logger.filters), list(logger.handlers))
               for name, logger in logging.root.manager.loggerDict.items() if isinstance(logger, logging.Logger)}
    loggers = {name: value for name, value in loggers.items() if value != default}
    root = (logging.root.level, list(logging.root.filters), list(logging.root.handlers))
    return sys.unraisablehook, root, loggers, list(warnings.filters)
"""


def test_importing_jaxdl_changes_no_hook_logger_or_warning_filter():
    # Third-party libraries configure themselves when imported; what jaxdl's own modules add is checked. A
    # failed checkpoint write installs its hooks when it happens (the next test).
    script = (
        _PROCESS_STATE
        + """
import importlib, pkgutil
import jax, flax, optax, orbax.checkpoint, matplotlib, PIL.Image, tensorflow_datasets  # what jaxdl imports
before = state()
import jaxdl
names = [m.name for m in pkgutil.walk_packages(jaxdl.__path__, "jaxdl.")]
for name in names:
    importlib.import_module(name)
after = state()
names_of = ("sys.unraisablehook", "the root logger", "loggers", "warnings filters")
print(len(names), [f"{what}: {b} -> {a}" for what, b, a in zip(names_of, before, after) if b != a])
"""
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    count, changed = out.split(" ", 1)
    assert int(count) > 40 and changed.strip() == "[]", out


def test_a_failed_checkpoint_write_quiets_its_echoes_and_a_successful_one_leaves_nothing():
    script = (
        _PROCESS_STATE
        + """
import contextlib
from jaxdl.train.checkpoint import _echoes_of_a_failure_quiet as around_a_write
before = state()
with around_a_write():
    during = state()
succeeded = state()
for _ in range(2):
    with contextlib.suppress(OSError), around_a_write():
        raise OSError("disk full")
    failed = state()
filters = lambda s: len(s[2].get("asyncio", (0, [], []))[1])
print(during[0] is not before[0], filters(during) - filters(before), succeeded == before,
      failed[0] is not before[0], filters(failed) - filters(before))
"""
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    # installed while writing, removed after a success, kept (once, after two failures) after a failure
    assert out.split() == ["True", "1", "True", "True", "1"], out


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("torch_*.py")))
def test_a_pytorch_script_without_pytorch_says_so_in_one_line(script):
    from importlib.util import find_spec

    if find_spec("torch") is not None:
        pytest.skip("PyTorch is installed here: the script would run")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / script), str(ROOT / "runs" / "unused")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == f"{script}: needs PyTorch; run it with a Python that has it (jaxdl's environment has none)\n"


def test_the_readme_is_short_and_every_link_in_it_and_the_docs_resolves():
    assert len((ROOT / "README.md").read_text().splitlines()) < 250
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert len(pages) > 10
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "#")):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
