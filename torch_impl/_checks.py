"""Argument validation shared by every public function of :mod:`torch_impl`.

All checks live here so that each public function states its expectations in
one line and every message has the same shape::

    local_dist: x must have shape (M, m, d); got (32, 128)

Checks only look at metadata (type, dtype, shape), so they never synchronise a
CUDA device; the one exception is :func:`check_has_negative`, which has to
look at values.
"""

import numbers

import torch

_FLOAT_DTYPES = (torch.float32, torch.float64)
_HALF_DTYPES = (torch.float16, torch.bfloat16)


def _shape(t):
    return tuple(t.shape)


def _check_dense(fn, name, x):
    """A tensor with data in the strided layout: meta tensors have no values to
    compute with, and sparse ones no strides for the views used here."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{fn}: {name} must be a torch.Tensor; got {type(x).__name__}")
    if x.is_meta or x.layout != torch.strided:
        kind = "meta" if x.is_meta else str(x.layout)
        raise TypeError(
            f"{fn}: {name} must be a dense tensor with data; got a {kind} tensor")


def check_float_tensor(fn, name, x, dims=None, shape_text=None):
    """Check that ``x`` is a float32/float64 tensor with ``dims`` dimensions.

    ``dims`` is an int, or ``None`` for "at least one dimension is enough".
    ``shape_text`` spells the expected shape in messages, e.g. ``"(M, m, d)"``.
    Empty dimensions are rejected: every function here needs at least one
    element along each axis.
    """
    _check_dense(fn, name, x)
    if x.dtype not in _FLOAT_DTYPES:
        # Half precision only inside torch.autocast, which computes in float32.
        hint = ("; compute in float32: call .float() on it, or call inside "
                "torch.autocast") if x.dtype in _HALF_DTYPES else ""
        raise TypeError(
            f"{fn}: {name} must have dtype torch.float32 or torch.float64; "
            f"got {x.dtype}{hint}")
    if dims is not None and x.dim() != dims:
        raise ValueError(
            f"{fn}: {name} must have shape {shape_text}; got {_shape(x)}")
    if x.numel() == 0:
        raise ValueError(
            f"{fn}: {name} must not have an empty dimension; got {_shape(x)}")
    return x


def check_min_dims(fn, name, x, min_dims, shape_text):
    """Like :func:`check_float_tensor` but for "``min_dims`` or more" axes."""
    check_float_tensor(fn, name, x)
    if x.dim() < min_dims:
        raise ValueError(
            f"{fn}: {name} must have shape {shape_text}; got {_shape(x)}")
    return x


def check_feature_pair(fn, x, y, x_shape, y_shape, dims):
    """Check two feature tensors that are compared with each other.

    Both must be float tensors of rank ``dims`` with the same dtype, on the
    same device, and with the same feature length (last axis).
    """
    check_float_tensor(fn, "x", x, dims, x_shape)
    check_float_tensor(fn, "y", y, dims, y_shape)
    if x.dtype != y.dtype:
        raise TypeError(
            f"{fn}: x and y must have the same dtype; got {x.dtype} and "
            f"{y.dtype}")
    if x.device != y.device:
        raise ValueError(
            f"{fn}: x and y must be on the same device; got {x.device} and "
            f"{y.device}")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"{fn}: x and y must have the same feature length d; got "
            f"x {_shape(x)} and y {_shape(y)}")


def check_batch_pair(fn, x, y):
    """Batched pairs ``[N, m, d]``, ``[N, n, d]``: ``x[k]`` goes with ``y[k]``, so the first
    axes agree too."""
    check_feature_pair(fn, x, y, "(N, m, d)", "(N, n, d)", 3)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{fn}: x and y must have the same number of pairs N; got "
            f"x {_shape(x)} and y {_shape(y)}")


def _is_int(value):
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_axis(fn, x, axis):
    """``axis`` must be an int that indexes one of ``x``'s dimensions;
    returned as a Python int."""
    if not _is_int(axis):
        raise TypeError(f"{fn}: axis must be an int; got {type(axis).__name__}")
    if not -x.dim() <= axis < x.dim():
        raise ValueError(
            f"{fn}: axis must be in [{-x.dim()}, {x.dim()}) for x of shape "
            f"{_shape(x)}; got {axis}")
    return int(axis)


def check_labels(fn, labels, n, name="labels"):
    """``labels`` must be a 1-D integer tensor of length ``n``."""
    _check_dense(fn, name, labels)
    if labels.dtype.is_floating_point or labels.dtype.is_complex or \
            labels.dtype == torch.bool:
        raise TypeError(
            f"{fn}: {name} must have an integer dtype; got {labels.dtype}")
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(
            f"{fn}: {name} must have shape ({n},); got {_shape(labels)}")


def check_indices(fn, name, inds, n):
    """``inds`` must be a 1-D integer tensor of ``n`` indices into ``n`` rows.

    Any integer dtype, returned as ``torch.long``: torch indexes with int32 and
    int64 only, takes uint8 for a boolean mask and compares few unsigned
    dtypes.  A uint64 index beyond the int64 range wraps to a negative one and
    is refused.  The range check reads one boolean back from the device.
    """
    check_labels(fn, inds, n, name=name)
    as_long = inds.long()
    bad = (as_long < 0) | (as_long >= n)
    if bool(bad.any()):
        first = int(torch.nonzero(bad)[0, 0])
        raise ValueError(
            f"{fn}: {name} must hold indices in [0, {n}); got "
            f"{inds[first].item()} at position {first}")
    return as_long


def check_square(fn, name, x):
    """A pairwise distance matrix among the same N samples: shape (N, N)."""
    check_float_tensor(fn, name, x, 2, "(N, N)")
    if x.shape[0] != x.shape[1]:
        raise ValueError(
            f"{fn}: {name} must have shape (N, N); got {_shape(x)}")


def check_same_shape(fn, a, b, name_a, name_b):
    """Two tensors that are combined element by element."""
    if a.shape != b.shape:
        raise ValueError(
            f"{fn}: {name_a} and {name_b} must have the same shape; got "
            f"{_shape(a)} and {_shape(b)}")


def check_has_negative(fn, has_negative):
    """Every anchor needs a sample with another label.

    This reads one boolean back from the device (a single synchronisation).
    """
    if not bool(has_negative.all()):
        first = int(torch.nonzero(~has_negative)[0, 0])
        raise ValueError(
            f"{fn}: labels must give every anchor a negative (a sample with "
            f"another label); anchor {first} has none")


def check_chunk_size(fn, chunk_size):
    """``chunk_size`` is ``None`` (automatic) or a positive int; returned as a
    Python int."""
    if chunk_size is None:
        return None
    if not _is_int(chunk_size):
        raise TypeError(
            f"{fn}: chunk_size must be a positive int or None; got "
            f"{type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(
            f"{fn}: chunk_size must be a positive int or None; got {chunk_size}")
    return int(chunk_size)


def check_progress(fn, progress):
    """``progress`` is a bool (a string such as ``"no"`` would count as true)."""
    if not isinstance(progress, bool):
        raise TypeError(
            f"{fn}: progress must be a bool; got {type(progress).__name__}")
