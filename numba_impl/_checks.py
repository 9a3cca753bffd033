"""Argument checking for numba_impl: one place, one message format.

Every message starts with the public function's name, names the argument and says what
was expected and what came, e.g. ``local_dist: x must have shape (M, m, d); got (32, 128)``.

The target is chosen by the input: a ``numpy.ndarray`` runs the ``@njit`` kernels, a
GPU array runs the ``@cuda.jit`` kernels. A GPU array is a Numba device array (also the
simulator's ``FakeCUDAArray``, which has no ``__cuda_array_interface__``) or anything
exposing ``__cuda_array_interface__`` (CuPy, torch CUDA tensors), wrapped without a copy.
The GPU kernels take C-contiguous arrays only: others are refused here (torch tensors
are made contiguous before, by ``_dispatch.follows_torch``).
"""
import numbers

import numpy as np

from alignedreid_dp import arguments

from ._dispatch import CPU, GPU, backend

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: The ndarray types taken as they are. Other subclasses are refused by name: the kernels
#: would see ``np.matrix`` as a plain array of another shape and ignore a masked array's
#: mask.
PLAIN_ARRAYS = (np.ndarray, np.memmap)


def _describe(value):
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _cuda():
    from numba import cuda  # imported lazily: CPU-only use never touches CUDA

    return cuda


def is_gpu_array(value):
    """True for Numba device arrays and objects exposing ``__cuda_array_interface__``."""
    if isinstance(value, np.ndarray) or value is None or np.isscalar(value):
        return False
    if hasattr(value, "__cuda_array_interface__"):
        return True
    cuda = _cuda()
    return cuda.devicearray.is_cuda_ndarray(value)


def as_target(func, name, value):
    """Return ``(target, array)``: ``CPU`` for an ndarray, ``GPU`` (a Numba device array) otherwise."""
    if isinstance(value, np.ndarray):
        if type(value) not in PLAIN_ARRAYS:
            raise TypeError(
                f"{func}: {name} must be a numpy.ndarray or a CUDA device array, not an ndarray "
                f"subclass; got {_describe(value)} (convert with np.asarray, after deciding "
                "what any masked entries should be)"
            )
        return CPU, value
    if is_gpu_array(value):
        cuda = _cuda()
        if not cuda.devicearray.is_cuda_ndarray(value):
            value = cuda.as_cuda_array(value)  # zero-copy view of CuPy / torch memory
        if not value.is_c_contiguous():
            raise ValueError(
                f"{func}: {name} must be C-contiguous on the GPU; got shape "
                f"{tuple(value.shape)} with strides {tuple(value.strides)} (copy it first, "
                "e.g. cupy.ascontiguousarray)")
        return GPU, value
    raise TypeError(
        f"{func}: {name} must be a numpy.ndarray or a CUDA device array; got {_describe(value)}"
    )


def float_array(func, name, value, shape_doc=None, ndim=None, min_ndim=0):
    """Return ``(target, array)`` after checking a non-empty float32/float64 array.

    ``ndim`` is an exact rank (or a tuple of allowed ranks); ``min_ndim`` a lower bound.
    ``shape_doc`` is how the expected shape is written in messages, e.g. ``"(M, m, d)"``.
    """
    target, value = as_target(func, name, value)
    if np.dtype(value.dtype) not in FLOAT_DTYPES:
        raise TypeError(f"{func}: {name} must have dtype float32 or float64; got {value.dtype}")
    ranks = (ndim,) if isinstance(ndim, int) else ndim
    if (ranks is not None and value.ndim not in ranks) or value.ndim < min_ndim:
        expected = shape_doc or f"at least {min_ndim} dimensions"
        raise ValueError(f"{func}: {name} must have shape {expected}; got {tuple(value.shape)}")
    if 0 in value.shape:
        raise ValueError(
            f"{func}: {name} must not have an empty dimension; got shape {tuple(value.shape)}"
        )
    return target, value


def same_target(func, name, target, other_name, other_target):
    """Refuse mixing host and device arrays in one call."""
    if target != other_target:
        raise TypeError(
            f"{func}: {name} must be on the same device as {other_name} ({other_target}); got {target}"
        )


