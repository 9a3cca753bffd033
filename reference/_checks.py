"""Argument checking for the oracle: one place, one message format.

Every message starts with the public function's name, names the argument and says
what was expected and what came, e.g.
``local_dist: x must have shape (M, m, d); got (32, 128)``.
"""
import numbers

import numpy as np

from alignedreid_dp import arguments

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: The ndarray types taken as they are. Other subclasses are refused by name: arithmetic
#: on ``np.matrix`` stays two-dimensional and means matrix products, and a masked array's
#: mask would silently turn results into ``np.ma.masked``.
PLAIN_ARRAYS = (np.ndarray, np.memmap)


def refuse_subclass(func, name, value):
    """Raise ``TypeError`` for an ndarray subclass not in ``PLAIN_ARRAYS``, naming its type."""
    if isinstance(value, np.ndarray) and type(value) not in PLAIN_ARRAYS:
        raise TypeError(
            f"{func}: {name} must be a plain numpy.ndarray, not a subclass; got "
            f"{_describe(value)} (convert with np.asarray, after deciding what any masked "
            "entries should be)"
        )


def float_array(func, name, value, shape_doc=None, ndim=None, min_ndim=0):
    """Return ``value`` after checking it is a non-empty float32/float64 ndarray.

    ``ndim`` is an exact rank (or a tuple of allowed ranks); ``min_ndim`` a lower bound.
    ``shape_doc`` is how the expected shape is written in messages, e.g. ``"(M, m, d)"``.
    """
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{func}: {name} must be a numpy.ndarray; got {_describe(value)}")
    refuse_subclass(func, name, value)
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{func}: {name} must have dtype float32 or float64; got {value.dtype}")
    ranks = (ndim,) if isinstance(ndim, int) else ndim
    if (ranks is not None and value.ndim not in ranks) or value.ndim < min_ndim:
        expected = shape_doc or f"at least {min_ndim} dimensions"
        raise ValueError(f"{func}: {name} must have shape {expected}; got {value.shape}")
    if 0 in value.shape:
        raise ValueError(f"{func}: {name} must not have an empty dimension; got shape {value.shape}")
    return value


def same_dtype(func, name, value, other_name, other):
    """Refuse mixed precision: results keep the input dtype, so inputs must agree."""
    if value.dtype != other.dtype:
        raise TypeError(
            f"{func}: {name} must have the same dtype as {other_name} ({other.dtype}); got {value.dtype}"
        )


def same_size(func, name, value, axis, expected, what):
    """Check ``value.shape[axis] == expected``; ``what`` says what the size must match."""
    if value.shape[axis] != expected:
        raise ValueError(
            f"{func}: {name} must have {expected} along axis {axis % value.ndim} ({what}); "
            f"got shape {value.shape}"
        )


def feature_pair(func, x, y, x_doc, y_doc, rank):
    """Check the two stripe-feature arrays of a distance: rank, dtype and feature length."""
    float_array(func, "x", x, x_doc, ndim=rank)
    float_array(func, "y", y, y_doc, ndim=rank)
    same_dtype(func, "y", y, "x", x)
    same_size(func, "y", y, -1, x.shape[-1], "the feature length of x")
    return x, y


def batch_pair(func, x, y):
    """Check the two arrays of aligned pairs ``[N, m, d]``, ``[N, n, d]``."""
    feature_pair(func, x, y, "(N, m, d)", "(N, n, d)", rank=3)
    same_size(func, "y", y, 0, x.shape[0], "the number of pairs in x")


def labels_array(func, labels, n):
    """Check identity labels: a 1-D integer ndarray with one label per sample."""
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"{func}: labels must be a numpy.ndarray; got {_describe(labels)}")
    refuse_subclass(func, "labels", labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{func}: labels must have an integer dtype; got {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"{func}: labels must have shape ({n},), one per sample; got {labels.shape}")
    return labels


def index_array(func, name, inds, n):
    """Check sample indices: a 1-D integer ndarray of length ``n`` with values in ``[0, n)``.

    Any integer dtype; a boolean array is refused, not taken for a mask.
    """
    refuse_subclass(func, name, inds)
    if not isinstance(inds, np.ndarray):
        raise TypeError(f"{func}: {name} must be a numpy.ndarray; got {_describe(inds)}")
    if inds.dtype.kind not in "iu":
        raise TypeError(f"{func}: {name} must have an integer dtype; got {inds.dtype}")
    if inds.shape != (n,):
        raise ValueError(f"{func}: {name} must have shape ({n},); got {inds.shape}")
    if inds.size and (inds.min() < 0 or inds.max() >= n):
        raise ValueError(f"{func}: {name} must hold indices in [0, {n}); got values in "
                         f"[{inds.min()}, {inds.max()}]")
    return inds


def grad_like(func, grad_out, shape, dtype):
    """Check an output gradient: same shape and dtype as the output it belongs to."""
    if shape == () and arguments.is_real_number(grad_out):
        grad_out = arguments.number_as(grad_out, dtype)
    if not isinstance(grad_out, np.ndarray):
        raise TypeError(f"{func}: grad_out must be a numpy.ndarray; got {_describe(grad_out)}")
    refuse_subclass(func, "grad_out", grad_out)
    if grad_out.shape != tuple(shape):
        raise ValueError(f"{func}: grad_out must have shape {tuple(shape)}; got {grad_out.shape}")
    if grad_out.dtype != dtype:
        raise TypeError(f"{func}: grad_out must have dtype {dtype}; got {grad_out.dtype}")
    return grad_out


def axis_of(func, axis, ndim):
    """Check an axis argument against an array's rank."""
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"{func}: axis must be an int; got {_describe(axis)}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{func}: axis must be in [{-ndim}, {ndim}); got {axis}")
    return int(axis)


def chunk_size(func, value):
    """``None`` or a positive int: the number of query images per chunk of ``local_dist``."""
    if value is None:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{func}: chunk_size must be a positive int or None; got {_describe(value)}")
    if value < 1:
        raise ValueError(f"{func}: chunk_size must be at least 1; got {value}")
    return int(value)


def progress(func, value):
    """A bool: whether ``local_dist`` reports its progress on stderr."""
    if not isinstance(value, bool):
        raise TypeError(f"{func}: progress must be a bool; got {_describe(value)}")
    return value


def _describe(value):
    return f"{type(value).__module__}.{type(value).__qualname__}"
