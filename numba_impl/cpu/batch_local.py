"""The local distance of aligned pairs on the CPU (``batch_local_dist``), forward and
backward, keeping what the backward pass needs."""
import numpy as np
from numba import prange

from .. import _consts
from .expansion import expansion_limit, redo_overflowed, sumsq
from .jit import dp, jit, parallel_jit, scalar


@jit
def _block_stripes(x, y, dots, half, clamp, limit, p0, count, sq, t, d):
    """Pairs ``p0 .. p0+count-1``: squared distances ``sq`` and formula 1 ``t``
    (``[pairs, m, n]`` like ``dots``) by the norm expansion, as ``local_dist``; ``d`` gets
    formula 1 again with the pairs innermost (``[m, n, count]``), the layout of formula 2.
    A pair whose squared norms add up to more than ``limit`` (``expansion.expansion_limit``), inf
    or NaN gets its non-finite entries from explicit differences (``expansion.redo_overflowed``).
    """
    _, m, n = dots.shape
    norms = np.empty(n, dtype=x.dtype)
    for k in range(p0, p0 + count):
        total = limit - limit  # sum of the pair's squared norms: at least the largest two
        for j in range(n):
            norms[j] = sumsq(y[k, j])
            total += norms[j]
        for i in range(m):
            norm_i = sumsq(x[k, i])
            total += norm_i
            dot, cell = dots[k, i], sq[k, i]
            for j in range(n):
                cell[j] = norm_i + norms[j] - (dot[j] + dot[j])
        if not total <= limit:
            redo_overflowed(x, y, k, sq[k])
    # formula 1 over the flat block: contiguous, so the compiled tanh vectorises
    flat_sq, flat_t = sq[p0:p0 + count].reshape(-1), t[p0:p0 + count].reshape(-1)
    for e in range(flat_sq.size):
        flat_t[e] = scalar.stripe_of_sq(flat_sq[e], half, clamp)
    for c in range(count):
        for i in range(m):
            for j in range(n):
                d[i, j, c] = t[p0 + c, i, j]


@parallel_jit
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
        dp.dp_forward(d, m, n, 0, count, table[b])
        for c in range(count):
            out[p0 + c] = table[b, m - 1, n - 1, c]


@parallel_jit
def _batch_local_vjp_kernel(x, y, sq, t, table, grad_out, half, clamp, grad_x, grad_y):
    """Reverse pass of formula 2 from the kept table, then the chain rule on the path cells
    only (the flow is zero elsewhere); a pair whose value is NaN gets NaN gradients whole.
    Pairs share no gradient. ``grad_x`` and ``grad_y`` are written whole (each pair's rows
    are zeroed just before its sums, while in cache).
    Sums run over ``j`` for ``grad_x`` and over ``i`` for ``grad_y``.
    """
    pairs, m, dim = x.shape
    n = y.shape[1]
    blocks, block = table.shape[0], table.shape[3]
    for b in prange(blocks):
        p0 = b * block
        count = min(block, pairs - p0)
        flow = np.zeros((m, n, count), dtype=x.dtype)
        dp.dp_backward(table[b], grad_out[p0:p0 + count], half, m, n, 0, count, flow)
        for c in range(count):
            k = p0 + c
            grad_x[k] = 0
            grad_y[k] = 0
            if np.isnan(table[b, m - 1, n - 1, c]):
                # A NaN value: the flow avoids its NaN cells, so the sums below would be
                # finite; its images get NaN gradients, as 0 * NaN gives in the oracle.
                grad_x[k] = np.nan
                grad_y[k] = np.nan
                continue
            for i in range(m):
                x_i, gx = x[k, i], grad_x[k, i]
                for j in range(n):
                    if flow[i, j, c] == 0:
                        continue
                    coef = scalar.path_coef(sq[k, i, j], t[k, i, j], flow[i, j, c], half, clamp)
                    y_j, gy = y[k, j], grad_y[k, j]
                    for f in range(dim):
                        diff = x_i[f] - y_j[f]
                        gx[f] += coef * diff
                        gy[f] -= coef * diff


# The same kernels compiled without threads, for small batches (a training step): there a
# parallel launch gained nothing, and on a busy machine a thread descheduled at the
# closing barrier stalled it for milliseconds.
_batch_local_serial = jit(_batch_local_kernel.py_func)
_batch_local_vjp_serial = jit(_batch_local_vjp_kernel.py_func)


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
    half, clamp, _ = _consts.of_dtype(x.dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: see redo_overflowed
        dots = np.matmul(x, y.transpose(0, 2, 1))
    sq, t = np.empty_like(dots), np.empty_like(dots)
    block = min(pairs, _consts.PAIR_BLOCK)
    table = np.empty(((pairs + block - 1) // block, m, n, block), dtype=x.dtype)
    out = np.empty(pairs, dtype=x.dtype)
    kernel = _batch_local_serial if table.shape[0] == 1 else _batch_local_kernel
    kernel(x, y, dots, half, clamp, expansion_limit(x.dtype), sq, t, table, out)
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
    half, clamp, _ = _consts.of_dtype(x.dtype)
    grad_x, grad_y = _empty_aligned(x, y)  # the kernel writes every entry
    kernel = _batch_local_vjp_serial if table.shape[0] == 1 else _batch_local_vjp_kernel
    kernel(x, y, sq, t, table, np.ascontiguousarray(grad_out), half, clamp, grad_x, grad_y)
    return grad_x, grad_y


def batch_local_dist(x, y):
    return batch_local_forward(x, y)[0]


def batch_local_dist_vjp(x, y, grad_out):
    return batch_local_backward(x, y, batch_local_forward(x, y)[1], grad_out)
