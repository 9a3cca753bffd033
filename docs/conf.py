"""Sphinx configuration for the alignedreid-dp documentation.

Build the pages:     python -m sphinx -W --keep-going -b html docs docs/_build/html
Run every example:   python -m sphinx -W -b doctest docs docs/_build/doctest
"""
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
# The packages are imported from the working tree, so the pages always describe the
# code next to them, not an older installed copy.
sys.path.insert(0, str(DOCS.parent))
# Local extensions: the figure generator, the gate's verdict, the docstring shape fix.
sys.path.insert(0, str(DOCS / "_ext"))

project = "alignedreid-dp"
author = "alignedreid-dp contributors"
copyright = "alignedreid-dp contributors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "alignment_figures",
    "gate_verdict",
    "shape_stars",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
# benchmarks.md is a fragment pulled into choosing.md with {include}, not a page.
exclude_patterns = ["_build", "benchmarks.md", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# numpydoc-style docstrings, read by napoleon.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
autodoc_member_order = "bysource"
autodoc_typehints = "none"

# Every group of examples (each page, each docstring) starts with NumPy's default print
# options, so a page that sets its own cannot change how the next one prints. Pages still
# show their imports in their first block, so that a reader can copy it.
doctest_global_setup = """
import numpy as np
np.set_printoptions(precision=8, floatmode="maxprec", suppress=False, linewidth=75,
                    threshold=1000, edgeitems=3, sign="-", formatter=None, legacy=False)
"""

html_theme = "alabaster"
html_title = "alignedreid-dp"
html_static_path = []
