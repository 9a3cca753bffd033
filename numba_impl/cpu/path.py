"""Formula 2 on the CPU: ``shortest_dist`` and its VJP, in blocks of ``PAIR_BLOCK`` pairs."""
import numpy as np
from numba import prange

from .. import _consts
from .._consts import PAIR_BLOCK
from .jit import dp, parallel_jit


@parallel_jit
def _shortest_kernel(d, out):
    m, n, pairs = d.shape
    blocks = (pairs + PAIR_BLOCK - 1) // PAIR_BLOCK
    for b in prange(blocks):
        p0 = b * PAIR_BLOCK
        count = min(PAIR_BLOCK, pairs - p0)
        table = np.empty((2, n, count), dtype=d.dtype)  # by the work: see local._tile_kernel
        dp.dp_forward(d, m, n, p0, count, table)
        for c in range(count):
            out[p0 + c] = table[(m - 1) % 2, n - 1, c]


@parallel_jit
def _shortest_vjp_kernel(d, grad_out, half, grad):
    m, n, pairs = d.shape
    blocks = (pairs + PAIR_BLOCK - 1) // PAIR_BLOCK
    for b in prange(blocks):
        p0 = b * PAIR_BLOCK
        count = min(PAIR_BLOCK, pairs - p0)
        table = np.empty((m, n, count), dtype=d.dtype)
        dp.dp_forward(d, m, n, p0, count, table)
        dp.dp_backward(table, grad_out, half, m, n, p0, count, grad)


def shortest_dist(dist_mat):
    """Formula 2 for ``[m, n, *]``: an array of shape ``(*)``, a NumPy scalar for a matrix."""
    m, n = dist_mat.shape[:2]
    d = np.ascontiguousarray(dist_mat).reshape(m, n, -1)
    out = np.empty(d.shape[2], dtype=d.dtype)
    _shortest_kernel(d, out)
    out = out.reshape(dist_mat.shape[2:])
    return out[()] if out.ndim == 0 else out


def shortest_dist_vjp(dist_mat, grad_out):
    m, n = dist_mat.shape[:2]
    d = np.ascontiguousarray(dist_mat).reshape(m, n, -1)
    g = np.ascontiguousarray(grad_out).reshape(-1)
    grad = np.zeros_like(d)
    _shortest_vjp_kernel(d, g, _consts.of_dtype(d.dtype)[0], grad)
    return grad.reshape(dist_mat.shape)
