"""GPU kernels (``@cuda.jit``) and the host functions that launch them.

Mirrors ``cpu.py`` function for function; inputs are validated, C-contiguous Numba
device arrays and results are new device arrays of the same dtype, from the allocator
of ``_gpu_context`` (torch's caching allocator when the caller hands in torch tensors),
and every launch goes to that context's stream.

Layout and work split, chosen so that no kernel needs per-thread tables, atomics or
float64 arithmetic in float32:

- Formula 2 runs one thread per pair on ``[B, m, n, P]`` arrays (pairs ``(b, p)``, ``p``
  innermost, so neighbouring threads touch neighbouring addresses). Its table is a
  device array of that layout, not thread-local memory: the forward pass of the local
  distances overwrites its own formula-1 buffer in place.
- The stripe distances of the local distances come from matrix products of the stripe
  features, as on the CPU: torch's cuBLAS when torch can use the device, else
  ``_products_kernel``; formula 1 uses ``|x|^2 + |y|^2 - 2 x.y`` (the CPU's error model).
- Gradients are gathered, not scattered: after the reverse pass, each path cell's
  chain-rule coefficient is computed in place of its flow (squared distance from explicit
  differences, on path cells only), then one thread per gradient element sums over the
  cells that touch it, in a fixed order. No atomics: results are the same bits run to run.
- The reverse pass of a pair whose ``grad_out`` is 0 stops at once.

Every kernel is declared with the types of its arguments (``_kernel``), so that
``numba_impl.gpu_compile`` compiles exactly these for the hardware checks. Constants of
the data's dtype come in as arguments, so float32 kernels never widen to float64.
Kernels are cached on disk (``cache=True``) keyed on this file only: after editing
``_dp.py`` or ``_scalar.py``, delete ``numba_impl/__pycache__/*.nb[ic]`` (as for the CPU).
"""
import functools
import math

import numpy as np
from numba import cuda, types

from . import _dp, _gpu_context, _scalar
from ._gpu_context import empty, to_device, to_host
from .cpu import NORM_EPS, SQ_DIST_CLAMP, TILE_BYTES

#: Threads per block of every launch (at most 1024 on current hardware).
THREADS_PER_BLOCK = 128
#: Every kernel by name: ``(dispatcher, argument codes)``; see ``_kernel``.
KERNELS = {}
#: The kernels that run formula 2 (checked for fused multiply-adds: they must round as the oracle).
FORMULA_2 = ("shortest", "shortest_table", "shortest_vjp")
#: When set (the GPU tests set it), every launch checks its arguments against the kernel's
#: declared types, so that the compile-time check compiles what actually runs.
CHECK_ARGUMENTS = False

_device = cuda.jit(device=True)
dp_forward = _device(_dp.dp_forward)
dp_backward = _device(_dp.dp_backward)
_clamped = _device(_scalar.clamped)
_stripe = _device(_scalar.stripe)
_stripe_coef = _device(_scalar.stripe_coef)
_softplus = _device(_scalar.softplus)
_mine_anchor = _device(_scalar.mine_anchor)
_scaled_norm = _device(_scalar.scaled_norm)

def argument_types(codes, dtype):
    """Numba types of arguments written as codes: ``F3`` a C-contiguous 3-D array of the
    data ``dtype``, ``I1`` a 1-D int64 array, ``f`` a scalar of the data dtype, ``i`` an
    int64, ``b`` a bool."""
    data = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    out = []
    for code in codes:
        if code == "f":
            out.append(data)
        elif code == "i":
            out.append(types.int64)
        elif code == "b":
            out.append(types.boolean)
        else:
            element = data if code[0] == "F" else types.int64
            out.append(types.Array(element, int(code[1:]), "C"))
    return tuple(out)


def _kernel(*codes):
    """``cuda.jit`` a kernel and declare the types of its arguments (see ``argument_types``)."""
    def wrap(pyfunc):
        kernel = cuda.jit(cache=True)(pyfunc)
        KERNELS[pyfunc.__name__.strip("_").removesuffix("_kernel")] = (kernel, codes)
        return kernel
    return wrap


def _check_arguments(kernel, args):
    from numba import typeof

    codes = next(c for k, c in KERNELS.values() if k is kernel)
    data = next((a.dtype for a in args if hasattr(a, "dtype") and a.dtype.kind == "f"), None)
    got = tuple(typeof(a) for a in args)
    if got != argument_types(codes, data):
        raise TypeError(f"{kernel.py_func.__name__}: launched with {got}; declared "
                        f"{argument_types(codes, data)}")


