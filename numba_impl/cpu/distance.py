"""Normalisation, formula 1 and Euclidean distances (explicit differences, summed in
feature order) on the CPU."""
import numpy as np
from numba import prange

from .. import _consts
from .jit import parallel_jit, scalar


@parallel_jit
def _normalize_kernel(x, eps, out):
    outer, _, inner = x.shape
    for o in prange(outer):
        for k in range(inner):
            scalar.normalize_vector(x, o, k, eps, out)


@parallel_jit
def _normalize_vjp_kernel(x, g, eps, out):
    outer, _, inner = x.shape
    for o in prange(outer):
        for k in range(inner):
            scalar.normalize_vector_vjp(x, g, o, k, eps, out)


def _three_axes(x, axis):
    """View ``x`` as ``(outer, len(axis), inner)`` so that one kernel serves every axis."""
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return np.ascontiguousarray(x).reshape(outer, x.shape[axis], -1)


def normalize(x, axis):
    out = np.empty(x.shape, dtype=x.dtype)
    _normalize_kernel(_three_axes(x, axis), _consts.of_dtype(x.dtype)[2], _three_axes(out, axis))
    return out


def normalize_vjp(x, grad_out, axis):
    out = np.empty(x.shape, dtype=x.dtype)
    _normalize_vjp_kernel(_three_axes(x, axis), _three_axes(grad_out, axis),
                          _consts.of_dtype(x.dtype)[2], _three_axes(out, axis))
    return out


@parallel_jit
def _stripe_kernel(e, half, out):
    for k in prange(e.size):
        out[k] = scalar.stripe(e[k], half)


@parallel_jit
def _stripe_vjp_kernel(e, g, half, out):
    for k in prange(e.size):
        out[k] = g[k] * scalar.stripe_slope(scalar.stripe(e[k], half), half)


def stripe_dist(euclid):
    out = np.empty(euclid.shape, dtype=euclid.dtype)
    _stripe_kernel(np.ascontiguousarray(euclid).reshape(-1), _consts.of_dtype(euclid.dtype)[0],
                   out.reshape(-1))
    return out


def stripe_dist_vjp(euclid, grad_out):
    out = np.empty(euclid.shape, dtype=euclid.dtype)
    _stripe_vjp_kernel(np.ascontiguousarray(euclid).reshape(-1),
                       np.ascontiguousarray(grad_out).reshape(-1),
                       _consts.of_dtype(euclid.dtype)[0], out.reshape(-1))
    return out


#: Rows of ``y`` per work item of ``_euclid_kernel``: ``d x 256`` features stay in cache
#: while every row of ``x`` meets them.
_COLUMNS = 256


@parallel_jit
def _euclid_kernel(x, y_by_feature, clamp, out):
    """``out[k, i, j] = sqrt(max(sum_f (x[k,i,f] - y[k,j,f])^2, clamp))``, each sum in
    feature order, as ``_scalar.sq_dist`` and the oracle add it.

    ``y_by_feature`` is ``y`` with the features first (``[N, d, n]``), so that the
    innermost loop runs over ``j``, with ``f`` fixed: it vectorises without reordering any
    sum (the same bits as summing each pair on its own, about 8x faster in float32).
    """
    batch, m, dim = x.shape
    n = y_by_feature.shape[2]
    tiles = (n + _COLUMNS - 1) // _COLUMNS
    for item in prange(batch * tiles):
        k, j0 = item // tiles, (item % tiles) * _COLUMNS
        count = min(_COLUMNS, n - j0)
        total = np.empty(count, dtype=x.dtype)
        for i in range(m):
            total[:] = 0
            for f in range(dim):
                at, column = x[k, i, f], y_by_feature[k, f, j0:j0 + count]
                for c in range(count):
                    diff = at - column[c]
                    total[c] += diff * diff
            row = out[k, i, j0:j0 + count]
            for c in range(count):
                row[c] = scalar.euclid(total[c], clamp)


@parallel_jit
def _euclid_coef_kernel(x, y, grad_out, clamp, coef):
    """``d dist / d sq * 2 * grad``, i.e. ``grad / dist`` where the clamp is inactive, else 0."""
    batch, m, _ = x.shape
    n = y.shape[1]
    for r in prange(batch * m):
        k, i = r // m, r % m
        for j in range(n):
            coef[k, i, j] = scalar.euclid_coef(scalar.sq_dist(x, k, i, y, k, j), grad_out[k, i, j],
                                               clamp)


@parallel_jit
def _pull_rows_kernel(x, y, coef, grad_x, grad_y):
    """``grad_x[k,i] = sum_j coef[k,i,j] (x[k,i] - y[k,j])`` and its mirror for ``grad_y``."""
    batch, m, dim = x.shape
    n = y.shape[1]
    for r in prange(batch * m):
        k, i = r // m, r % m
        for j in range(n):
            c = coef[k, i, j]
            for f in range(dim):
                grad_x[k, i, f] += c * (x[k, i, f] - y[k, j, f])
    for r in prange(batch * n):
        k, j = r // n, r % n
        for i in range(m):
            c = coef[k, i, j]
            for f in range(dim):
                grad_y[k, j, f] -= c * (x[k, i, f] - y[k, j, f])


def _pull_rows(x, y, coef):
    grad_x, grad_y = np.zeros_like(x), np.zeros_like(y)
    _pull_rows_kernel(x, y, coef, grad_x, grad_y)
    return grad_x, grad_y


def batch_euclidean_dist(x, y):
    out = np.empty((x.shape[0], x.shape[1], y.shape[1]), dtype=x.dtype)
    _euclid_kernel(np.ascontiguousarray(x), np.ascontiguousarray(y.transpose(0, 2, 1)),
                   _consts.of_dtype(x.dtype)[1], out)
    return out


def batch_euclidean_dist_vjp(x, y, grad_out):
    x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
    coef = np.empty(grad_out.shape, dtype=x.dtype)
    _euclid_coef_kernel(x, y, np.ascontiguousarray(grad_out), _consts.of_dtype(x.dtype)[1], coef)
    return _pull_rows(x, y, coef)


def euclidean_dist(x, y):
    return batch_euclidean_dist(x[None], y[None])[0]


def euclidean_dist_vjp(x, y, grad_out):
    grad_x, grad_y = batch_euclidean_dist_vjp(x[None], y[None], grad_out[None])
    return grad_x[0], grad_y[0]
