"""Formula 1 of every stripe pair on the GPU, from matrix products of the stripe features,
and the chain-rule coefficients of the path cells."""
import functools
import math

import numpy as np
from numba import cuda

from .. import _consts
from . import context as _gpu_context
from .context import empty
from .launch import flat, kernel, launch, scalar, unravel


@kernel("F2", "F1")
def _squared_norms_kernel(rows, out):
    r = cuda.grid(1)
    if r < rows.shape[0]:
        total = rows[r, 0] * rows[r, 0]
        for f in range(1, rows.shape[1]):
            total += rows[r, f] * rows[r, f]
        out[r] = total


def squared_norms(x):
    """``|x[r, i]|^2`` for features ``[R, m, d]``: shape ``[R, m]``."""
    out = empty((x.shape[0], x.shape[1]), x.dtype)
    launch(_squared_norms_kernel, out.size, x.reshape(out.size, x.shape[2]), flat(out))
    return out


@kernel("F3", "F3", "F3")
def _products_kernel(a, b, out):
    """``out[k] = a[k] @ b[k].T``: the products when torch's cuBLAS is not at hand."""
    k = cuda.grid(1)
    if k < out.size:
        e, r, c = unravel(k, out.shape[1], out.shape[2])
        total = a[e, r, 0] * b[e, c, 0]
        for f in range(1, a.shape[2]):
            total += a[e, r, f] * b[e, c, f]
        out[e, r, c] = total