def _launch(kernel, size, *args):
    if CHECK_ARGUMENTS:
        _check_arguments(kernel, args)
    blocks = max(1, (size + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK)
    kernel[blocks, THREADS_PER_BLOCK, _gpu_context.current().stream](*args)


def _consts(dtype):
    t = np.dtype(dtype).type
    return t(0.5), t(SQ_DIST_CLAMP), t(NORM_EPS)


def _flat(a):
    return a.reshape(a.size) if a.ndim != 1 else a


def zeros(shape, dtype):
    out = empty(shape, dtype)
    _launch(_fill_kernel, out.size, _flat(out), np.dtype(dtype).type(0))
    return out


def _int64(inds):
    """Indices or labels as int64 (the one integer type the kernels are built for)."""
    return inds if inds.dtype == np.int64 else to_device(to_host(inds).astype(np.int64))


# ---------------------------------------------------------------------- small helpers
@_device
def _unravel(k, rows, cols):
    """``(a, r, c)`` with ``k = (a * rows + r) * cols + c``: a thread's element of an array."""
    return k // (rows * cols), (k // cols) % rows, k % cols


@_kernel("F1", "f")
def _fill_kernel(out, value):
    k = cuda.grid(1)
    if k < out.size:
        out[k] = value


@_kernel("F1", "F1", "F1")
def _add_kernel(a, b, out):
    k = cuda.grid(1)
    if k < out.size:
        out[k] = a[k] + b[k]


def add(a, b):
    out = empty(a.shape, a.dtype)
    _launch(_add_kernel, a.size, _flat(a), _flat(b), _flat(out))
    return out


@_kernel("F2", "I1", "F2")
def _take_rows_kernel(x, inds, out):
    k = cuda.grid(1)
    if k < out.size:
        row, col = k // x.shape[1], k % x.shape[1]
        out[row, col] = x[inds[row], col]


def take_rows(x, inds):
    """``x[inds]`` along the first axis."""
    x2 = x.reshape(x.shape[0], x.size // x.shape[0])
    out = empty((inds.size, x2.shape[1]), x.dtype)
    _launch(_take_rows_kernel, out.size, x2, _int64(inds), out)
    return out.reshape((inds.size,) + tuple(x.shape[1:]))


@_kernel("F2", "I1", "F2")
def _add_rows_at_kernel(target, inds, rows):
    k = cuda.grid(1)
    if k < target.size:  # one thread per element of target: repeated indices need no atomics
        t, col = k // target.shape[1], k % target.shape[1]
        total = target[t, col]
        for r in range(inds.size):  # in the order of r, as np.add.at
            if inds[r] == t:
                total += rows[r, col]
        target[t, col] = total


def add_rows_at(target, inds, rows):
    """``np.add.at(target, inds, rows)`` in place."""
    width = target.size // target.shape[0]
    _launch(_add_rows_at_kernel, target.size, target.reshape(target.shape[0], width),
            _int64(inds), rows.reshape(rows.shape[0], width))


@_kernel("F2", "I1", "I1", "F1", "F1")
def _mined_grad_kernel(grad, p_inds, n_inds, grad_ap, grad_an):
    a = cuda.grid(1)
    if a < grad.shape[0]:  # one thread per anchor row: no races
        grad[a, p_inds[a]] += grad_ap[a]
        grad[a, n_inds[a]] += grad_an[a]


def mined_grad(shape, dtype, p_inds, n_inds, grad_ap, grad_an):
    grad = zeros(shape, dtype)
    _launch(_mined_grad_kernel, shape[0], grad, _int64(p_inds), _int64(n_inds), grad_ap,
            grad_an)
    return grad


# ----------------------------------------------------------------------------- formula 2
@_kernel("F4", "F4", "i", "i", "F2")
def _shortest_kernel(d, table, q0, g0, out):
    """Formula 2 of pair ``(b, p)`` of ``d [B, m, n, P]`` into ``out[q0 + b, g0 + p]``.

    ``table`` is ``[B, R, n, P]`` with ``R = 2`` (rolling rows) or ``d`` itself (in place).
    """
    k = cuda.grid(1)
    if k < d.shape[0] * d.shape[3]:
        b, p = k // d.shape[3], k % d.shape[3]
        m, n = d.shape[1], d.shape[2]
        dp_forward(d[b], m, n, p, 1, table[b, :, :, p:p + 1])
        out[q0 + b, g0 + p] = table[b, (m - 1) % table.shape[1], n - 1, p]


@_kernel("F4", "F2", "i", "i")
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
            dp_forward(table[b], table.shape[1], table.shape[2], p, 1, table[b, :, :, p:p + 1])


@_kernel("F4", "F2", "i", "i", "f", "F4")
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
        dp_backward(table[b, :, :, p:p + 1], grad_out[q0 + b, g0:], half, m, n, p, 1, grad[b])


def _shortest_vjp(table, grad_out, q0, g0, grad):
    """The reverse pass of formula 2 on ``table`` (overwritten) into ``grad`` (zeros)."""
    pairs = table.shape[0] * table.shape[3]
    _launch(_shortest_table_kernel, pairs, table, grad_out, q0, g0)
    _launch(_shortest_vjp_kernel, pairs, table, grad_out, q0, g0, _consts(table.dtype)[0], grad)


def shortest_dist(dist_mat):
    m, n = dist_mat.shape[:2]
    pairs = dist_mat.size // (m * n)
    d = dist_mat.reshape(1, m, n, pairs)
    out = empty((1, pairs), d.dtype)
    _launch(_shortest_kernel, pairs, d, empty((1, 2, n, pairs), d.dtype), 0, 0, out)
    return out.reshape(tuple(dist_mat.shape[2:]))


def shortest_dist_vjp(dist_mat, grad_out):
    m, n = dist_mat.shape[:2]
    pairs = dist_mat.size // (m * n)
    d = dist_mat.reshape(1, m, n, pairs)
    table = empty(d.shape, d.dtype)
    table.copy_to_device(d, stream=_gpu_context.current().stream)  # overwritten in place
    grad = zeros(d.shape, d.dtype)
    _shortest_vjp(table, grad_out.reshape(1, pairs), 0, 0, grad)
    return grad.reshape(tuple(dist_mat.shape))


# ------------------------------------------------------------------ normalize, formula 1
@_kernel("F3", "f", "F3")
def _normalize_kernel(x, eps, out):
    k = cuda.grid(1)
    if k < x.shape[0] * x.shape[2]:
        o, c = k // x.shape[2], k % x.shape[2]
        scale, norm = _scaled_norm(x, o, c, eps)  # no overflow, as cpu.py
        denom = norm + eps / scale
        for a in range(x.shape[1]):
            out[o, a, c] = (x[o, a, c] / scale) / denom


@_kernel("F3", "F3", "f", "F3")
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


@_kernel("F1", "f", "F1")
def _stripe_kernel(e, half, out):
    k = cuda.grid(1)
    if k < e.size:
        out[k] = math.tanh(e[k] * half)


@_kernel("F1", "F1", "f", "F1")
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


# --------------------------------------------------------- gathering gradients of rows
@_device
def _sq_dist(x, r, i, y, s, j):
    """``|x[r, i] - y[s, j]|^2`` from explicit differences (no cancellation, as the oracle)."""
    diff = x[r, i, 0] - y[s, j, 0]
    total = diff * diff
    for f in range(1, x.shape[2]):
        diff = x[r, i, f] - y[s, j, f]
        total += diff * diff
    return total


@_kernel("F3", "F3", "F4", "i", "i", "b", "F3")
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
        r, i, f = _unravel(k, m, dim)
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


@_kernel("F3", "F3", "F4", "i", "i", "b", "F3")
def _pull_y_kernel(x, y, coef, q0, g0, paired, grad_y):
    """``grad_y[s, j] += sum of coef * (y[s, j] - x[r, i])``: the mirror of ``_pull_x_kernel``."""
    pairs = coef.shape[3]
    m, n, dim = x.shape[1], y.shape[1], y.shape[2]
    k = cuda.grid(1)
    if k < pairs * n * dim:
        p, j, f = _unravel(k, n, dim)
        v = y[g0 + p, j, f]
        total = v - v
        for b in range(coef.shape[0]):
            row = p if paired else q0 + b
            for i in range(m):
                c = coef[b, i, j, p]
                if c != 0:
                    total += c * (v - x[row, i, f])
        grad_y[g0 + p, j, f] += total


def _pull(x, y, coef, q0, g0, paired, grad_x, grad_y):
    rows = coef.shape[3] if paired else coef.shape[0]
    _launch(_pull_x_kernel, rows * x.shape[1] * x.shape[2], x, y, coef, q0, g0, paired, grad_x)
    _launch(_pull_y_kernel, coef.shape[3] * y.shape[1] * y.shape[2], x, y, coef, q0, g0,
            paired, grad_y)


# ------------------------------------------------------------------ Euclidean distances
@_kernel("F3", "F3", "f", "F3")
def _euclid_kernel(x, y, clamp, out):
    k = cuda.grid(1)
    if k < out.size:
        b, i, j = _unravel(k, out.shape[1], out.shape[2])
        out[b, i, j] = math.sqrt(_clamped(_sq_dist(x, b, i, y, b, j), clamp))


@_kernel("F3", "F3", "F3", "f", "F4")
def _euclid_coef_kernel(x, y, grad_out, clamp, coef):
    """``coef[0, i, j, b]``: ``grad / dist`` where the clamp is inactive, else 0."""
    k = cuda.grid(1)
    if k < grad_out.size:
        b, i, j = _unravel(k, grad_out.shape[1], grad_out.shape[2])
        c = clamp - clamp
        g = grad_out[b, i, j]
        if g != 0:
            sq = _sq_dist(x, b, i, y, b, j)
            if sq >= clamp:
                c = g / math.sqrt(sq)
        coef[0, i, j, b] = c


def batch_euclidean_dist(x, y):
    out = empty((x.shape[0], x.shape[1], y.shape[1]), x.dtype)
    _launch(_euclid_kernel, out.size, x, y, _consts(x.dtype)[1], out)
    return out


def batch_euclidean_dist_vjp(x, y, grad_out):
    coef = empty((1, x.shape[1], y.shape[1], x.shape[0]), x.dtype)
    _launch(_euclid_coef_kernel, grad_out.size, x, y, grad_out, _consts(x.dtype)[1], coef)
    grad_x, grad_y = zeros(x.shape, x.dtype), zeros(y.shape, y.dtype)
    _pull(x, y, coef, 0, 0, True, grad_x, grad_y)
    return grad_x, grad_y


def _batched(a):
    return a.reshape((1,) + tuple(a.shape))


def euclidean_dist(x, y):
    return batch_euclidean_dist(_batched(x), _batched(y)).reshape((x.shape[0], y.shape[0]))


def euclidean_dist_vjp(x, y, grad_out):
    grad_x, grad_y = batch_euclidean_dist_vjp(_batched(x), _batched(y), _batched(grad_out))
    return grad_x.reshape(tuple(x.shape)), grad_y.reshape(tuple(y.shape))


# -------------------------------------------------- local distances: stripe products
@_kernel("F2", "F1")
def _sq_norms_kernel(rows, out):
    r = cuda.grid(1)
    if r < rows.shape[0]:
        total = rows[r, 0] * rows[r, 0]
        for f in range(1, rows.shape[1]):
            total += rows[r, f] * rows[r, f]
        out[r] = total


def _sq_norms(x):
    """``|x[r, i]|^2`` for features ``[R, m, d]``: shape ``[R, m]``."""
    out = empty((x.shape[0], x.shape[1]), x.dtype)
    _launch(_sq_norms_kernel, out.size, x.reshape(out.size, x.shape[2]), _flat(out))
    return out


@_kernel("F3", "F3", "F3")
def _products_kernel(a, b, out):
    """``out[k] = a[k] @ b[k].T``: the products when torch's cuBLAS is not at hand."""
    k = cuda.grid(1)
    if k < out.size:
        e, r, c = _unravel(k, out.shape[1], out.shape[2])
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
        _launch(_products_kernel, out.size, a, b, out)
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


@_kernel("F3", "i", "F3")
def _by_stripe_kernel(y, g0, out):
    """``out[j, g, f] = y[g0 + g, j, f]``: gallery stripes grouped by stripe for the products."""
    k = cuda.grid(1)
    if k < out.size:
        j, g, f = _unravel(k, out.shape[1], out.shape[2])
        out[j, g, f] = y[g0 + g, j, f]


@_kernel("F4", "F2", "F2", "F3", "F3", "i", "i", "f", "f", "b", "F4")
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
        b, i, rest = _unravel(k, d.shape[1], d.shape[2] * pairs)
        j, p = rest // pairs, rest % pairs
        if paired:
            dot, row = dots[p, i, j, 0], p
        else:
            dot, row = dots[b, i, j, p], q0 + b
        sq = xx[row, i] + yy[g0 + p, j] - (dot + dot)
        if math.isinf(sq) or math.isnan(sq):
            sq = _sq_dist(x, row, i, y, g0 + p, j)
        d[b, i, j, p] = _stripe(sq, half, clamp)


@_kernel("F3", "F3", "i", "i", "f", "f", "b", "F4")
def _path_coef_kernel(x, y, q0, g0, half, clamp, paired, flow):
    """Replace each cell's flow of formula 2 by its chain-rule coefficient, in place.

    Pairs as in ``_stripes_kernel``. Cells without flow (off the path) stay as they are,
    so the squared distance is computed on path cells only.
    """
    k = cuda.grid(1)
    if k < flow.size:
        pairs = flow.shape[3]
        b, i, rest = _unravel(k, flow.shape[1], flow.shape[2] * pairs)
        j, p = rest // pairs, rest % pairs
        w = flow[b, i, j, p]
        if w != 0:
            sq = _sq_dist(x, p if paired else q0 + b, i, y, g0 + p, j)
            flow[b, i, j, p] = _stripe_coef(sq, w, half, clamp)


def _pair_stripes(x, y, xx, yy):
    """Formula 1 of each aligned pair's stripes, laid out ``[1, m, n, N]``."""
    pairs, m, _ = x.shape
    n = y.shape[1]
    half, clamp, _ = _consts(x.dtype)
    dots = empty((pairs, m, n), x.dtype)
    _products(x, y, dots)
    d = empty((1, m, n, pairs), x.dtype)
    _launch(_stripes_kernel, d.size, dots.reshape(pairs, m, n, 1), xx, yy, x, y, 0, 0, half,
            clamp, True, d)
    return d


def _cross_stripes(x, y, by_stripe, xx, yy, q0, q1, g0):
    """Formula 1 of queries ``q0:q1`` against the gallery slice of ``y`` in ``by_stripe``
    ``[n, G, d]`` (from ``g0`` on), laid out ``[Q, m, n, G]``: the products, then formula 1
    in place."""
    m, dim = x.shape[1], x.shape[2]
    n, gallery = by_stripe.shape[0], by_stripe.shape[1]
    half, clamp, _ = _consts(x.dtype)
    d = empty((1, (q1 - q0) * m, n * gallery), x.dtype)
    _products(x[q0:q1].reshape(1, (q1 - q0) * m, dim), by_stripe.reshape(1, n * gallery, dim), d)
    d = d.reshape(q1 - q0, m, n, gallery)
    _launch(_stripes_kernel, d.size, d, xx, yy, x, y, q0, g0, half, clamp, False, d)
    return d


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


# ------------------------------------------------------------------- mining, triplet loss
@_kernel("F2", "I1", "F1", "F1", "I1", "I1")
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
    dist_ap, dist_an = empty((count,), dist_mat.dtype), empty((count,), dist_mat.dtype)
    p_inds, n_inds = empty((count,), np.int64), empty((count,), np.int64)
    _launch(_mine_kernel, count, dist_mat, _int64(labels), dist_ap, dist_an, p_inds, n_inds)
    return dist_ap, dist_an, p_inds, n_inds


@_kernel("F1", "F1", "f", "f", "b", "F1", "F1")
def _triplet_kernel(dist_ap, dist_an, margin, one, soft, losses, slopes):
    k = cuda.grid(1)
    if k < dist_ap.size:
        z = dist_ap[k] - dist_an[k]
        zero = one - one
        if soft:
            losses[k] = _softplus(z)
            slopes[k] = math.exp(-_softplus(-z))
        else:
            v = z + margin
            losses[k] = zero if v <= zero else v
            slopes[k] = one if v > zero else zero


def triplet_terms(dist_ap, dist_an, margin):
    dtype = np.dtype(dist_ap.dtype).type
    losses, slopes = empty(dist_ap.shape, dist_ap.dtype), empty(dist_ap.shape, dist_ap.dtype)
    _launch(_triplet_kernel, dist_ap.size, dist_ap, dist_an, dtype(0 if margin is None else margin),
            dtype(1), margin is None, losses, slopes)
    return losses, slopes


@_kernel("F1", "f", "F1")
def _mean_kernel(values, count, out):
    if cuda.grid(1) == 0:  # a short sequential sum: N is a batch size
        total = values[0]
        for k in range(1, values.size):
            total += values[k]
        out[0] = total / count  # count in the data's dtype: no float64 division


@_kernel("F1", "f", "F1")
def _scale_kernel(values, factor, out):
    k = cuda.grid(1)
    if k < values.size:
        out[k] = values[k] * factor


def mean(values):
    out = empty((1,), values.dtype)
    _launch(_mean_kernel, 1, values, np.dtype(values.dtype).type(values.size), out)
    return out.reshape(())


def scale(values, factor):
    """``values * factor`` with ``factor`` a host scalar."""
    out = empty(values.shape, values.dtype)
    _launch(_scale_kernel, values.size, values, np.dtype(values.dtype).type(factor), out)
    return out


def negate(values):
    return scale(values, -1)