def same_dtype(func, name, value, other_name, other):
    """Refuse mixed precision: results keep the input dtype, so inputs must agree."""
    if value.dtype != other.dtype:
        raise TypeError(
            f"{func}: {name} must have the same dtype as {other_name} ({other.dtype}); got {value.dtype}"
        )


def same_size(func, name, value, axis, expected, what):
    """Check ``value.shape[axis] == expected``; ``what`` says what the size must match."""
    if tuple(value.shape)[axis] != expected:  # tuple(): the simulator's shapes lack [-1]
        raise ValueError(
            f"{func}: {name} must have {expected} along axis {axis % value.ndim} ({what}); "
            f"got shape {tuple(value.shape)}"
        )


def feature_pair(func, x, y, x_doc, y_doc, rank):
    """Check the two stripe-feature arrays of a distance; return ``(target, x, y)``."""
    target, x = float_array(func, "x", x, x_doc, ndim=rank)
    y_target, y = float_array(func, "y", y, y_doc, ndim=rank)
    same_target(func, "y", y_target, "x", target)
    same_dtype(func, "y", y, "x", x)
    same_size(func, "y", y, -1, tuple(x.shape)[-1], "the feature length of x")
    return target, x, y


def batch_pair(func, x, y):
    """Check the two arrays of aligned pairs ``[N, m, d]``, ``[N, n, d]``; return ``(target, x, y)``."""
    target, x, y = feature_pair(func, x, y, "(N, m, d)", "(N, n, d)", rank=3)
    same_size(func, "y", y, 0, x.shape[0], "the batch size of x")
    return target, x, y


def _integer_vector(func, name, value, target, n):
    value_target, value = as_target(func, name, value)
    if np.dtype(value.dtype).kind not in "iu":
        raise TypeError(f"{func}: {name} must have an integer dtype; got {value.dtype}")
    if tuple(value.shape) != (n,):
        raise ValueError(f"{func}: {name} must have shape ({n},); got {tuple(value.shape)}")
    if value_target != target:  # host labels for device distances (or back): move them
        value = backend(target).from_host(backend(value_target).to_host(value))
    return value


def labels_array(func, labels, n, target=CPU):
    """Check identity labels: a 1-D integer array with one label per sample."""
    return _integer_vector(func, "labels", labels, target, n)


def index_array(func, name, inds, n, target=CPU):
    """Check sample indices: a 1-D integer array of length ``n`` with values in ``[0, n)``."""
    inds = _integer_vector(func, name, inds, target, n)
    host = backend(target).to_host(inds)
    if host.min() < 0 or host.max() >= n:
        raise ValueError(
            f"{func}: {name} must hold indices in [0, {n}); got values in [{host.min()}, {host.max()}]"
        )
    return inds


def grad_like(func, grad_out, shape, dtype, target=CPU):
    """Check an output gradient: same shape, dtype and device as the output it belongs to."""
    shape = tuple(shape)
    if shape == () and arguments.is_real_number(grad_out) and not is_gpu_array(grad_out):
        return backend(target).from_host(arguments.number_as(grad_out, dtype))
    grad_target, grad_out = as_target(func, "grad_out", grad_out)
    same_target(func, "grad_out", grad_target, "the input", target)
    if tuple(grad_out.shape) != shape:
        raise ValueError(f"{func}: grad_out must have shape {shape}; got {tuple(grad_out.shape)}")
    if grad_out.dtype != dtype:
        raise TypeError(f"{func}: grad_out must have dtype {dtype}; got {grad_out.dtype}")
    return grad_out


def axis_of(func, axis, ndim):
    """Check an axis argument against an array's rank; return it as a non-negative int."""
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"{func}: axis must be an int; got {_describe(axis)}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{func}: axis must be in [{-ndim}, {ndim}); got {axis}")
    return int(axis) % ndim


def progress(func, value):
    """A bool: whether ``local_dist`` reports its progress on stderr."""
    if not isinstance(value, bool):
        raise TypeError(f"{func}: progress must be a bool; got {_describe(value)}")
    return value


def chunk_size(func, value):
    """``None`` or a positive int: the number of query images per chunk of ``local_dist``."""
    if value is None:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{func}: chunk_size must be a positive int or None; got {_describe(value)}")
    if value < 1:
        raise ValueError(f"{func}: chunk_size must be at least 1; got {value}")
    return int(value)
