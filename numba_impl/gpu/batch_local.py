"""The local distance of aligned pairs on the GPU (``batch_local_dist``) and its VJP."""
from .. import _consts
from .arrays import zeros
from .context import empty
from .launch import launch
from .path import shortest_kernel, shortest_vjp
from .pull import pull_rows
from .stripes import nan_pairs_kernel, pair_stripes, path_coef_kernel, squared_norms


def batch_local_dist(x, y):
    d = pair_stripes(x, y, squared_norms(x), squared_norms(y))
    out = empty((1, x.shape[0]), x.dtype)
    launch(shortest_kernel, x.shape[0], d, d, 0, 0, out)
    return out.reshape(x.shape[0])


def batch_local_dist_vjp(x, y, grad_out):
    half, clamp, _ = _consts.of_dtype(x.dtype)
    d = pair_stripes(x, y, squared_norms(x), squared_norms(y))
    flow = zeros(d.shape, d.dtype)
    shortest_vjp(d, grad_out.reshape(1, x.shape[0]), 0, 0, flow)
    launch(path_coef_kernel, flow.size, x, y, 0, 0, half, clamp, True, flow)
    launch(nan_pairs_kernel, x.shape[0], d, flow)
    grad_x, grad_y = zeros(x.shape, x.dtype), zeros(y.shape, y.dtype)
    pull_rows(x, y, flow, 0, 0, True, grad_x, grad_y)
    return grad_x, grad_y
