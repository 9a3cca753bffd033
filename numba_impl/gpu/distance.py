"""Normalisation, formula 1 and Euclidean distances (explicit differences) on the GPU."""
import numpy as np
from numba import cuda

from .. import _consts
from .arrays import zeros
from .context import empty
from .launch import flat, kernel, launch, scalar, unravel
from .pull import pull_rows


@kernel("F3", "f", "F3")
def _normalize_kernel(x, eps, out):
    k = cuda.grid(1)
    if k < x.shape[0] * x.shape[2]:
        o, c = k // x.shape[2], k % x.shape[2]
        scalar.normalize_vector(x, o, c, eps, out)


@kernel("F3", "F3", "f", "F3")
def _normalize_vjp_kernel(x, g, eps, out):
    k = cuda.grid(1)
    if k < x.shape[0] * x.shape[2]:
        o, c = k // x.shape[2], k % x.shape[2]
        scalar.normalize_vector_vjp(x, g, o, c, eps, out)


def _three_axes(x, axis):
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(outer, x.shape[axis], x.size // (outer * x.shape[axis]))


def normalize(x, axis):
    out = empty(x.shape, x.dtype)
    x3 = _three_axes(x, axis)
    launch(_normalize_kernel, x3.shape[0] * x3.shape[2], x3, _consts.of_dtype(x.dtype)[2],
           _three_axes(out, axis))
    return out


def normalize_vjp(x, grad_out, axis):
    out = empty(x.shape, x.dtype)
    x3 = _three_axes(x, axis)
    launch(_normalize_vjp_kernel, x3.shape[0] * x3.shape[2], x3, _three_axes(grad_out, axis),
           _consts.of_dtype(x.dtype)[2], _three_axes(out, axis))
    return out


@kernel("F1", "f", "F1")
def _stripe_kernel(e, half, out):
    k = cuda.grid(1)
    if k < e.size:
        out[k] = scalar.stripe(e[k], half)


@kernel("F1", "F1", "f", "F1")
def _stripe_vjp_kernel(e, g, half, out):
    k = cuda.grid(1)
    if k < e.size:
        out[k] = g[k] * scalar.stripe_slope(scalar.stripe(e[k], half), half)


def stripe_dist(euclid):
    out = empty(euclid.shape, euclid.dtype)
    launch(_stripe_kernel, euclid.size, flat(euclid), _consts.of_dtype(euclid.dtype)[0], flat(out))
    return out


def stripe_dist_vjp(euclid, grad_out):
    out = empty(euclid.shape, euclid.dtype)
    launch(_stripe_vjp_kernel, euclid.size, flat(euclid), flat(grad_out),
           _consts.of_dtype(euclid.dtype)[0], flat(out))
    return out


@kernel("F3", "F3", "f", "F3")
def _euclid_kernel(x, y, clamp, out):
    k = cuda.grid(1)
    if k < out.size:
        b, i, j = unravel(k, out.shape[1], out.shape[2])
        out[b, i, j] = scalar.euclid(scalar.sq_dist(x, b, i, y, b, j), clamp)


@kernel("F3", "F3", "F3", "f", "F4")
def _euclid_coef_kernel(x, y, grad_out, clamp, coef):
    """``coef[0, i, j, b]``: ``grad / dist`` where the clamp is inactive, else 0."""
    k = cuda.grid(1)
    if k < grad_out.size:
        b, i, j = unravel(k, grad_out.shape[1], grad_out.shape[2])
        c = clamp - clamp
        g = grad_out[b, i, j]
        if g != 0:
            c = scalar.euclid_coef(scalar.sq_dist(x, b, i, y, b, j), g, clamp)
        coef[0, i, j, b] = c


def batch_euclidean_dist(x, y):
    out = empty((x.shape[0], x.shape[1], y.shape[1]), x.dtype)
    launch(_euclid_kernel, out.size, x, y, _consts.of_dtype(x.dtype)[1], out)
    return out


def batch_euclidean_dist_vjp(x, y, grad_out):
    coef = empty((1, x.shape[1], y.shape[1], x.shape[0]), x.dtype)
    launch(_euclid_coef_kernel, grad_out.size, x, y, grad_out, _consts.of_dtype(x.dtype)[1], coef)
    grad_x, grad_y = zeros(x.shape, x.dtype), zeros(y.shape, y.dtype)
    pull_rows(x, y, coef, 0, 0, True, grad_x, grad_y)
    return grad_x, grad_y


def _batched(a):
    return a.reshape((1,) + tuple(a.shape))


def euclidean_dist(x, y):
    return batch_euclidean_dist(_batched(x), _batched(y)).reshape((x.shape[0], y.shape[0]))


def euclidean_dist_vjp(x, y, grad_out):
    grad_x, grad_y = batch_euclidean_dist_vjp(_batched(x), _batched(y), _batched(grad_out))
    return grad_x.reshape(tuple(x.shape)), grad_y.reshape(tuple(y.shape))
