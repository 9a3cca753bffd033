"""GPU kernels (``@cuda.jit``) and the host functions that launch them.

Mirrors ``cpu.py`` function for function; inputs are validated Numba device arrays
(C-contiguous) and results are new Numba device arrays of the same dtype.

One thread handles one pair of images (or one output element); the pair's ``m x n``
table of formula 2 lives in a thread-local array whose size must be a compile-time
constant, hence ``MAX_STRIPES``. Kernels that need local arrays are built once per
dtype (``_typed``) because the local array's dtype is part of the compiled code.
Constants of the data's dtype (0.5, the 1e-12 clamp) come in as arguments, so float32
arithmetic never widens to float64. Launches use ``THREADS_PER_BLOCK`` threads (tests
vary it) on the stream set by ``on_stream`` (the torch bridge passes torch's stream).
"""
import contextlib
import functools
import math

import numpy as np
from numba import cuda

from . import _dp, _scalar
from .cpu import NORM_EPS, SQ_DIST_CLAMP

#: Largest stripe count m or n the GPU kernels accept (size of the thread-local tables).
MAX_STRIPES = 32
#: Threads per block of every launch (at most 1024 on current hardware).
THREADS_PER_BLOCK = 128
_stream = 0

_device = cuda.jit(device=True)
dp_forward = _device(_dp.dp_forward)
dp_backward = _device(_dp.dp_backward)
_clamped = _device(_scalar.clamped)
_stripe = _device(_scalar.stripe)
_stripe_coef = _device(_scalar.stripe_coef)
_softplus = _device(_scalar.softplus)
_mine_anchor = _device(_scalar.mine_anchor)
_scaled_norm = _device(_scalar.scaled_norm)


@contextlib.contextmanager
def on_stream(stream):
    """Launch every kernel inside the block on ``stream`` (e.g. torch's current stream)."""
    global _stream
    previous, _stream = _stream, stream
    try:
        yield
    finally:
        _stream = previous


