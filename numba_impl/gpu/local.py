"""The local distance of every query-gallery pair on the GPU (``local_dist``) and its VJP."""
import numpy as np

from .._consts import TILE_BYTES
from .context import empty
from .arrays import zeros
from .launch import _consts, _launch
from .path import _shortest_kernel, _shortest_vjp
from .pull import _pull
from .stripes import _by_stripe_kernel, _cross_stripes, _path_coef_kernel, _sq_norms


def _cross_tiles(x, y):
    """``(q0, q1, g0, by_stripe)`` for tiles of queries x gallery whose formula-1 buffer
    fits ``TILE_BYTES``: the whole gallery when one query's row of pairs fits."""
    big_m, m, dim = x.shape
    big_n, n, _ = y.shape
    per_pair = m * n * np.dtype(x.dtype).itemsize
    gallery = max(1, min(big_n, TILE_BYTES // per_pair))
    queries = max(1, min(big_m, TILE_BYTES // (gallery * per_pair)))
    for g0 in range(0, big_n, gallery):
        g1 = min(big_n, g0 + gallery)
        by_stripe = empty((n, g1 - g0, dim), y.dtype)
        _launch(_by_stripe_kernel, by_stripe.size, y, g0, by_stripe)
        for q0 in range(0, big_m, queries):
            yield q0, min(big_m, q0 + queries), g0, by_stripe


# ------------------------------------------------------------------------ local distances
def local_dist(x, y, chunk_size=None, progress=False):
    """Tiles of queries x gallery: products, formula 1 in place, formula 2 in place."""
    xx, yy = _sq_norms(x), _sq_norms(y)
    out = empty((x.shape[0], y.shape[0]), x.dtype)
    for q0, q1, g0, by_stripe in _cross_tiles(x, y):
        d = _cross_stripes(x, y, by_stripe, xx, yy, q0, q1, g0)
        _launch(_shortest_kernel, d.shape[0] * d.shape[3], d, d, q0, g0, out)
    return out


def local_dist_vjp(x, y, grad_out):
    half, clamp, _ = _consts(x.dtype)
    xx, yy = _sq_norms(x), _sq_norms(y)
    grad_x, grad_y = zeros(x.shape, x.dtype), zeros(y.shape, y.dtype)
    for q0, q1, g0, by_stripe in _cross_tiles(x, y):
        d = _cross_stripes(x, y, by_stripe, xx, yy, q0, q1, g0)
        flow = zeros(d.shape, d.dtype)
        _shortest_vjp(d, grad_out, q0, g0, flow)
        _launch(_path_coef_kernel, flow.size, x, y, q0, g0, half, clamp, False, flow)
        _pull(x, y, flow, q0, g0, False, grad_x, grad_y)
    return grad_x, grad_y
