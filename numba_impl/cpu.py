"""CPU kernels (``@njit``) and the thin host functions that launch them.

Every function here takes arrays that ``_checks`` has already validated, and keeps
their dtype: constants such as 0.5 or the 1e-12 clamp are passed in as scalars of the
data's dtype, because a Python float constant would turn float32 arithmetic into
float64. No fast-math anywhere: formula 2 must match the oracle bit for bit.
``error_model="numpy"`` (IEEE division, no zero check) lets LLVM vectorise loops that
divide; no kernel here divides by zero. ``nogil`` lets ``local_dist`` overlap a kernel
with BLAS. Parallel kernels may be called from several Python threads at once: under a
threading layer that is not thread-safe (``workqueue``) they take turns (``_threads``). ``cache=True`` keys on this file only: after editing ``_dp.py``,
``_scalar.py`` or ``_tanh.py``, delete ``numba_impl/__pycache__/*.nb[ic]``.
"""
import math
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit, prange

from . import _dp, _scalar, _threads
from ._tanh import tanh

NORM_EPS = 1e-12
SQ_DIST_CLAMP = 1e-12
#: Pairs handled together by one call of the dynamic programme (the vectorised loop);
#: in batch_local_dist also the work item of the parallel kernels.
PAIR_BLOCK = 256
#: Memory for the stripe dot products of TILE_QUERIES queries x one gallery slice.
TILE_BYTES = 256 * 2**20
#: Query images per tile of ``local_dist``.
TILE_QUERIES = 64

_jit = njit(cache=True, nogil=True, error_model="numpy")
_parallel = njit(cache=True, parallel=True, nogil=True, error_model="numpy")


def _pjit(func):
    """A parallel kernel, serialised across Python threads where Numba's threading layer
    is not thread-safe (``_threads``)."""
    return _threads.serialised_when_unsafe(_parallel(func))


dp_forward = _jit(_dp.dp_forward)
dp_backward = _jit(_dp.dp_backward)
_clamped = _jit(_scalar.clamped)
_stripe_coef = _jit(_scalar.stripe_coef)
_softplus = _jit(_scalar.softplus)
_mine_anchor = _jit(_scalar.mine_anchor)
_scaled_norm = _jit(_scalar.scaled_norm)


@_jit
def _stripe(sq, half, clamp):
    """``_scalar.stripe`` (formula 1 on a squared distance) with the vectorisable ``tanh``."""
    return tanh(math.sqrt(_clamped(sq, clamp)) * half)


def _make_consts(dtype):
    t = np.dtype(dtype).type
    return t(0.5), t(SQ_DIST_CLAMP), t(NORM_EPS)


#: Built once: converting them on every call cost ~1 us a call in a training step.
_CONSTS = {np.dtype(t): _make_consts(t) for t in (np.float32, np.float64)}


def _consts(dtype):
    """0.5 and the clamps in the data's dtype (see the module docstring)."""
    found = _CONSTS.get(dtype)
    return found if found is not None else _make_consts(dtype)


# ----------------------------------------------------------------------------- formula 2
@_pjit
def _shortest_kernel(d, out):
    m, n, pairs = d.shape
    blocks = (pairs + PAIR_BLOCK - 1) // PAIR_BLOCK
    for b in prange(blocks):
        p0 = b * PAIR_BLOCK
        count = min(PAIR_BLOCK, pairs - p0)
        table = np.empty((2, n, count), dtype=d.dtype)  # by the work: see _local_tile_kernel
        dp_forward(d, m, n, p0, count, table)
        for c in range(count):
            out[p0 + c] = table[(m - 1) % 2, n - 1, c]


@_pjit
def _shortest_vjp_kernel(d, grad_out, half, grad):
    m, n, pairs = d.shape
    blocks = (pairs + PAIR_BLOCK - 1) // PAIR_BLOCK
    for b in prange(blocks):
        p0 = b * PAIR_BLOCK
        count = min(PAIR_BLOCK, pairs - p0)
        table = np.empty((m, n, count), dtype=d.dtype)
        dp_forward(d, m, n, p0, count, table)
        dp_backward(table, grad_out, half, m, n, p0, count, grad)


