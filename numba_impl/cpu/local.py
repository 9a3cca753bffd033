"""The local distance of every query-gallery pair on the CPU (``local_dist``) and its VJP."""
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import prange

from alignedreid_dp import progress as _progress

from .. import _consts
from .._consts import PAIR_BLOCK
from .expansion import expansion_is_safe, squared_norms
from .jit import dp, parallel_jit, scalar


@parallel_jit
def _tile_kernel(dots, xx, yy, x, y, safe, half, clamp, out):
    """Formula 1 then 2 for one tile of query x gallery pairs, from their stripe dot products.

    ``dots[q*m + i, j*G + g] = <x[q, i], y[j, g]>`` for the tile's queries ``x [Q, m, d]``
    and gallery stripes ``y [n, G, d]`` (grouped by stripe); ``xx`` and ``yy`` are the
    squared norms in the order of ``dots``' rows and columns. Squared distances come from
    the norm expansion (``expansion``); unless ``safe`` (``expansion_is_safe``), the
    entries where that is inf or NaN come from explicit differences instead, as in the
    oracle. The work items are (query, block of ``PAIR_BLOCK`` gallery images), so that
    every thread has work even for one query; each item's formula-1 loop and dynamic
    programme run over the block's pairs (vectorised).
    """
    queries, gallery = out.shape
    m, n = x.shape[1], y.shape[0]
    blocks = (gallery + PAIR_BLOCK - 1) // PAIR_BLOCK
    for item in prange(queries * blocks):
        q = item // blocks
        g0 = (item % blocks) * PAIR_BLOCK
        count = min(PAIR_BLOCK, gallery - g0)
        # Sized by the pairs of this item, not by PAIR_BLOCK: with many stripes and few
        # pairs a worst-case buffer was hundreds of MiB, every page of it touched.
        stripes = np.empty((m, n, count), dtype=dots.dtype)
        table = np.empty((2, n, count), dtype=dots.dtype)
        for i in range(m):
            row = q * m + i
            for j in range(n):
                col = j * gallery + g0
                # 1-D views: LLVM vectorises this loop, not its 2-D-indexed form
                dot, norm, cell = dots[row, col:col + count], yy[col:col + count], stripes[i, j]
                for c in range(count):
                    cell[c] = scalar.stripe_of_sq(xx[row] + norm[c] - (dot[c] + dot[c]), half,
                                                  clamp)
                if not safe:
                    for c in range(count):
                        if not math.isfinite(xx[row] + norm[c] - (dot[c] + dot[c])):
                            cell[c] = scalar.stripe_of_sq(
                                scalar.sq_dist(x, q, i, y, j, g0 + c), half, clamp)
        dp.dp_forward(stripes, m, n, 0, count, table)
        for c in range(count):
            out[q, g0 + c] = table[(m - 1) % 2, n - 1, c]


