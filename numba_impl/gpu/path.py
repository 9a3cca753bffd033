"""Formula 2 on the GPU: one thread per pair on ``[B, m, n, P]`` arrays."""
from numba import cuda

from .. import _consts
from . import context as _gpu_context
from .arrays import zeros
from .context import empty
from .launch import dp, kernel, launch


@kernel("F4", "F4", "i", "i", "F2")
def shortest_kernel(d, table, q0, g0, out):
    """Formula 2 of pair ``(b, p)`` of ``d [B, m, n, P]`` into ``out[q0 + b, g0 + p]``.

    ``table`` is ``[B, R, n, P]`` with ``R = 2`` (rolling rows) or ``d`` itself (in place).
    """
    k = cuda.grid(1)
    if k < d.shape[0] * d.shape[3]:
        b, p = k // d.shape[3], k % d.shape[3]
        m, n = d.shape[1], d.shape[2]
        dp.dp_forward(d[b], m, n, p, 1, table[b, :, :, p:p + 1])
        out[q0 + b, g0 + p] = table[b, (m - 1) % table.shape[1], n - 1, p]


@kernel("F4", "F2", "i", "i")
def _shortest_table_kernel(table, grad_out, q0, g0):
    """Overwrite the matrix of pair ``(b, p)`` of ``table [B, m, n, P]`` by its table of
    formula 2, for the reverse pass; pairs whose ``grad_out[q0 + b, g0 + p]`` is 0 are left.

    A kernel of its own, not the first half of ``_shortest_vjp_kernel``: together they
    needed 72-80 registers, apart at most 61.
    """
    k = cuda.grid(1)
    if k < table.shape[0] * table.shape[3]:
        b, p = k // table.shape[3], k % table.shape[3]
        if grad_out[q0 + b, g0 + p] != 0:
            dp.dp_forward(table[b], table.shape[1], table.shape[2], p, 1, table[b, :, :, p:p + 1])


@kernel("F4", "F2", "i", "i", "f", "F4")
def _shortest_vjp_kernel(table, grad_out, q0, g0, half, grad):
    """Add the gradient of formula 2 of pair ``(b, p)`` to ``grad`` (zero on entry), from
    the pair's table (``_shortest_table_kernel``) and ``grad_out[q0 + b, g0 + p]``.

    Where that is 0 the pair stops at once: only the last cell gets it (the value, -0
    included, that the full reverse pass would leave there; the others stay +0).
    """
    k = cuda.grid(1)
    if k < table.shape[0] * table.shape[3]:
        b, p = k // table.shape[3], k % table.shape[3]
        m, n = table.shape[1], table.shape[2]
        g = grad_out[q0 + b, g0 + p]
        if g == 0:
            grad[b, m - 1, n - 1, p] = g
            return
        dp.dp_backward(table[b, :, :, p:p + 1], grad_out[q0 + b, g0:], half, m, n, p, 1, grad[b])


def shortest_vjp(table, grad_out, q0, g0, grad):
    """The reverse pass of formula 2 on ``table`` (overwritten) into ``grad`` (zeros)."""
    pairs = table.shape[0] * table.shape[3]
    launch(_shortest_table_kernel, pairs, table, grad_out, q0, g0)
    launch(_shortest_vjp_kernel, pairs, table, grad_out, q0, g0, _consts.of_dtype(table.dtype)[0],
           grad)


def shortest_dist(dist_mat):
    m, n = dist_mat.shape[:2]
    pairs = dist_mat.size // (m * n)
    d = dist_mat.reshape(1, m, n, pairs)
    out = empty((1, pairs), d.dtype)
    launch(shortest_kernel, pairs, d, empty((1, 2, n, pairs), d.dtype), 0, 0, out)
    return out.reshape(tuple(dist_mat.shape[2:]))


def shortest_dist_vjp(dist_mat, grad_out):
    m, n = dist_mat.shape[:2]
    pairs = dist_mat.size // (m * n)
    d = dist_mat.reshape(1, m, n, pairs)
    table = empty(d.shape, d.dtype)
    table.copy_to_device(d, stream=_gpu_context.current().stream)  # overwritten in place
    grad = zeros(d.shape, d.dtype)
    grad_out = grad_out.reshape(1) if grad_out.ndim == 0 else grad_out  # a 0-d array: one pair
    shortest_vjp(table, grad_out.reshape(1, pairs), 0, 0, grad)
    return grad.reshape(tuple(dist_mat.shape))