def shortest_dist(dist_mat):
    """Formula 2 for ``[m, n, *]``: returns an array of shape ``(*)`` (0-d for a matrix)."""
    m, n = dist_mat.shape[:2]
    d = np.ascontiguousarray(dist_mat).reshape(m, n, -1)
    out = np.empty(d.shape[2], dtype=d.dtype)
    _shortest_kernel(d, out)
    return out.reshape(dist_mat.shape[2:])


def shortest_dist_vjp(dist_mat, grad_out):
    m, n = dist_mat.shape[:2]
    d = np.ascontiguousarray(dist_mat).reshape(m, n, -1)
    g = np.ascontiguousarray(grad_out).reshape(-1)
    grad = np.zeros_like(d)
    _shortest_vjp_kernel(d, g, _consts(d.dtype)[0], grad)
    return grad.reshape(dist_mat.shape)


# ------------------------------------------------------------------ normalize, formula 1
@_pjit
def _normalize_kernel(x, eps, out):
    """``(x / s) / (||x / s|| + eps / s)`` per vector; ``s`` from ``_scalar.scaled_norm``."""
    outer, length, inner = x.shape
    for o in prange(outer):
        for k in range(inner):
            scale, norm = _scaled_norm(x, o, k, eps)
            denom = norm + eps / scale
            for a in range(length):
                out[o, a, k] = (x[o, a, k] / scale) / denom


@_pjit
def _normalize_vjp_kernel(x, g, eps, out):
    """The oracle's grouping: ``(g / s - (x / s) * (<x, g> / ||x|| / s))``, on ``x / c``
    and divided by ``c`` where ``normalize`` rescales by ``c``."""
    outer, length, inner = x.shape
    for o in prange(outer):
        for k in range(inner):
            scale, norm = _scaled_norm(x, o, k, eps)
            denom = norm + eps / scale
            along = (x[o, 0, k] / scale) * g[o, 0, k]
            for a in range(1, length):
                along += (x[o, a, k] / scale) * g[o, a, k]
            for a in range(length):
                radial = eps - eps  # the radial term's limit is 0 for a zero vector
                if norm > 0:
                    radial = ((x[o, a, k] / scale) / denom) * (along / norm / denom)
                out[o, a, k] = (g[o, a, k] / denom - radial) / scale


def _three_axes(x, axis):
    """View ``x`` as ``(outer, len(axis), inner)`` so that one kernel serves every axis."""
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return np.ascontiguousarray(x).reshape(outer, x.shape[axis], -1)


def normalize(x, axis):
    out = np.empty(x.shape, dtype=x.dtype)
    _normalize_kernel(_three_axes(x, axis), _consts(x.dtype)[2], _three_axes(out, axis))
    return out


def normalize_vjp(x, grad_out, axis):
    out = np.empty(x.shape, dtype=x.dtype)
    _normalize_vjp_kernel(_three_axes(x, axis), _three_axes(grad_out, axis),
                          _consts(x.dtype)[2], _three_axes(out, axis))
    return out


@_pjit
def _stripe_kernel(e, half, out):
    for k in prange(e.size):
        out[k] = math.tanh(e[k] * half)


@_pjit
def _stripe_vjp_kernel(e, g, half, out):
    for k in prange(e.size):
        t = math.tanh(e[k] * half)
        out[k] = g[k] * ((half + half - t * t) * half)  # (1 - t^2) / 2, in the data's dtype


def stripe_dist(euclid):
    out = np.empty(euclid.shape, dtype=euclid.dtype)
    _stripe_kernel(np.ascontiguousarray(euclid).reshape(-1), _consts(euclid.dtype)[0], out.reshape(-1))
    return out


def stripe_dist_vjp(euclid, grad_out):
    out = np.empty(euclid.shape, dtype=euclid.dtype)
    _stripe_vjp_kernel(np.ascontiguousarray(euclid).reshape(-1),
                       np.ascontiguousarray(grad_out).reshape(-1),
                       _consts(euclid.dtype)[0], out.reshape(-1))
    return out


# ------------------------------------------------------------------ Euclidean distances
@_jit
def _sq_dist(u, v):
    """Squared distance from explicit differences (no cancellation, like the oracle)."""
    diff = u[0] - v[0]
    total = diff * diff
    for f in range(1, u.shape[0]):
        diff = u[f] - v[f]
        total += diff * diff
    return total


