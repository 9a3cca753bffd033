"""Diagnostics that say where formula 2 or its gradient went wrong, not only that it did.

- ``formula2``: the module's table of formula 2 beside the oracle's, and the first cell
  (in the order of the recurrence) where they part. A module returns only the last cell
  ``S[m-1, n-1]``, but ``S[i, j]`` is formula 2 on the top-left ``(i+1) x (j+1)`` block,
  so the module's whole table is its ``shortest_dist`` of every such block.
- ``flows``: for the gradient of formula 2 (a unit flow along the optimal path), the
  cells where the module's flow and the oracle's differ.
- ``feature_gradient``: for a local distance's feature gradient, the stripes whose
  gradient differs and the oracle's path cells through them, which carry the difference
  (with the flow at each: 0.5 where a tie splits it).

With ``PICTURES`` set to a folder (``--gate-pictures DIR``), each formula 2 diagnosis
also saves a picture (``reference.plot``): the oracle's path over the matrix, the first
differing cell marked. Every function returns text and never raises: a diagnosis that
fails says so in one line.
"""
import functools
import os

import numpy as np

from .. import path as oracle_path
from ..distance import _euclidean, _stripe

PICTURES = None  # a folder for pictures of formula 2's diagnoses, or None
_LARGEST = 16  # sides up to which tables are printed (the suite's shrunk examples are small)


def _never_raises(diagnosis):
    @functools.wraps(diagnosis)
    def safe(*args, **kwargs):
        try:
            return diagnosis(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - a failed diagnosis must not hide the failure
            return f"(no diagnosis: {type(error).__name__}: {error})"
    return safe


def _num(value):
    """A number as its shortest exact decimal in its own dtype (``0.1``, not ``np.float32(0.1)``)."""
    value = np.asarray(value)[()]
    if isinstance(value, np.floating) and np.isfinite(value):
        text = np.format_float_positional(value, unique=True, trim="-")
        return text if len(text) <= 24 else np.format_float_scientific(value, unique=True, trim="-")
    return str(value)


def _table_text(table):
    with np.printoptions(floatmode="unique", linewidth=120, threshold=_LARGEST ** 2):
        return np.array2string(np.asarray(table), separator=", ")


def _first_difference(got, want):
    """The first cell, in the recurrence's order (anti-diagonals, then rows), where the
    tables differ (NaN equal to NaN), or None."""
    m, n = want.shape
    for k in range(m + n - 1):
        for i in range(max(0, k - n + 1), min(m, k + 1)):
            g, w = got[i, k - i], want[i, k - i]
            if not (g == w or (np.isnan(g) and np.isnan(w))):
                return i, k - i
    return None


@_never_raises
def formula2(shortest_dist, dist_mat):
    """Both tables of formula 2 on ``dist_mat`` (``[m, n]`` or ``[m, n, *]``; for a batch,
    the first matrix whose result differs), ``shortest_dist`` being the module's (a
    function of a NumPy array, as ``Implementation`` calls it)."""
    d = np.asarray(dist_mat)
    if d.ndim > 2:
        flat = d.reshape(d.shape[0], d.shape[1], -1)
        got = np.asarray(shortest_dist(d)).reshape(-1)
        want = oracle_path._table(flat)[-1, -1]
        bad = [k for k in range(flat.shape[2])
               if not (got[k] == want[k] or (np.isnan(got[k]) and np.isnan(want[k])))]
        if not bad:
            return "(every matrix of the batch agrees alone: the batch as a whole differs)"
        k = tuple(int(i) for i in np.unravel_index(bad[0], d.shape[2:]))
        return f"matrix {k} of the batch:\n" + \
            formula2(shortest_dist, np.ascontiguousarray(d[(slice(None), slice(None), *k)]))
    m, n = d.shape
    if max(m, n) > _LARGEST:
        return f"(no tables: {m} x {n} is larger than {_LARGEST} x {_LARGEST})"
    want = oracle_path._table(d)
    got = np.empty_like(want)
    for i in range(m):
        for j in range(n):
            got[i, j] = np.asarray(shortest_dist(np.ascontiguousarray(d[:i + 1, :j + 1])))
    cell = _first_difference(got, want)
    lines = []
    if cell is None:
        lines.append("every S[i, j] agrees on its own block: only the whole call differs")
    else:
        i, j = cell
        lines.append(f"formula 2 parts first at S[{i}, {j}]: module {_num(got[i, j])}, "
                     f"oracle {_num(want[i, j])}, with d[{i}, {j}] = {_num(d[i, j])}")
        for name, (a, b) in (("above", (i - 1, j)), ("left", (i, j - 1))):
            if a >= 0 and b >= 0:
                lines.append(f"  {name}: S[{a}, {b}] = {_num(got[a, b])} (module), "
                             f"{_num(want[a, b])} (oracle)")
        _picture(d, cell)
    lines += ["module's table (S[i, j] = its shortest_dist of d[:i+1, :j+1]):", _table_text(got),
              "oracle's table:", _table_text(want)]
    return "\n".join(lines)


def _picture(d, cell):
    if not PICTURES:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plot import plot_alignment

    figure = plot_alignment(np.clip(d, 0, 1), oracle_path.shortest_path(d)[2])
    i, j = cell
    figure.axes[0].add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                           edgecolor="red", linewidth=3))
    figure.axes[0].set_title(f"oracle's path; formula 2 parts first at S[{i}, {j}] (red)")
    os.makedirs(PICTURES, exist_ok=True)
    count = len([f for f in os.listdir(PICTURES) if f.startswith("formula2-")])
    figure.savefig(os.path.join(PICTURES, f"formula2-{count + 1}.png"), dpi=100)
    plt.close(figure)


