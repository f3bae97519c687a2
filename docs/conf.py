"""Sphinx configuration: the Markdown pages (MyST), the API reference from docstrings, MathJax bundled."""

project = "jaxdl"
author = "the jaxdl authors"
copyright = "2026, the jaxdl authors"

extensions = [
    "myst_nb",  # MyST Markdown, and the tutorial notebooks as pages (with their outputs when executed)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # Google-style Args/Returns/Raises
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax copied into the site: formulas render with no network
]
# The tutorials are Jupytext percent-format .py files (scripts/build_docs.py copies them in, or the
# executed .ipynb that scripts/build_notebooks.py wrote); their outputs are shown as saved, never re-run here.
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links resolve
exclude_patterns = ["_build", "conf.py", "_generated"]  # _generated: fragments that pages include
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_typehints = "description"
autodoc_mock_imports = []
napoleon_google_docstring = True
napoleon_use_ivar = True  # a dataclass's Attributes: section, not a second entry per field
html_theme = "sphinx_book_theme"
html_title = "jaxdl"
html_context = {"default_mode": "light"}  # the theme reads the mode from the page, not from a stored choice
html_theme_options = {"repository_url": "", "use_download_button": False}
suppress_warnings = ["myst.xref_missing"]  # links to files outside docs/ (the README, LICENSE) stay plain
