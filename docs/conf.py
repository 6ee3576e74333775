"""Sphinx configuration: the API reference is generated from the docstrings."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from graphode import __version__  # noqa: E402

project = "graphode"
author = "graphode maintainers"
release = version = __version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
# PyG and torch types in signatures are not cross-referenced (no intersphinx offline).
nitpicky = False
napoleon_use_ivar = True
