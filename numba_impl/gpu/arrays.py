"""Array helpers the losses compose, as kernels (``cpu/arrays.py`` has the same names)."""
import numpy as np
from numba import cuda

from . import context
from .context import empty
from .launch import flat, int64, kernel, launch


@kernel("F1", "f")
def _fill_kernel(out, value):
    k = cuda.grid(1)
    if k < out.size:
        out[k] = value


def zeros(shape, dtype):
    out = empty(shape, dtype)
    launch(_fill_kernel, out.size, flat(out), np.dtype(dtype).type(0))
    return out


@kernel("F1", "F1", "F1")
def _add_kernel(a, b, out):
    k = cuda.grid(1)
    if k < out.size:
        out[k] = a[k] + b[k]


def add(a, b):
    out = empty(a.shape, a.dtype)
    launch(_add_kernel, a.size, flat(a), flat(b), flat(out))
    return out


@kernel("F2", "I1", "F2")
def _take_rows_kernel(x, inds, out):
    k = cuda.grid(1)
    if k < out.size:
        row, col = k // x.shape[1], k % x.shape[1]
        out[row, col] = x[inds[row], col]


def take_rows(x, inds):
    """``x[inds]`` along the first axis."""
    x2 = x.reshape(x.shape[0], x.size // x.shape[0])
    out = empty((inds.size, x2.shape[1]), x.dtype)
    launch(_take_rows_kernel, out.size, x2, int64(inds), out)
    return out.reshape((inds.size,) + tuple(x.shape[1:]))


@kernel("F2", "I1", "F2")
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
    launch(_add_rows_at_kernel, target.size, target.reshape(target.shape[0], width),
           int64(inds), rows.reshape(rows.shape[0], width))


@kernel("F1", "f", "F1")
def _mean_kernel(values, count, out):
    if cuda.grid(1) == 0:  # a short sequential sum: N is a batch size
        total = values[0]
        for k in range(1, values.size):
            total += values[k]
        out[0] = total / count  # count in the data's dtype: no float64 division


@kernel("F1", "f", "F1")
def _scale_kernel(values, factor, out):
    k = cuda.grid(1)
    if k < values.size:
        out[k] = values[k] * factor


def mean(values):
    out = empty((1,), values.dtype)
    launch(_mean_kernel, 1, values, np.dtype(values.dtype).type(values.size), out)
    return out.reshape(())


def scale(values, factor):
    """``values * factor`` with ``factor`` a host scalar."""
    out = empty(values.shape, values.dtype)
    launch(_scale_kernel, values.size, values, np.dtype(values.dtype).type(factor), out)
    return out


def negate(values):
    return scale(values, -1)


def to_host(array):
    """A NumPy copy, after the work queued on this thread's stream."""
    return context.to_host(array)


def from_host(array):
    """A device copy of a NumPy array, on this thread's stream."""
    return context.to_device(array)
