"""The local distance of aligned pairs on the GPU (``batch_local_dist``) and its VJP."""
from .context import empty
from .arrays import zeros
from .launch import _consts, _launch
from .path import _shortest_kernel, _shortest_vjp
from .pull import _pull
from .stripes import _pair_stripes, _path_coef_kernel, _sq_norms


def batch_local_dist(x, y):
    d = _pair_stripes(x, y, _sq_norms(x), _sq_norms(y))
    out = empty((1, x.shape[0]), x.dtype)
    _launch(_shortest_kernel, x.shape[0], d, d, 0, 0, out)
    return out.reshape(x.shape[0])


def batch_local_dist_vjp(x, y, grad_out):
    half, clamp, _ = _consts(x.dtype)
    d = _pair_stripes(x, y, _sq_norms(x), _sq_norms(y))
    flow = zeros(d.shape, d.dtype)
    _shortest_vjp(d, grad_out.reshape(1, x.shape[0]), 0, 0, flow)
    _launch(_path_coef_kernel, flow.size, x, y, 0, 0, half, clamp, True, flow)
    grad_x, grad_y = zeros(x.shape, x.dtype), zeros(y.shape, y.dtype)
    _pull(x, y, flow, 0, 0, True, grad_x, grad_y)
    return grad_x, grad_y
