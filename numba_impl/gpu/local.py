"""The local distance of every query-gallery pair on the GPU (``local_dist``) and its VJP.

Tiles of queries x gallery as large as ``TILE_BYTES`` allows: the stripe products, formula
1 in place, formula 2 in place (``stripes``, ``path``); the VJP gathers each tile's path
coefficients back to the rows (``pull``).
"""
import numpy as np

from alignedreid_dp import progress as _progress

from .. import _consts
from . import context
from .arrays import zeros
from .context import empty
from .launch import launch
from .path import shortest_kernel, shortest_vjp
from .pull import pull_rows
from .stripes import (by_stripe_kernel, cross_stripes, nan_pairs_kernel, path_coef_kernel,
                      squared_norms)


def _cross_tiles(x, y):
    """``(q0, q1, g0, by_stripe)`` for tiles of queries x gallery whose formula-1 buffer
    fits ``TILE_BYTES``: the whole gallery when one query's row of pairs fits."""
    big_m, m, dim = x.shape
    big_n, n, _ = y.shape
    per_pair = m * n * np.dtype(x.dtype).itemsize
    gallery = max(1, min(big_n, _consts.TILE_BYTES // per_pair))
    queries = max(1, min(big_m, _consts.TILE_BYTES // (gallery * per_pair)))
    for g0 in range(0, big_n, gallery):
        g1 = min(big_n, g0 + gallery)
        by_stripe = empty((n, g1 - g0, dim), y.dtype)
        launch(by_stripe_kernel, by_stripe.size, y, g0, by_stripe)
        for q0 in range(0, big_m, queries):
            yield q0, min(big_m, q0 + queries), g0, by_stripe


def local_dist(x, y, chunk_size=None, progress=False):
    """Tiles of queries x gallery: products, formula 1 in place, formula 2 in place. With
    ``progress`` each tile is waited for before it is reported."""
    xx, yy = squared_norms(x), squared_norms(y)
    out = empty((x.shape[0], y.shape[0]), x.dtype)
    with _progress.report("local_dist", x.shape[0] * y.shape[0], progress) as shown:
        for q0, q1, g0, by_stripe in _cross_tiles(x, y):
            d = cross_stripes(x, y, by_stripe, xx, yy, q0, q1, g0)
            launch(shortest_kernel, d.shape[0] * d.shape[3], d, d, q0, g0, out)
            if progress:
                context.synchronize()
                shown.update(d.shape[0] * d.shape[3])
    return out


def local_dist_vjp(x, y, grad_out):
    half, clamp, _ = _consts.of_dtype(x.dtype)
    xx, yy = squared_norms(x), squared_norms(y)
    grad_x, grad_y = zeros(x.shape, x.dtype), zeros(y.shape, y.dtype)
    for q0, q1, g0, by_stripe in _cross_tiles(x, y):
        d = cross_stripes(x, y, by_stripe, xx, yy, q0, q1, g0)
        flow = zeros(d.shape, d.dtype)
        shortest_vjp(d, grad_out, q0, g0, flow)
        launch(path_coef_kernel, flow.size, x, y, q0, g0, half, clamp, False, flow)
        launch(nan_pairs_kernel, d.shape[0] * d.shape[3], d, flow)
        pull_rows(x, y, flow, q0, g0, False, grad_x, grad_y)
    return grad_x, grad_y