@_pjit
def _euclid_kernel(x, y, clamp, out):
    batch, m, _ = x.shape
    n = y.shape[1]
    for r in prange(batch * m):
        k, i = r // m, r % m
        for j in range(n):
            out[k, i, j] = math.sqrt(_clamped(_sq_dist(x[k, i], y[k, j]), clamp))


@_pjit
def _euclid_coef_kernel(x, y, grad_out, clamp, coef):
    """``d dist / d sq * 2 * grad``, i.e. ``grad / dist`` where the clamp is inactive, else 0."""
    batch, m, _ = x.shape
    n = y.shape[1]
    for r in prange(batch * m):
        k, i = r // m, r % m
        for j in range(n):
            sq = _sq_dist(x[k, i], y[k, j])
            coef[k, i, j] = grad_out[k, i, j] / math.sqrt(sq) if sq >= clamp else clamp - clamp


@_pjit
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


def batch_euclidean_dist(x, y):
    out = np.empty((x.shape[0], x.shape[1], y.shape[1]), dtype=x.dtype)
    _euclid_kernel(np.ascontiguousarray(x), np.ascontiguousarray(y), _consts(x.dtype)[1], out)
    return out


def batch_euclidean_dist_vjp(x, y, grad_out):
    x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
    coef = np.empty(grad_out.shape, dtype=x.dtype)
    _euclid_coef_kernel(x, y, np.ascontiguousarray(grad_out), _consts(x.dtype)[1], coef)
    return _pull_rows(x, y, coef)


def _pull_rows(x, y, coef):
    grad_x, grad_y = np.zeros_like(x), np.zeros_like(y)
    _pull_rows_kernel(x, y, coef, grad_x, grad_y)
    return grad_x, grad_y


def euclidean_dist(x, y):
    return batch_euclidean_dist(x[None], y[None])[0]


def euclidean_dist_vjp(x, y, grad_out):
    grad_x, grad_y = batch_euclidean_dist_vjp(x[None], y[None], grad_out[None])
    return grad_x[0], grad_y[0]


# --------------------------------------------------------- local distances of given pairs
@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _sumsq(row):
    """``|row|^2``, reassociated so that it vectorises.

    Only these squared norms (and BLAS's dot products) are summed in any order: they enter
    the norm expansion, whose error model covers any order. Formula 2 never is.
    """
    total = row[0] - row[0]
    for f in range(row.shape[0]):
        total += row[f] * row[f]
    return total


def _expansion_limit(dtype):
    """A bound on squared norms below which ``|x|^2 + |y|^2 - 2 x.y`` cannot overflow:
    ``|2 x.y| <= |x|^2 + |y|^2`` keeps every term and the result below ``4 (|x|^2 + |y|^2)``."""
    return np.dtype(dtype).type(np.finfo(dtype).max / 4)


@_jit
def _redo_overflowed(x, y, sq):
    """Entries of ``sq [m, n]`` (stripes ``x [m, d]``, ``y [n, d]``) that the norm expansion
    left inf or NaN, again from explicit differences, as the oracle computes them.

    A non-finite expansion means an overflow (or ``inf - inf``) in some intermediate; only
    the explicit form tells a finite distance, ``inf`` and NaN apart. Finite entries had
    no overflow and stay.
    """
    for i in range(sq.shape[0]):
        for j in range(sq.shape[1]):
            if not math.isfinite(sq[i, j]):
                sq[i, j] = _sq_dist(x[i], y[j])


@_jit
def _block_stripes(x, y, dots, half, clamp, limit, p0, count, sq, t, d):
    """Pairs ``p0 .. p0+count-1``: squared distances ``sq`` and formula 1 ``t``
    (``[pairs, m, n]`` like ``dots``) by the norm expansion, as ``local_dist``; ``d`` gets
    formula 1 again with the pairs innermost (``[m, n, count]``), the layout of formula 2.
    A pair whose squared norms add up to more than ``limit`` (``_expansion_limit``), inf
    or NaN gets its non-finite entries from explicit differences (``_redo_overflowed``).
    """
    _, m, n = dots.shape
    norms = np.empty(n, dtype=x.dtype)
    for k in range(p0, p0 + count):
        total = limit - limit  # sum of the pair's squared norms: at least the largest two
        for j in range(n):
            norms[j] = _sumsq(y[k, j])
            total += norms[j]
        for i in range(m):
            norm_i = _sumsq(x[k, i])
            total += norm_i
            dot, cell = dots[k, i], sq[k, i]
            for j in range(n):
                cell[j] = norm_i + norms[j] - (dot[j] + dot[j])
        if not total <= limit:
            _redo_overflowed(x[k], y[k], sq[k])
    # formula 1 over the flat block: contiguous, so the compiled tanh vectorises
    flat_sq, flat_t = sq[p0:p0 + count].reshape(-1), t[p0:p0 + count].reshape(-1)
    for e in range(flat_sq.size):
        flat_t[e] = _stripe(flat_sq[e], half, clamp)
    for c in range(count):
        for i in range(m):
            for j in range(n):
                d[i, j, c] = t[p0 + c, i, j]


