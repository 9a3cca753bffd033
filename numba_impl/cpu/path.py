"""Formula 2 on the CPU: ``shortest_dist`` and its VJP, in blocks of ``PAIR_BLOCK`` pairs."""
import numpy as np
from numba import prange

from .._consts import PAIR_BLOCK
from .jit import _consts, _pjit, dp_backward, dp_forward


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
