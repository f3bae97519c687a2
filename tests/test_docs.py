"""The documentation site: built offline with warnings as errors, every public name in the API reference,
every internal link resolving, and in a real browser: formulas typeset, figures loaded, no request leaving
the site."""

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import built_once

import jaxdl

ROOT = Path(__file__).resolve().parent.parent


EXECUTED = "04_numpy_mlp_backprop"  # the quickest notebook (10 s) stands for the five: executed into the site


@pytest.fixture(scope="module")
def site(load_script):
    build, notebooks = load_script("build_docs"), load_script("build_notebooks")

    def make(folder):
        import nbformat

        os.environ["JAXDL_QUICK"] = "1"  # inherited by the notebook's kernel
        try:
            executed = notebooks.execute(ROOT / "experiments" / "tutorials" / f"{EXECUTED}.py", folder, timeout=600)
        finally:
            del os.environ["JAXDL_QUICK"]
        nbformat.write(executed, folder / f"{EXECUTED}.ipynb")
        assert build.main([str(folder / "html"), "--notebooks", str(folder)]) == 0

    return built_once("docs", make) / "html"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []  # (tag, attribute, value)

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append((tag, name, value))


def _links(page: Path) -> list[tuple[str, str, str]]:
    parser = _Links()
    parser.feed(page.read_text())
    return parser.links


@pytest.mark.slow  # builds the site (a notebook executed, Sphinx): about 17 s, once per run
def test_every_internal_link_resolves_and_nothing_is_fetched_from_outside(site):
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.parts)  # the theme's templates aside
    names = {p.relative_to(site).as_posix() for p in pages}
    assert {"index.html", "concepts.html", "api.html", "tutorials.html", f"tutorials/{EXECUTED}.html"} <= names
    assert len([n for n in names if n.startswith("tutorials/0")]) == 5
    for page in pages:
        for tag, _, value in _links(page):
            url = urlparse(value)
            if url.scheme in ("http", "https", "mailto"):
                assert tag == "a", f"{page.name}: a <{tag}> loads {value} from outside the site"
                continue
            if not url.path:  # #anchor on the same page
                continue
            target = (page.parent / unquote(url.path)).resolve()
            assert target.exists(), f"{page.relative_to(site)} links to {value}, which is not in the site"


@pytest.mark.slow  # builds the site (a notebook executed, Sphinx): about 17 s, once per run
def test_every_public_name_is_in_the_api_reference(site):
    api = (site / "api.html").read_text()
    missing = [name for name in jaxdl.__all__ if f'id="jaxdl.{name}"' not in api]
    assert not missing, f"not documented in the API reference: {missing}"
    assert 'id="jaxdl.train.fit.Hook"' in api


def test_build_script_without_the_docs_extra_says_which_in_one_line(load_script, tmp_path, capsys, monkeypatch):
    build = load_script("build_docs")
    monkeypatch.setattr(build, "find_spec", lambda name: None if name == "myst_nb" else object())
    with pytest.raises(SystemExit) as exit_info:
        build.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "build_docs.py: needs myst_nb: pip install -e '.[docs]'\n"


@pytest.mark.slow  # builds the site (a notebook executed, Sphinx): about 17 s, once per run
def test_the_site_in_a_real_browser(site):
    """Formulas typeset by the bundled MathJax, every image decoded, no console error, no request outside."""
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser_path is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    requests, messages, seen = [], [], {}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            pages = ("index.html", f"tutorials/{EXECUTED}.html", "concepts.html", "api.html", "guides/own-images.html")
            for name in pages:
                page.goto((site / name).as_uri())
                page.wait_for_load_state("load")
                if name in ("concepts.html", f"tutorials/{EXECUTED}.html"):
                    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise")
                    page.evaluate("MathJax.startup.promise")
                seen[name] = page.evaluate(
                    "[document.querySelectorAll('mjx-container').length, document.body.innerText,"
                    " Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)]"
                )
        finally:
            browser.close()
    formulas, text, _ = seen["concepts.html"]
    assert formulas >= 10, formulas
    assert "$$" not in text and "\\(" not in text and "\\frac" not in text  # typeset, not raw TeX
    for name, (_, _, images) in seen.items():
        assert all(images), f"{name}: an image did not load"
    formulas, text, images = seen[f"tutorials/{EXECUTED}.html"]
    assert formulas >= 5 and "\\frac" not in text and len(images) >= 2  # its maths and its figures
    assert "test accuracy" in text  # an output of the executed notebook
    outside = [u for u in requests if not u.startswith(("file://", "data:", "blob:"))]
    assert not outside, f"requests that leave the site: {outside}"
    assert not [m for m in messages if m.startswith(("error", "pageerror"))], messages
    assert re.search(r"Forward versus reverse mode", seen["concepts.html"][1])


@pytest.mark.slow  # builds the site (a notebook executed, Sphinx): about 17 s, once per run
def test_the_results_page_shows_the_saved_runs_table(site):
    from html import escape

    from jaxdl.reproduce import read_results

    page = (site / "results.html").read_text()
    rows = read_results(ROOT / "scripts" / "readme_results.json")["rows"]
    assert page.count("<tr") == len(rows) + 1  # the header and one row per claim, as in the README
    missing = [row["jaxdl"] for row in rows if escape(row["jaxdl"], quote=False) not in page]
    assert not missing, f"figures of the saved run not on the Results page: {missing}"