@_jit
def _coef(sq, t, flow, half, clamp):
    """``_scalar.stripe_coef`` given ``t``, the stripe distance already computed."""
    if not (sq >= clamp) or flow == 0:
        return clamp - clamp
    return flow * ((half + half - t * t) * half) / math.sqrt(sq)


@_pjit
def _batch_local_kernel(x, y, dots, half, clamp, limit, sq, t, table, out):
    """Formula 1 then 2 per block of pairs, from the stripe dot products ``dots``. Keeps
    ``sq``, ``t`` and the whole table of formula 2 (``[blocks, m, n, block]``) for the
    backward pass."""
    pairs, m, n = dots.shape
    blocks, block = table.shape[0], table.shape[3]
    for b in prange(blocks):
        p0 = b * block
        count = min(block, pairs - p0)
        d = np.empty((m, n, count), dtype=x.dtype)
        _block_stripes(x, y, dots, half, clamp, limit, p0, count, sq, t, d)
        dp_forward(d, m, n, 0, count, table[b])
        for c in range(count):
            out[p0 + c] = table[b, m - 1, n - 1, c]


@_pjit
def _batch_local_vjp_kernel(x, y, sq, t, table, grad_out, half, clamp, grad_x, grad_y):
    """Reverse pass of formula 2 from the kept table, then the chain rule on the path cells
    only (the flow is zero elsewhere). Pairs share no gradient. ``grad_x`` and ``grad_y``
    are written whole (each pair's rows are zeroed just before its sums, while in cache).
    Sums run over ``j`` for ``grad_x`` and over ``i`` for ``grad_y``.
    """
    pairs, m, dim = x.shape
    n = y.shape[1]
    blocks, block = table.shape[0], table.shape[3]
    for b in prange(blocks):
        p0 = b * block
        count = min(block, pairs - p0)
        flow = np.zeros((m, n, count), dtype=x.dtype)
        dp_backward(table[b], grad_out[p0:p0 + count], half, m, n, 0, count, flow)
        for c in range(count):
            k = p0 + c
            grad_x[k] = 0
            grad_y[k] = 0
            for i in range(m):
                x_i, gx = x[k, i], grad_x[k, i]
                for j in range(n):
                    if flow[i, j, c] == 0:
                        continue
                    coef = _coef(sq[k, i, j], t[k, i, j], flow[i, j, c], half, clamp)
                    y_j, gy = y[k, j], grad_y[k, j]
                    for f in range(dim):
                        diff = x_i[f] - y_j[f]
                        gx[f] += coef * diff
                        gy[f] -= coef * diff


# The same kernels compiled without threads, for small batches (a training step): there a
# parallel launch gained nothing, and on a busy machine a thread descheduled at the
# closing barrier stalled it for milliseconds.
_batch_local_serial = _jit(_batch_local_kernel.py_func)
_batch_local_vjp_serial = _jit(_batch_local_vjp_kernel.py_func)


