"""The norm expansion ``|x|^2 + |y|^2 - 2 x.y`` of the CPU's local distances, and its
overflow fallback (explicit differences where it is inf or NaN).

Squared distances of stripes come from BLAS dot products and squared norms: the
cancellation error is of order ``eps (|x|^2 + |y|^2)``, the price of using BLAS (the
error model of ``reference.error_model``)."""
import math

import numpy as np
from numba import njit

from .._cache import tracked
from .jit import jit, scalar


@tracked
@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def sumsq(row):
    """``|row|^2``, reassociated so that it vectorises.

    Only these squared norms (and BLAS's dot products) are summed in any order: they enter
    the norm expansion, whose error model covers any order. Formula 2 never is.
    """
    total = row[0] - row[0]
    for f in range(row.shape[0]):
        total += row[f] * row[f]
    return total


def expansion_limit(dtype):
    """A bound on squared norms below which ``|x|^2 + |y|^2 - 2 x.y`` cannot overflow:
    ``|2 x.y| <= |x|^2 + |y|^2`` keeps every term and the result below ``4 (|x|^2 + |y|^2)``."""
    return np.dtype(dtype).type(np.finfo(dtype).max / 4)


@jit
def redo_overflowed(x, y, k, sq):
    """Entries of ``sq [m, n]`` (pair ``k`` of stripes ``x [N, m, d]``, ``y [N, n, d]``)
    that the norm expansion left inf or NaN, again from explicit differences, as the
    oracle computes them.

    A non-finite expansion means an overflow (or ``inf - inf``) in some intermediate; only
    the explicit form tells a finite distance, ``inf`` and NaN apart. Finite entries had
    no overflow and stay.
    """
    for i in range(sq.shape[0]):
        for j in range(sq.shape[1]):
            if not math.isfinite(sq[i, j]):
                sq[i, j] = scalar.sq_dist(x, k, i, y, k, j)


@jit
def squared_norms(rows):
    """``|row|^2`` of every row of ``rows [R, d]``, summed in order."""
    out = np.empty(rows.shape[0], dtype=rows.dtype)
    for r in range(rows.shape[0]):
        total = rows[r, 0] * rows[r, 0]
        for f in range(1, rows.shape[1]):
            total += rows[r, f] * rows[r, f]
        out[r] = total
    return out


def expansion_is_safe(xx, yy):
    """True when no ``|x|^2 + |y|^2 - 2 x.y`` over these squared norms can overflow (see
    ``expansion_limit``); False too when a norm is inf or NaN."""
    top = float(xx.max()) + float(yy.max())  # in float64: no overflow; NaN stays NaN
    return top <= float(expansion_limit(xx.dtype))