def _launch(kernel, size, *args):
    blocks = max(1, (size + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK)
    kernel[blocks, THREADS_PER_BLOCK, _stream](*args)


def _consts(dtype):
    t = np.dtype(dtype).type
    return t(0.5), t(SQ_DIST_CLAMP), t(NORM_EPS)


def check_stripes(func, m, n):
    if m > MAX_STRIPES or n > MAX_STRIPES:
        raise ValueError(
            f"{func}: the GPU kernels take at most {MAX_STRIPES} stripes per image "
            f"(numba_impl.gpu.MAX_STRIPES); got m={m}, n={n}"
        )


def empty(shape, dtype):
    return cuda.device_array(shape, dtype=dtype, stream=_stream)


def zeros(shape, dtype):
    out = empty(shape, dtype)
    flat = out.reshape(-1) if out.ndim != 1 else out
    _launch(_fill_kernel, flat.size, flat, np.dtype(dtype).type(0))
    return out


def _flat(a):
    return a.reshape(a.size) if a.ndim != 1 else a


# ---------------------------------------------------------------------- small helpers
@cuda.jit
def _fill_kernel(out, value):
    k = cuda.grid(1)
    if k < out.size:
        out[k] = value


@cuda.jit
def _add_kernel(a, b, out):
    k = cuda.grid(1)
    if k < out.size:
        out[k] = a[k] + b[k]


def add(a, b):
    out = empty(a.shape, a.dtype)
    _launch(_add_kernel, a.size, _flat(a), _flat(b), _flat(out))
    return out


@cuda.jit
def _take_rows_kernel(x, inds, out):
    k = cuda.grid(1)
    if k < out.size:
        row, col = k // x.shape[1], k % x.shape[1]
        out[row, col] = x[inds[row], col]


def take_rows(x, inds):
    """``x[inds]`` along the first axis."""
    x2 = x.reshape(x.shape[0], x.size // x.shape[0])
    out = empty((inds.size, x2.shape[1]), x.dtype)
    _launch(_take_rows_kernel, out.size, x2, inds, out)
    return out.reshape((inds.size,) + tuple(x.shape[1:]))


@cuda.jit
def _add_rows_at_kernel(target, inds, rows):
    k = cuda.grid(1)
    if k < rows.size:
        row, col = k // rows.shape[1], k % rows.shape[1]
        cuda.atomic.add(target, (inds[row], col), rows[row, col])  # an index may repeat


def add_rows_at(target, inds, rows):
    """``np.add.at(target, inds, rows)`` in place."""
    width = target.size // target.shape[0]
    r2 = rows.reshape(rows.shape[0], width)
    _launch(_add_rows_at_kernel, r2.size, target.reshape(target.shape[0], width), inds, r2)


@cuda.jit
def _mined_grad_kernel(grad, p_inds, n_inds, grad_ap, grad_an):
    a = cuda.grid(1)
    if a < grad.shape[0]:  # one thread per anchor row: no races
        grad[a, p_inds[a]] += grad_ap[a]
        grad[a, n_inds[a]] += grad_an[a]


def mined_grad(shape, dtype, p_inds, n_inds, grad_ap, grad_an):
    grad = zeros(shape, dtype)
    _launch(_mined_grad_kernel, shape[0], grad, p_inds, n_inds, grad_ap, grad_an)
    return grad


# ------------------------------------------------------------------ device functions
@_device
def _sq_dist(x, k, i, y, g, j):
    diff = x[k, i, 0] - y[g, j, 0]
    total = diff * diff
    for f in range(1, x.shape[2]):
        diff = x[k, i, f] - y[g, j, f]
        total += diff * diff
    return total


@_device
def _pair_stripes(x, q, y, g, half, clamp, stripes):
    for i in range(x.shape[1]):
        for j in range(y.shape[1]):
            stripes[i, j, 0] = _stripe(_sq_dist(x, q, i, y, g, j), half, clamp)


@_device
def _pair_vjp(x, q, y, g, grad_out, half, clamp, stripes, table, flow, grad_x, grad_y):
    """Gradient of the local distance of pair ``(x[q], y[g])`` added atomically into grad_x/grad_y."""
    m, n, dim = x.shape[1], y.shape[1], x.shape[2]
    _pair_stripes(x, q, y, g, half, clamp, stripes)
    dp_forward(stripes, m, n, 0, 1, table)
    for i in range(m):
        for j in range(n):
            flow[i, j, 0] = half - half
    dp_backward(table, grad_out, half, m, n, 0, 1, flow)
    for i in range(m):
        for j in range(n):
            c = _stripe_coef(_sq_dist(x, q, i, y, g, j), flow[i, j, 0], half, clamp)
            if c != 0:
                for f in range(dim):
                    v = c * (x[q, i, f] - y[g, j, f])
                    cuda.atomic.add(grad_x, (q, i, f), v)
                    cuda.atomic.add(grad_y, (g, j, f), -v)


# ------------------------------------------------------------- kernels built per dtype
@functools.lru_cache(maxsize=None)
def _typed(dtype_name):
    """Kernels with thread-local tables of ``dtype`` (a compile-time constant in CUDA)."""
    dtype = {"float32": np.float32, "float64": np.float64}[dtype_name]
    size = MAX_STRIPES

    @cuda.jit
    def shortest(d, out):
        p = cuda.grid(1)
        if p < out.size:
            table = cuda.local.array((2, size, 1), dtype)
            dp_forward(d, d.shape[0], d.shape[1], p, 1, table)
            out[p] = table[(d.shape[0] - 1) % 2, d.shape[1] - 1, 0]

    @cuda.jit
    def shortest_vjp(d, grad_out, half, grad):
        p = cuda.grid(1)
        if p < grad_out.size:
            table = cuda.local.array((size, size, 1), dtype)
            dp_forward(d, d.shape[0], d.shape[1], p, 1, table)
            dp_backward(table, grad_out, half, d.shape[0], d.shape[1], p, 1, grad)

    @cuda.jit
    def local(x, y, half, clamp, out):
        k = cuda.grid(1)
        if k < out.size:  # one thread per (query, gallery) pair, gallery fastest
            q, g = k // out.shape[1], k % out.shape[1]
            stripes = cuda.local.array((size, size, 1), dtype)
            table = cuda.local.array((2, size, 1), dtype)
            _pair_stripes(x, q, y, g, half, clamp, stripes)
            dp_forward(stripes, x.shape[1], y.shape[1], 0, 1, table)
            out[q, g] = table[(x.shape[1] - 1) % 2, y.shape[1] - 1, 0]

    @cuda.jit
    def batch_local(x, y, half, clamp, out):
        k = cuda.grid(1)
        if k < out.size:
            stripes = cuda.local.array((size, size, 1), dtype)
            table = cuda.local.array((2, size, 1), dtype)
            _pair_stripes(x, k, y, k, half, clamp, stripes)
            dp_forward(stripes, x.shape[1], y.shape[1], 0, 1, table)
            out[k] = table[(x.shape[1] - 1) % 2, y.shape[1] - 1, 0]

    @cuda.jit
    def local_vjp(x, y, grad_out, half, clamp, grad_x, grad_y):
        k = cuda.grid(1)
        if k < grad_out.size:
            q, g = k // grad_out.shape[1], k % grad_out.shape[1]
            stripes = cuda.local.array((size, size, 1), dtype)
            table = cuda.local.array((size, size, 1), dtype)
            flow = cuda.local.array((size, size, 1), dtype)
            _pair_vjp(x, q, y, g, grad_out[q, g:g + 1], half, clamp, stripes, table, flow,
                      grad_x, grad_y)

    @cuda.jit
    def batch_local_vjp(x, y, grad_out, half, clamp, grad_x, grad_y):
        k = cuda.grid(1)
        if k < grad_out.size:
            stripes = cuda.local.array((size, size, 1), dtype)
            table = cuda.local.array((size, size, 1), dtype)
            flow = cuda.local.array((size, size, 1), dtype)
            _pair_vjp(x, k, y, k, grad_out[k:k + 1], half, clamp, stripes, table, flow,
                      grad_x, grad_y)

    return dict(shortest=shortest, shortest_vjp=shortest_vjp, local=local,
                batch_local=batch_local, local_vjp=local_vjp, batch_local_vjp=batch_local_vjp)


def _kernel(name, dtype):
    return _typed(np.dtype(dtype).name)[name]


# ----------------------------------------------------------------------------- formula 2
def shortest_dist(dist_mat):
    m, n = dist_mat.shape[:2]
    d = dist_mat.reshape(m, n, dist_mat.size // (m * n))
    out = empty(d.shape[2], d.dtype)
    _launch(_kernel("shortest", d.dtype), out.size, d, out)
    return out.reshape(tuple(dist_mat.shape[2:])) if dist_mat.ndim != 3 else out


def shortest_dist_vjp(dist_mat, grad_out):
    m, n = dist_mat.shape[:2]
    pairs = dist_mat.size // (m * n)
    d = dist_mat.reshape(m, n, pairs)
    grad = zeros(d.shape, d.dtype)
    _launch(_kernel("shortest_vjp", d.dtype), pairs, d, _flat(grad_out) if grad_out.ndim != 1 else grad_out,
            _consts(d.dtype)[0], grad)
    return grad.reshape(tuple(dist_mat.shape)) if dist_mat.ndim != 3 else grad


# ------------------------------------------------------------------ normalize, formula 1
@cuda.jit
def _normalize_kernel(x, eps, out):
    k = cuda.grid(1)
    if k < x.shape[0] * x.shape[2]:
        o, c = k // x.shape[2], k % x.shape[2]
        scale, norm = _scaled_norm(x, o, c, eps)  # no overflow, as cpu.py
        denom = norm + eps / scale
        for a in range(x.shape[1]):
            out[o, a, c] = (x[o, a, c] / scale) / denom


@cuda.jit
def _normalize_vjp_kernel(x, g, eps, out):
    k = cuda.grid(1)
    if k < x.shape[0] * x.shape[2]:
        o, c = k // x.shape[2], k % x.shape[2]
        scale, norm = _scaled_norm(x, o, c, eps)
        denom = norm + eps / scale
        along = (x[o, 0, c] / scale) * g[o, 0, c]
        for a in range(1, x.shape[1]):
            along += (x[o, a, c] / scale) * g[o, a, c]
        for a in range(x.shape[1]):
            radial = eps - eps  # the radial term's limit is 0 for a zero vector
            if norm > 0:
                radial = ((x[o, a, c] / scale) / denom) * (along / norm / denom)
            out[o, a, c] = (g[o, a, c] / denom - radial) / scale


def _three_axes(x, axis):
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(outer, x.shape[axis], x.size // (outer * x.shape[axis]))


def normalize(x, axis):
    out = empty(x.shape, x.dtype)
    x3 = _three_axes(x, axis)
    _launch(_normalize_kernel, x3.shape[0] * x3.shape[2], x3, _consts(x.dtype)[2],
            _three_axes(out, axis))
    return out


def normalize_vjp(x, grad_out, axis):
    out = empty(x.shape, x.dtype)
    x3 = _three_axes(x, axis)
    _launch(_normalize_vjp_kernel, x3.shape[0] * x3.shape[2], x3, _three_axes(grad_out, axis),
            _consts(x.dtype)[2], _three_axes(out, axis))
    return out


@cuda.jit
def _stripe_kernel(e, half, out):
    k = cuda.grid(1)
    if k < e.size:
        out[k] = math.tanh(e[k] * half)


@cuda.jit
def _stripe_vjp_kernel(e, g, half, out):
    k = cuda.grid(1)
    if k < e.size:
        t = math.tanh(e[k] * half)
        out[k] = g[k] * ((half + half - t * t) * half)


def stripe_dist(euclid):
    out = empty(euclid.shape, euclid.dtype)
    _launch(_stripe_kernel, euclid.size, _flat(euclid), _consts(euclid.dtype)[0], _flat(out))
    return out


def stripe_dist_vjp(euclid, grad_out):
    out = empty(euclid.shape, euclid.dtype)
    _launch(_stripe_vjp_kernel, euclid.size, _flat(euclid), _flat(grad_out),
            _consts(euclid.dtype)[0], _flat(out))
    return out


# ------------------------------------------------------------------ Euclidean distances
@cuda.jit
def _euclid_kernel(x, y, clamp, out):
    k = cuda.grid(1)
    if k < out.size:
        b, rest = k // (out.shape[1] * out.shape[2]), k % (out.shape[1] * out.shape[2])
        i, j = rest // out.shape[2], rest % out.shape[2]
        out[b, i, j] = math.sqrt(_clamped(_sq_dist(x, b, i, y, b, j), clamp))


@cuda.jit
def _euclid_vjp_kernel(x, y, grad_out, clamp, grad_x, grad_y):
    k = cuda.grid(1)
    if k < grad_out.size:
        b, rest = k // (grad_out.shape[1] * grad_out.shape[2]), k % (grad_out.shape[1] * grad_out.shape[2])
        i, j = rest // grad_out.shape[2], rest % grad_out.shape[2]
        sq = _sq_dist(x, b, i, y, b, j)
        if sq >= clamp and grad_out[b, i, j] != 0:
            c = grad_out[b, i, j] / math.sqrt(sq)
            for f in range(x.shape[2]):
                v = c * (x[b, i, f] - y[b, j, f])
                cuda.atomic.add(grad_x, (b, i, f), v)
                cuda.atomic.add(grad_y, (b, j, f), -v)


def batch_euclidean_dist(x, y):
    out = empty((x.shape[0], x.shape[1], y.shape[1]), x.dtype)
    _launch(_euclid_kernel, out.size, x, y, _consts(x.dtype)[1], out)
    return out


def batch_euclidean_dist_vjp(x, y, grad_out):
    grad_x, grad_y = zeros(x.shape, x.dtype), zeros(y.shape, y.dtype)
    _launch(_euclid_vjp_kernel, grad_out.size, x, y, grad_out, _consts(x.dtype)[1], grad_x, grad_y)
    return grad_x, grad_y


def _batched(a):
    return a.reshape((1,) + tuple(a.shape))


def euclidean_dist(x, y):
    return batch_euclidean_dist(_batched(x), _batched(y)).reshape((x.shape[0], y.shape[0]))


def euclidean_dist_vjp(x, y, grad_out):
    grad_x, grad_y = batch_euclidean_dist_vjp(_batched(x), _batched(y), _batched(grad_out))
    return grad_x.reshape(tuple(x.shape)), grad_y.reshape(tuple(y.shape))


# ------------------------------------------------------------------------ local distances
def local_dist(x, y, chunk_size=None, progress=False):
    """One launch: the output is ``M x N`` scalars, so no chunking is needed on the device."""
    check_stripes("local_dist", x.shape[1], y.shape[1])
    half, clamp, _ = _consts(x.dtype)
    out = empty((x.shape[0], y.shape[0]), x.dtype)
    _launch(_kernel("local", x.dtype), out.size, x, y, half, clamp, out)
    return out


def batch_local_dist(x, y):
    check_stripes("batch_local_dist", x.shape[1], y.shape[1])
    half, clamp, _ = _consts(x.dtype)
    out = empty(x.shape[0], x.dtype)
    _launch(_kernel("batch_local", x.dtype), out.size, x, y, half, clamp, out)
    return out


def local_dist_vjp(x, y, grad_out):
    check_stripes("local_dist_vjp", x.shape[1], y.shape[1])
    half, clamp, _ = _consts(x.dtype)
    grad_x, grad_y = zeros(x.shape, x.dtype), zeros(y.shape, y.dtype)
    _launch(_kernel("local_vjp", x.dtype), grad_out.size, x, y, grad_out, half, clamp, grad_x, grad_y)
    return grad_x, grad_y


def batch_local_dist_vjp(x, y, grad_out):
    check_stripes("batch_local_dist_vjp", x.shape[1], y.shape[1])
    half, clamp, _ = _consts(x.dtype)
    grad_x, grad_y = zeros(x.shape, x.dtype), zeros(y.shape, y.dtype)
    _launch(_kernel("batch_local_vjp", x.dtype), grad_out.size, x, y, grad_out, half, clamp,
            grad_x, grad_y)
    return grad_x, grad_y


# ------------------------------------------------------------------- mining, triplet loss
@cuda.jit
def _mine_kernel(dist, labels, dist_ap, dist_an, p_inds, n_inds):
    a = cuda.grid(1)
    if a < dist.shape[0]:
        best_p, best_n = _mine_anchor(dist, labels, a)
        p_inds[a] = best_p
        n_inds[a] = best_n
        dist_ap[a] = dist[a, best_p]
        dist_an[a] = dist[a, max(best_n, 0)]


def hard_example_mining(dist_mat, labels):
    count = dist_mat.shape[0]
    dist_ap, dist_an = empty(count, dist_mat.dtype), empty(count, dist_mat.dtype)
    p_inds, n_inds = empty(count, np.int64), empty(count, np.int64)
    _launch(_mine_kernel, count, dist_mat, labels, dist_ap, dist_an, p_inds, n_inds)
    return dist_ap, dist_an, p_inds, n_inds


@cuda.jit
def _triplet_kernel(dist_ap, dist_an, margin, soft, losses, slopes):
    k = cuda.grid(1)
    if k < dist_ap.size:
        z = dist_ap[k] - dist_an[k]
        zero = margin - margin
        if soft:
            losses[k] = _softplus(z)
            slopes[k] = math.exp(-_softplus(-z))
        else:
            v = z + margin
            losses[k] = zero if v <= 0 else v
            slopes[k] = (zero + 1) if v > 0 else zero


def triplet_terms(dist_ap, dist_an, margin):
    dtype = np.dtype(dist_ap.dtype).type
    losses, slopes = empty(dist_ap.shape, dist_ap.dtype), empty(dist_ap.shape, dist_ap.dtype)
    _launch(_triplet_kernel, dist_ap.size, dist_ap, dist_an, dtype(0 if margin is None else margin),
            margin is None, losses, slopes)
    return losses, slopes


@cuda.jit
def _mean_kernel(values, out):
    if cuda.grid(1) == 0:  # a short sequential sum: N is a batch size
        total = values[0]
        for k in range(1, values.size):
            total += values[k]
        out[0] = total / values.size


@cuda.jit
def _scale_kernel(values, scale, out):
    k = cuda.grid(1)
    if k < values.size:
        out[k] = values[k] * scale[0]


def mean(values):
    out = empty(1, values.dtype)
    _launch(_mean_kernel, 1, values, out)
    return out.reshape(())


def scale(values, factor):
    """``values * factor`` with ``factor`` a host scalar or a device array of one element."""
    if not hasattr(factor, "shape"):
        factor = cuda.to_device(np.array([factor], dtype=values.dtype), stream=_stream)
    out = empty(values.shape, values.dtype)
    _launch(_scale_kernel, values.size, values, _flat(factor) if factor.ndim != 1 else factor, out)
    return out


def negate(values):
    return scale(values, np.dtype(values.dtype).type(-1))