def batch_local_forward(x, y):
    """``batch_local_dist`` and what its VJP needs: returns ``(out, saved)``.

    The dot products of each pair's stripes come from one batched BLAS product;
    ``_batch_local_kernel`` then applies formula 1 and 2 in blocks of ``PAIR_BLOCK`` pairs
    (in parallel when there are several blocks). ``saved`` holds the squared distances and
    formula 1 (``[pairs, m, n]``) and the table of formula 2, so that
    ``batch_local_backward`` computes no distance again.
    """
    x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
    pairs, m, _ = x.shape
    n = y.shape[1]
    half, clamp, _ = _consts(x.dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: see _redo_overflowed
        dots = np.matmul(x, y.transpose(0, 2, 1))
    sq, t = np.empty_like(dots), np.empty_like(dots)
    block = min(pairs, PAIR_BLOCK)
    table = np.empty(((pairs + block - 1) // block, m, n, block), dtype=x.dtype)
    out = np.empty(pairs, dtype=x.dtype)
    kernel = _batch_local_serial if table.shape[0] == 1 else _batch_local_kernel
    kernel(x, y, dots, half, clamp, _expansion_limit(x.dtype), sq, t, table, out)
    return out, (sq, t, table)


def _empty_aligned(x, y):
    """Uninitialised arrays shaped like ``x`` and ``y`` (same dtype), in one allocation,
    each starting on a 64-byte boundary.

    The VJP kernel adds to gradient rows with 64-byte vectors, row after row of the same
    pair; from ``np.empty_like`` a gradient often started 16 bytes off, every vector then
    straddled two cache lines and the kernel took ~10 us longer in a training step.
    """
    step = 64 // x.itemsize
    size_x = -(-x.size // step) * step  # y starts on a boundary too
    buf = np.empty(size_x + y.size + step, dtype=x.dtype)
    start = -buf.ctypes.data % 64 // x.itemsize
    return (buf[start:start + x.size].reshape(x.shape),
            buf[start + size_x:start + size_x + y.size].reshape(y.shape))


def batch_local_backward(x, y, saved, grad_out):
    """``(grad_x, grad_y)`` of ``batch_local_dist`` from ``saved`` of ``batch_local_forward``
    (``x`` and ``y`` as given to it)."""
    x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
    sq, t, table = saved
    half, clamp, _ = _consts(x.dtype)
    grad_x, grad_y = _empty_aligned(x, y)  # the kernel writes every entry
    kernel = _batch_local_vjp_serial if table.shape[0] == 1 else _batch_local_vjp_kernel
    kernel(x, y, sq, t, table, np.ascontiguousarray(grad_out), half, clamp, grad_x, grad_y)
    return grad_x, grad_y


def batch_local_dist(x, y):
    return batch_local_forward(x, y)[0]


def batch_local_dist_vjp(x, y, grad_out):
    return batch_local_backward(x, y, batch_local_forward(x, y)[1], grad_out)


# ------------------------------------------------- local distance of every query-gallery pair
@_jit
def _squared_norms(rows):
    out = np.empty(rows.shape[0], dtype=rows.dtype)
    for r in range(rows.shape[0]):
        total = rows[r, 0] * rows[r, 0]
        for f in range(1, rows.shape[1]):
            total += rows[r, f] * rows[r, f]
        out[r] = total
    return out


@_pjit
def _local_tile_kernel(dots, xx, yy, x_rows, y_rows, safe, m, n, half, clamp, out):
    """Formula 1 then 2 for one tile of query x gallery pairs, from their stripe dot products.

    ``dots[q*m + i, j*G + g] = <x[q, i], y[g, j]>`` for the tile's ``Q`` queries and ``G``
    gallery images; ``xx`` and ``yy`` are the squared norms in the same order, and
    ``x_rows``, ``y_rows`` the stripes themselves. Squared distances come from
    ``|x|^2 + |y|^2 - 2 x.y`` (cancellation error of order ``eps * (|x|^2 + |y|^2)``, the
    price of using BLAS); unless ``safe`` (``_expansion_is_safe``), the entries where that
    is inf or NaN come from explicit differences instead, as in the oracle. The work items are (query, block
    of ``PAIR_BLOCK`` gallery images), so that every thread has work even for one query;
    each item's formula-1 loop and dynamic programme run over the block's pairs (vectorised).
    """
    queries, gallery = out.shape
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
                    cell[c] = _stripe(xx[row] + norm[c] - (dot[c] + dot[c]), half, clamp)
                if not safe:
                    for c in range(count):
                        if not math.isfinite(xx[row] + norm[c] - (dot[c] + dot[c])):
                            cell[c] = _stripe(_sq_dist(x_rows[row], y_rows[col + c]), half,
                                              clamp)
        dp_forward(stripes, m, n, 0, count, table)
        for c in range(count):
            out[q, g0 + c] = table[(m - 1) % 2, n - 1, c]


def _expansion_is_safe(xx, yy):
    """True when no ``|x|^2 + |y|^2 - 2 x.y`` over these squared norms can overflow (see
    ``_expansion_limit``); False too when a norm is inf or NaN."""
    top = float(xx.max()) + float(yy.max())  # in float64: no overflow; NaN stays NaN
    return top <= float(_expansion_limit(xx.dtype))


def _tile_sizes(x, y, chunk_size=None):
    """Queries (``chunk_size``, by default ``TILE_QUERIES``) and gallery images per tile.

    The gallery slice is sized so that one tile's dot products fit ``TILE_BYTES``. BLAS may
    round a dot product differently when the shape of the product changes (OpenBLAS does
    for small products), so results can differ in the last bits between chunk sizes,
    within the error model of the norm expansion.
    """
    per_pair = x.shape[1] * y.shape[1] * x.dtype.itemsize
    queries = min(x.shape[0], chunk_size or TILE_QUERIES)
    gallery = max(1, min(y.shape[0], TILE_BYTES // (queries * per_pair)))
    return queries, gallery


class _Progress:
    """Finished pairs on stderr, at most once per percent."""

    def __init__(self, total, enabled):
        self.total, self.enabled, self.shown = total, enabled, -1

    def update(self, done):
        percent = 100 * done // self.total
        if self.enabled and percent > self.shown:
            self.shown = percent
            print(f"local_dist: {done}/{self.total} pairs ({percent}%)", file=sys.stderr,
                  flush=True)


def local_dist(x, y, chunk_size=None, progress=False):
    """Tiles of ``queries x gallery`` images: one BLAS product, then ``_local_tile_kernel``.

    Pipelined: while a worker thread runs the kernel on one tile (``nogil``), the caller
    computes the next tile's dot products into the other of two buffers. Run one after
    the other, the two were 1.35x slower: after each call OpenBLAS's threads spin for a
    while and take a core from the kernel that follows. Tiles are large for the same
    reason (small tiles were 2-3x slower).
    """
    queries, gallery = _tile_sizes(x, y, chunk_size)
    big_m, m, dim = x.shape
    big_n, n, _ = y.shape
    half, clamp, _ = _consts(x.dtype)
    x_rows = np.ascontiguousarray(x).reshape(-1, dim)
    xx = _squared_norms(x_rows)
    buffers = [np.empty(queries * m * gallery * n, dtype=x.dtype) for _ in range(2)]
    out = np.empty((big_m, big_n), dtype=x.dtype)
    shown = _Progress(big_m * big_n, progress)
    pending, done = None, 0
    with ThreadPoolExecutor(1) as worker:
        for g0 in range(0, big_n, gallery):
            g1 = min(big_n, g0 + gallery)
            # gallery stripes ordered (j, g) so that one query stripe meets one gallery
            # stripe of consecutive images in consecutive columns of the dot-product tile
            y_tile = np.ascontiguousarray(y[g0:g1].transpose(1, 0, 2)).reshape(-1, dim)
            yy = _squared_norms(y_tile)
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
                    shown.update(done)
                pending = worker.submit(_local_tile_kernel, dots, xx_tile, yy, x_tile, y_tile,
                                        _expansion_is_safe(xx_tile, yy), m, n, half, clamp,
                                        out[q0:q1, g0:g1])
                done += (q1 - q0) * (g1 - g0)
        pending.result()
    shown.update(done)
    return out


@_pjit
def _cross_coef_kernel(x, y, grad_out, half, clamp, coef):
    """``coef[q, g, i, j]``: the chain-rule weight of pair ``(q, g)`` at stripes ``(i, j)``."""
    queries, m, _ = x.shape
    gallery, n, _ = y.shape
    for q in prange(queries):
        stripes = np.empty((m, n, gallery), dtype=x.dtype)
        for i in range(m):
            for j in range(n):
                for g in range(gallery):
                    stripes[i, j, g] = _stripe(_sq_dist(x[q, i], y[g, j]), half, clamp)
        table = np.empty((m, n, gallery), dtype=x.dtype)
        flow = np.zeros((m, n, gallery), dtype=x.dtype)
        dp_forward(stripes, m, n, 0, gallery, table)
        dp_backward(table, grad_out[q], half, m, n, 0, gallery, flow)
        for g in range(gallery):
            for i in range(m):
                for j in range(n):
                    coef[q, g, i, j] = _stripe_coef(_sq_dist(x[q, i], y[g, j]), flow[i, j, g],
                                                    half, clamp)


@_pjit
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
    half, clamp, _ = _consts(x.dtype)
    grad_x, grad_y = np.zeros_like(x), np.zeros_like(y)
    per_query = y.shape[0] * x.shape[1] * y.shape[1] * x.dtype.itemsize
    queries = max(1, min(x.shape[0], TILE_BYTES // per_query))
    for q0 in range(0, x.shape[0], queries):
        q1 = min(x.shape[0], q0 + queries)
        coef = np.empty((q1 - q0, y.shape[0], x.shape[1], y.shape[1]), dtype=x.dtype)
        _cross_coef_kernel(x[q0:q1], y, grad_out[q0:q1], half, clamp, coef)
        _cross_pull_kernel(x[q0:q1], y, coef, grad_x[q0:q1], grad_y)
    return grad_x, grad_y


# ------------------------------------------------------------------- mining, triplet loss
@_pjit
def _mine_kernel(dist, labels, dist_ap, dist_an, p_inds, n_inds):
    for a in prange(dist.shape[0]):
        best_p, best_n = _mine_anchor(dist, labels, a)
        p_inds[a] = best_p
        n_inds[a] = best_n
        dist_ap[a] = dist[a, best_p]
        dist_an[a] = dist[a, max(best_n, 0)]


def hard_example_mining(dist_mat, labels):
    """Returns ``dist_ap, dist_an, p_inds, n_inds``; ``n_inds`` is -1 for an anchor without negative."""
    count = dist_mat.shape[0]
    dist_ap = np.empty(count, dtype=dist_mat.dtype)
    dist_an = np.empty(count, dtype=dist_mat.dtype)
    p_inds = np.empty(count, dtype=np.int64)
    n_inds = np.empty(count, dtype=np.int64)
    # Labels as int64: one compiled kernel for every integer dtype; the cast is one to one
    # (uint64 wraps), so it keeps equal labels equal and others apart.
    _mine_kernel(np.ascontiguousarray(dist_mat), np.ascontiguousarray(labels, dtype=np.int64),
                 dist_ap, dist_an, p_inds, n_inds)
    return dist_ap, dist_an, p_inds, n_inds


@_pjit
def _triplet_kernel(dist_ap, dist_an, margin, soft, losses, slopes):
    for k in prange(dist_ap.shape[0]):
        z = dist_ap[k] - dist_an[k]
        if soft:
            losses[k] = _softplus(z)
            slopes[k] = math.exp(-_softplus(-z))  # the logistic function, finite for any z
        else:
            v = z + margin
            zero = margin - margin
            losses[k] = zero if v <= 0 else v  # NaN stays NaN, as np.maximum
            slopes[k] = (zero + 1) if v > 0 else zero


def triplet_terms(dist_ap, dist_an, margin):
    """Per-anchor losses and slopes ``d loss_k / d ap_k``; ``margin=None`` is the soft margin."""
    dtype = dist_ap.dtype.type
    losses, slopes = np.empty_like(dist_ap), np.empty_like(dist_ap)
    _triplet_kernel(dist_ap, dist_an, dtype(0 if margin is None else margin), margin is None,
                    losses, slopes)
    return losses, slopes


# ------------------------------------------- array helpers (gpu.py has the same names)
def zeros(shape, dtype):
    return np.zeros(shape, dtype=dtype)


def add(a, b):
    return a + b


def take_rows(x, inds):
    return x[inds]


def add_rows_at(target, inds, rows):
    np.add.at(target, inds, rows)  # add.at: an index may repeat


def mined_grad(shape, dtype, p_inds, n_inds, grad_ap, grad_an):
    """Gradient of the mined loss on the whole distance matrix: only the chosen entries."""
    grad = np.zeros(shape, dtype=dtype)
    anchors = np.arange(shape[0])
    np.add.at(grad, (anchors, p_inds), grad_ap)  # an anchor may be its own positive
    np.add.at(grad, (anchors, n_inds), grad_an)
    return grad


def mean(values):
    return np.mean(values)


def scale(values, factor):
    return values * values.dtype.type(factor)


def negate(values):
    return -values
