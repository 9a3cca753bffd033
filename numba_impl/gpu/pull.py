"""Gradients of rows gathered, not scattered, on the GPU: one thread per gradient element
sums over the cells that touch it, in a fixed order (no atomics: the same bits run to run)."""
from numba import cuda

from .launch import kernel, launch, unravel


@kernel("F3", "F3", "F4", "i", "i", "b", "F3")
def _pull_x_kernel(x, y, coef, q0, g0, paired, grad_x):
    """``grad_x[r, i] += sum of coef * (x[r, i] - y[s, j])`` over the cells that touch row ``r``.

    ``coef`` is ``[B, m, n, P]``. Paired (``B = 1``): pair ``p`` is ``x[p]``, ``y[p]``.
    Otherwise pair ``(b, p)`` is ``x[q0 + b]``, ``y[g0 + p]``. One thread per element of
    ``grad_x``, summing in a fixed order and skipping zero coefficients (cells off the path).
    """
    rows = coef.shape[3] if paired else coef.shape[0]
    m, n, dim = x.shape[1], y.shape[1], x.shape[2]
    k = cuda.grid(1)
    if k < rows * m * dim:
        r, i, f = unravel(k, m, dim)
        row = r if paired else q0 + r
        v = x[row, i, f]
        total = v - v
        for j in range(n):
            if paired:
                c = coef[0, i, j, r]
                if c != 0:
                    total += c * (v - y[r, j, f])
            else:
                for p in range(coef.shape[3]):
                    c = coef[r, i, j, p]
                    if c != 0:
                        total += c * (v - y[g0 + p, j, f])
        grad_x[row, i, f] += total


@kernel("F3", "F3", "F4", "i", "i", "b", "F3")
def _pull_y_kernel(x, y, coef, q0, g0, paired, grad_y):
    """``grad_y[s, j] += sum of coef * (y[s, j] - x[r, i])``: the mirror of ``_pull_x_kernel``."""
    pairs = coef.shape[3]
    m, n, dim = x.shape[1], y.shape[1], y.shape[2]
    k = cuda.grid(1)
    if k < pairs * n * dim:
        p, j, f = unravel(k, n, dim)
        v = y[g0 + p, j, f]
        total = v - v
        for b in range(coef.shape[0]):
            row = p if paired else q0 + b
            for i in range(m):
                c = coef[b, i, j, p]
                if c != 0:
                    total += c * (v - x[row, i, f])
        grad_y[g0 + p, j, f] += total


def pull_rows(x, y, coef, q0, g0, paired, grad_x, grad_y):
    """Add the rows' gradients of the cells' coefficients ``coef`` to ``grad_x`` and ``grad_y``."""
    rows = coef.shape[3] if paired else coef.shape[0]
    launch(_pull_x_kernel, rows * x.shape[1] * x.shape[2], x, y, coef, q0, g0, paired, grad_x)
    launch(_pull_y_kernel, coef.shape[3] * y.shape[1] * y.shape[2], x, y, coef, q0, g0,
           paired, grad_y)
