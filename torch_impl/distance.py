"""Feature normalisation, Euclidean distances and formula 1 (stripe distance).

Distances use the expansion ``||a||^2 + ||b||^2 - 2 a.b`` so that the bulk of
the work is one matrix product; its cancellation error is what the tests'
error model allows for.  Where the expansion overflows (huge or infinite
features) the entries it left inf or NaN are recomputed from explicit
differences, so results are the oracle's, NaN only where it has NaN.  The ``1e-12`` clamp under the square root keeps
identical vectors ``1e-6`` apart and makes the gradient zero there (the
``clamp`` backward passes nothing below the bound).
"""

import torch

from . import _checks
from ._autocast import float32_under_autocast

NORM_EPS = 1e-12       # added to the norm in normalize
SQ_DIST_CLAMP = 1e-12  # lower bound of the squared distance


@float32_under_autocast
def normalize(x, axis=-1):
    """Scale ``x`` to unit L2 norm along ``axis``.

    Parameters
    ----------
    x : Tensor, any shape
        float32 or float64.
    axis : int, default -1
        The axis along which the norm is taken.

    Returns
    -------
    Tensor, same shape as x
        ``x / (||x||_2 + 1e-12)``, with the norm computed without overflow
        (vectors of any finite size give unit vectors); a vector holding
        ``±inf`` gives 0 at its finite entries and NaN at its infinite ones.

    Examples
    --------
    >>> import torch, torch_impl
    >>> torch_impl.normalize(torch.tensor([[3.0, 4.0]]))
    tensor([[0.6000, 0.8000]])
    >>> torch_impl.normalize(torch.tensor([[3e30, 4e30]]))  # |x|^2 overflows float32
    tensor([[0.6000, 0.8000]])
    """
    _checks.check_float_tensor("normalize", "x", x)
    axis = _checks.check_axis("normalize", x, axis)
    scale = _overflow_scale(x, axis)
    x = x / scale  # exact where scale is 1: the usual case computes x / (|x| + eps)
    norm = torch.linalg.vector_norm(x, ord=2, dim=axis, keepdim=True)
    return x / (norm + NORM_EPS / scale)


def _overflow_scale(x, axis):
    """Per vector along ``axis``: 1, or the largest ``|x|`` where ``|x|^2`` overflows.

    Dividing such a vector by its largest entry first keeps its norm finite; a vector
    holding ``±inf`` keeps 1 (its norm is inf). The scale is a constant to autograd:
    ``(x / c) / (|x / c| + eps / c)`` is the same function of ``x`` for every ``c > 0``.
    No host synchronisation: on a GPU the choice stays on the device.
    """
    with torch.no_grad():
        norm = torch.linalg.vector_norm(x, ord=2, dim=axis, keepdim=True)
        largest = x.abs().amax(dim=axis, keepdim=True)
        rescale = torch.isinf(norm) & torch.isfinite(largest)
        return torch.where(rescale, largest, torch.ones_like(largest))


def _squared_norms(x):
    return (x * x).sum(dim=-1)


def _expansion_is_safe(xx, yy):
    """True when ``|x|^2 + |y|^2 - 2 x.y`` cannot overflow for these squared
    norms: ``|2 x.y| <= |x|^2 + |y|^2`` keeps every term and the result below
    ``4 (max xx + max yy)``.  False for inf or NaN norms.  Two scalars come
    to the host (on a GPU, a synchronisation); this was the cheapest form on
    the CPU (about 3 us in a training step)."""
    top = xx.detach().max().item() + yy.detach().max().item()  # float64: exact
    return top <= torch.finfo(xx.dtype).max / 4


def _redo_overflowed(sq, x, y, scale=1.0):
    """``sq`` (``scale`` times the expanded squared distances between the rows
    of ``x [..., m, d]`` and ``y [..., n, d]``) with its inf and NaN entries
    recomputed from explicit differences, as the oracle computes them.

    A non-finite entry means an overflow (or ``inf - inf``) in some
    intermediate; finite entries had none and stay.  Out of place, so
    autograd sees the explicit form at the recomputed entries.
    """
    where = (~torch.isfinite(sq)).nonzero(as_tuple=True)
    diff = x[where[:-1]] - y[where[:-2] + where[-1:]]
    return sq.index_put(where, (diff * diff).sum(dim=-1) * scale)


@float32_under_autocast
def euclidean_dist(x, y):
    """Pairwise Euclidean distances between the rows of ``x`` and ``y``.

    Parameters
    ----------
    x : Tensor, shape (m, d)
    y : Tensor, shape (n, d)
        Same dtype (float32 or float64) and device as ``x``.

    Returns
    -------
    Tensor, shape (m, n)
        ``sqrt(max(||x_i - y_j||^2, 1e-12))``.

    Examples
    --------
    >>> import torch, torch_impl
    >>> torch_impl.euclidean_dist(torch.tensor([[0.0, 0.0]]),
    ...                           torch.tensor([[3.0, 4.0]]))
    tensor([[5.]])
    """
    _checks.check_feature_pair("euclidean_dist", x, y, "(m, d)", "(n, d)", 2)
    xx, yy = _squared_norms(x), _squared_norms(y)
    sq = torch.addmm(yy.unsqueeze(0), x, y.t(), alpha=-2) + xx.unsqueeze(1)
    if not _expansion_is_safe(xx, yy):
        sq = _redo_overflowed(sq, x, y)
    return sq.clamp(min=SQ_DIST_CLAMP).sqrt()


@float32_under_autocast
def batch_euclidean_dist(x, y):
    """Euclidean distances within each pair ``(x[k], y[k])``.

    Parameters
    ----------
    x : Tensor, shape (N, m, d)
    y : Tensor, shape (N, n, d)

    Returns
    -------
    Tensor, shape (N, m, n)
        ``out[k, i, j] = sqrt(max(||x[k, i] - y[k, j]||^2, 1e-12))``.

    Examples
    --------
    >>> import torch, torch_impl
    >>> x = torch.zeros(1, 1, 2)
    >>> y = torch.tensor([[[3.0, 4.0], [0.0, 1.0]]])
    >>> torch_impl.batch_euclidean_dist(x, y)
    tensor([[[5., 1.]]])
    """
    fn = "batch_euclidean_dist"
    _checks.check_batch_pair(fn, x, y)
    return _batch_sq_dist(x, y).clamp(min=SQ_DIST_CLAMP).sqrt()


def _batch_sq_dist(x, y):
    """Squared distances ``[N, m, n]`` by one batched matrix product (explicit
    differences where it overflows)."""
    xx, yy = _squared_norms(x), _squared_norms(y)
    sq = torch.baddbmm(yy.unsqueeze(1), x, y.transpose(1, 2), alpha=-2)
    sq = sq + xx.unsqueeze(2)
    return sq if _expansion_is_safe(xx, yy) else _redo_overflowed(sq, x, y)


@float32_under_autocast
def stripe_dist(euclid):
    """Formula 1: ``(e^x - 1) / (e^x + 1)``, computed as ``tanh(x / 2)``.

    The ``tanh`` form cannot overflow; the literal quotient is NaN in float32
    once ``x > 88``.

    Parameters
    ----------
    euclid : Tensor, any shape
        Euclidean distances, float32 or float64.

    Returns
    -------
    Tensor, same shape
        Values in ``[0, 1)`` for non-negative input.

    Examples
    --------
    >>> import torch, torch_impl
    >>> torch_impl.stripe_dist(torch.tensor([0.0, 200.0]))
    tensor([0., 1.])
    """
    _checks.check_float_tensor("stripe_dist", "euclid", euclid)
    return torch.tanh(euclid * 0.5)
