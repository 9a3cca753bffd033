"""Let docstrings write batch shapes as ``(m, n, *)`` without breaking reST.

The contract writes "any number of trailing axes" as ``*``, as in ``shape (m, n, *)``
(or ``(m, n, *batch)``).
In reStructuredText a lone ``*`` opens emphasis, so Sphinx would warn about every such
docstring. This hook escapes a ``*`` that stands for a shape entry (right after ``(`` or
a space, and followed by an optional name and ``)`` or ``,``), outside inline literals, before the docstring is
parsed. The docstrings themselves stay in the plain numpydoc form.
"""
import re

_SHAPE_STAR = re.compile(r"(?<=[(\s])\*(?=\w*[),])")


def _escape_line(line):
    # Odd-numbered pieces are inside ``inline literals``: leave them alone.
    pieces = line.split("``")
    for k in range(0, len(pieces), 2):
        pieces[k] = _SHAPE_STAR.sub(r"\\*", pieces[k])
    return "``".join(pieces)


def escape_shape_stars(app, what, name, obj, options, lines):
    lines[:] = [_escape_line(line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", escape_shape_stars)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