@_never_raises
def flows(got, want):
    """Where the module's gradient of formula 2 (a flow along the path) and the oracle's
    differ, for the first matrix of a batch where they do."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape or got.ndim < 2:
        return "(no flows to compare)"
    differ = ~((got == want) | (np.isnan(got) & np.isnan(want)))
    if got.ndim > 2:
        k = np.argwhere(differ.reshape(got.shape[0], got.shape[1], -1).any(axis=(0, 1)))[0, 0]
        pick = (slice(None), slice(None), k)
        got, want = got.reshape(*got.shape[:2], -1)[pick], want.reshape(*want.shape[:2], -1)[pick]
        differ = differ.reshape(*differ.shape[:2], -1)[pick]
        head = f"matrix {k} of the batch (flattened trailing index): "
    else:
        head = ""
    cells = [f"({i}, {j}) module {_num(got[i, j])}, oracle {_num(want[i, j])}"
             for i, j in np.argwhere(differ)[:12]]
    split = " (the oracle splits the flow at a tie)" if np.any((want > 0) & (want < 1)) else ""
    return "\n".join([f"{head}the flows differ at {int(differ.sum())} cell(s){split}:", *cells,
                      "module's flow:", _table_text(got), "oracle's flow:", _table_text(want)])


@_never_raises
def feature_gradient(x, y, got, want, tol, which):
    """For the gradient ``which`` ("grad_x" or "grad_y") of local distances of aligned
    pairs ``x [N, m, d]``, ``y [N, n, d]`` (or one pair, ``[m, d]`` and ``[n, d]``): the
    first pair whose gradient differs, its stripes that differ, and the oracle's path
    cells through them."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if x.ndim == 2:
        x, y, got, want = x[None], y[None], got[None], want[None]
    with np.errstate(invalid="ignore"):
        excess = np.abs(got - want) - np.broadcast_to(tol, got.shape)
    bad = (excess > 0) | (np.isnan(got) != np.isnan(want))
    if not bad.any():
        return "(no stripe differs beyond the tolerance)"
    k = int(np.argwhere(bad.any(axis=(1, 2)))[0, 0])
    stripes = np.flatnonzero(bad[k].any(axis=1))
    flow = oracle_path.shortest_dist_vjp(_stripe(_euclidean(x[k], y[k])), 1.0)
    # a stripe of x is a row of the stripe matrix, a stripe of y a column
    cells = [(i, j) for i, j in np.argwhere(flow > 0)
             if (i if which == "grad_x" else j) in stripes]
    side = "x" if which == "grad_x" else "y"
    carry = ", ".join(f"({i}, {j}) {flow[i, j]:g}" for i, j in cells[:16])
    return "\n".join([
        f"pair {k}: the gradient of stripe(s) {stripes.tolist()} of {side} differs",
        f"the oracle's path cells through them, with their flow: {carry}",
        "oracle's flow of formula 2 for this pair (0.5: a tie splits the path):",
        _table_text(flow)])