@functools.lru_cache(maxsize=None)
def _torch_cuda():
    """torch, when it is installed and sees a GPU; else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _products(a, b, out):
    """``out[k] = a[k] @ b[k].T`` on this thread's stream: torch's cuBLAS when torch sees
    the GPU and computes float32 products in full float32 (no TF32), else our kernel."""
    torch = _torch_cuda()
    if torch is None or (a.dtype == np.float32 and (
            torch.backends.cuda.matmul.allow_tf32
            or torch.get_float32_matmul_precision() != "highest")):
        launch(_products_kernel, out.size, a, b, out)
        return
    device = torch.device("cuda", cuda.get_current_device().id)
    setting = _gpu_context.current()
    on = setting.torch_stream
    if on is None:  # Numba's stream: the default one, unless a caller set another
        handle = getattr(setting.stream, "handle", None)
        pointer = int(getattr(handle, "value", handle) or 0)  # ctypes or cuda-python handle
        on = (torch.cuda.ExternalStream(pointer, device=device) if pointer
              else torch.cuda.default_stream(device))
    ta, tb, tout = (torch.as_tensor(v, device=device) for v in (a, b, out))
    with torch.cuda.stream(on):
        torch.bmm(ta, tb.transpose(1, 2), out=tout)


@kernel("F3", "i", "F3")
def by_stripe_kernel(y, g0, out):
    """``out[j, g, f] = y[g0 + g, j, f]``: gallery stripes grouped by stripe for the products."""
    k = cuda.grid(1)
    if k < out.size:
        j, g, f = unravel(k, out.shape[1], out.shape[2])
        out[j, g, f] = y[g0 + g, j, f]


@kernel("F4", "F2", "F2", "F3", "F3", "i", "i", "f", "f", "b", "F4")
def _stripes_kernel(dots, xx, yy, x, y, q0, g0, half, clamp, paired, d):
    """Formula 1 of every cell ``d[b, i, j, p]`` from the stripe products ``dots``.

    Paired: ``dots[p, i, j, 0]`` of pair ``x[p]``, ``y[p]``. Otherwise ``dots`` has the
    layout of ``d`` (and may be ``d``: in place) for pair ``x[q0 + b]``, ``y[g0 + p]``.
    Where the norm expansion overflows (huge or infinite features) the squared distance
    comes from explicit differences, as in the oracle: NaN only where the oracle has NaN.
    """
    k = cuda.grid(1)
    if k < d.size:
        pairs = d.shape[3]
        b, i, rest = unravel(k, d.shape[1], d.shape[2] * pairs)
        j, p = rest // pairs, rest % pairs
        if paired:
            dot, row = dots[p, i, j, 0], p
        else:
            dot, row = dots[b, i, j, p], q0 + b
        sq = xx[row, i] + yy[g0 + p, j] - (dot + dot)
        if math.isinf(sq) or math.isnan(sq):
            sq = scalar.sq_dist(x, row, i, y, g0 + p, j)
        d[b, i, j, p] = scalar.stripe_of_sq(sq, half, clamp)


@kernel("F3", "F3", "i", "i", "f", "f", "b", "F4")
def path_coef_kernel(x, y, q0, g0, half, clamp, paired, flow):
    """Replace each cell's flow of formula 2 by its chain-rule coefficient, in place.

    Pairs as in ``_stripes_kernel``. Cells without flow (off the path) stay as they are,
    so the squared distance is computed on path cells only.
    """
    k = cuda.grid(1)
    if k < flow.size:
        pairs = flow.shape[3]
        b, i, rest = unravel(k, flow.shape[1], flow.shape[2] * pairs)
        j, p = rest // pairs, rest % pairs
        w = flow[b, i, j, p]
        if w != 0:
            sq = scalar.sq_dist(x, p if paired else q0 + b, i, y, g0 + p, j)
            flow[b, i, j, p] = scalar.path_coef(sq, scalar.stripe_of_sq(sq, half, clamp), w, half,
                                                clamp)


@kernel("F4", "F4")
def nan_pairs_kernel(d, coef):
    """Set the coefficients of every pair of ``d [B, m, n, P]`` (its table of formula 2,
    or its formula 1 where ``grad_out`` is 0) that holds a NaN to NaN, all of them: a NaN
    stripe makes the pair's value NaN, the flow avoids its NaN cells, and its images'
    gradients must be NaN (as ``0 * NaN`` makes them in the oracle), not finite."""
    k = cuda.grid(1)
    if k < d.shape[0] * d.shape[3]:
        b, p = k // d.shape[3], k % d.shape[3]
        m, n = d.shape[1], d.shape[2]
        found = d[b, 0, 0, p]  # a NaN of the pair's, if it has one (no float64 constant)
        for i in range(m):
            for j in range(n):
                if math.isnan(d[b, i, j, p]):
                    found = d[b, i, j, p]
        if math.isnan(found):
            for i in range(m):
                for j in range(n):
                    coef[b, i, j, p] = found


def pair_stripes(x, y, xx, yy):
    """Formula 1 of each aligned pair's stripes, laid out ``[1, m, n, N]``."""
    pairs, m, _ = x.shape
    n = y.shape[1]
    half, clamp, _ = _consts.of_dtype(x.dtype)
    dots = empty((pairs, m, n), x.dtype)
    _products(x, y, dots)
    d = empty((1, m, n, pairs), x.dtype)
    launch(_stripes_kernel, d.size, dots.reshape(pairs, m, n, 1), xx, yy, x, y, 0, 0, half,
           clamp, True, d)
    return d


def cross_stripes(x, y, by_stripe, xx, yy, q0, q1, g0):
    """Formula 1 of queries ``q0:q1`` against the gallery slice of ``y`` in ``by_stripe``
    ``[n, G, d]`` (from ``g0`` on), laid out ``[Q, m, n, G]``: the products, then formula 1
    in place."""
    m, dim = x.shape[1], x.shape[2]
    n, gallery = by_stripe.shape[0], by_stripe.shape[1]
    half, clamp, _ = _consts.of_dtype(x.dtype)
    d = empty((1, (q1 - q0) * m, n * gallery), x.dtype)
    _products(x[q0:q1].reshape(1, (q1 - q0) * m, dim), by_stripe.reshape(1, n * gallery, dim), d)
    d = d.reshape(q1 - q0, m, n, gallery)
    launch(_stripes_kernel, d.size, d, xx, yy, x, y, q0, g0, half, clamp, False, d)
    return d