def _tile_sizes(x, y, chunk_size=None):
    """Queries (``chunk_size``, by default ``_consts.TILE_QUERIES``) and gallery images per tile.

    The gallery slice is sized so that one tile's dot products fit ``_consts.TILE_BYTES``. BLAS may
    round a dot product differently when the shape of the product changes (OpenBLAS does
    for small products), so results can differ in the last bits between chunk sizes,
    within the error model of the norm expansion.
    """
    per_pair = x.shape[1] * y.shape[1] * x.dtype.itemsize
    queries = min(x.shape[0], chunk_size or _consts.TILE_QUERIES)
    gallery = max(1, min(y.shape[0], _consts.TILE_BYTES // (queries * per_pair)))
    return queries, gallery


def local_dist(x, y, chunk_size=None, progress=False):
    """Tiles of ``queries x gallery`` images: one BLAS product, then ``_tile_kernel``.

    Pipelined: while a worker thread runs the kernel on one tile (``nogil``), the caller
    computes the next tile's dot products into the other of two buffers. Run one after
    the other, the two were 1.35x slower: after each call OpenBLAS's threads spin for a
    while and take a core from the kernel that follows. Tiles are large for the same
    reason (small tiles were 2-3x slower).
    """
    queries, gallery = _tile_sizes(x, y, chunk_size)
    big_m, m, dim = x.shape
    big_n, n, _ = y.shape
    half, clamp, _ = _consts.of_dtype(x.dtype)
    x_rows = np.ascontiguousarray(x).reshape(-1, dim)
    xx = squared_norms(x_rows)
    buffers = [np.empty(queries * m * gallery * n, dtype=x.dtype) for _ in range(2)]
    out = np.empty((big_m, big_n), dtype=x.dtype)
    pending, pairs = None, 0
    with _progress.report("local_dist", big_m * big_n, progress) as shown, \
            ThreadPoolExecutor(1) as worker:
        for g0 in range(0, big_n, gallery):
            g1 = min(big_n, g0 + gallery)
            # gallery stripes ordered (j, g) so that one query stripe meets one gallery
            # stripe of consecutive images in consecutive columns of the dot-product tile
            y_tile = np.ascontiguousarray(y[g0:g1].transpose(1, 0, 2)).reshape(-1, dim)
            yy = squared_norms(y_tile)
            for q0 in range(0, big_m, queries):
                q1 = min(big_m, q0 + queries)
                rows = (q1 - q0) * m
                buffers.reverse()  # alternate: the kernel may still be reading the other
                dots = buffers[0][:rows * y_tile.shape[0]].reshape(rows, -1)
                x_tile, xx_tile = x_rows[q0 * m:q1 * m], xx[q0 * m:q1 * m]
                with np.errstate(over="ignore", invalid="ignore"):  # handled in the kernel
                    np.matmul(x_tile, y_tile.T, out=dots)
                if pending is not None:
                    pending.result()
                    shown.update(pairs)
                pending = worker.submit(_tile_kernel, dots, xx_tile, yy,
                                        x_tile.reshape(q1 - q0, m, dim),
                                        y_tile.reshape(n, g1 - g0, dim),
                                        expansion_is_safe(xx_tile, yy), half, clamp,
                                        out[q0:q1, g0:g1])
                pairs = (q1 - q0) * (g1 - g0)
        pending.result()
        shown.update(pairs)
    return out


@parallel_jit
def _cross_coef_kernel(x, y, grad_out, half, clamp, coef):
    """``coef[q, g, i, j]``: the chain-rule weight of pair ``(q, g)`` at stripes ``(i, j)``
    (``_scalar.path_coef``) from the flow of formula 2; zero off the path. A pair whose
    value is NaN gets NaN everywhere: the flow avoids its NaN cells, and its images'
    gradients must be NaN (as ``0 * NaN`` makes them in the oracle), not finite."""
    queries, m, _ = x.shape
    gallery, n, _ = y.shape
    for q in prange(queries):
        stripes = np.empty((m, n, gallery), dtype=x.dtype)
        for i in range(m):
            for j in range(n):
                for g in range(gallery):
                    stripes[i, j, g] = scalar.stripe_of_sq(scalar.sq_dist(x, q, i, y, g, j),
                                                                 half, clamp)
        table = np.empty((m, n, gallery), dtype=x.dtype)
        flow = np.zeros((m, n, gallery), dtype=x.dtype)
        dp.dp_forward(stripes, m, n, 0, gallery, table)
        dp.dp_backward(table, grad_out[q], half, m, n, 0, gallery, flow)
        for g in range(gallery):
            nan_value = np.isnan(table[m - 1, n - 1, g])
            for i in range(m):
                for j in range(n):
                    w = flow[i, j, g]
                    coef[q, g, i, j] = clamp - clamp
                    if nan_value:  # NaN gradients for both images, as in the oracle
                        coef[q, g, i, j] = table[m - 1, n - 1, g]
                    elif w != 0:
                        sq = scalar.sq_dist(x, q, i, y, g, j)
                        coef[q, g, i, j] = scalar.path_coef(
                            sq, scalar.stripe_of_sq(sq, half, clamp), w, half, clamp)


@parallel_jit
def _cross_pull_kernel(x, y, coef, grad_x, grad_y):
    queries, m, dim = x.shape
    gallery, n, _ = y.shape
    for q in prange(queries):
        for g in range(gallery):
            for i in range(m):
                for j in range(n):
                    c = coef[q, g, i, j]
                    if c != 0:
                        for f in range(dim):
                            grad_x[q, i, f] += c * (x[q, i, f] - y[g, j, f])
    for g in prange(gallery):
        for q in range(queries):
            for i in range(m):
                for j in range(n):
                    c = coef[q, g, i, j]
                    if c != 0:
                        for f in range(dim):
                            grad_y[g, j, f] -= c * (x[q, i, f] - y[g, j, f])


def local_dist_vjp(x, y, grad_out):
    x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
    grad_out = np.ascontiguousarray(grad_out)
    half, clamp, _ = _consts.of_dtype(x.dtype)
    grad_x, grad_y = np.zeros_like(x), np.zeros_like(y)
    per_query = y.shape[0] * x.shape[1] * y.shape[1] * x.dtype.itemsize
    queries = max(1, min(x.shape[0], _consts.TILE_BYTES // per_query))
    for q0 in range(0, x.shape[0], queries):
        q1 = min(x.shape[0], q0 + queries)
        coef = np.empty((q1 - q0, y.shape[0], x.shape[1], y.shape[1]), dtype=x.dtype)
        _cross_coef_kernel(x[q0:q1], y, grad_out[q0:q1], half, clamp, coef)
        _cross_pull_kernel(x[q0:q1], y, coef, grad_x[q0:q1], grad_y)
    return grad_x, grad_y
