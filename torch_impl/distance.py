"""Feature normalisation, Euclidean distances and formula 1 (stripe distance).

Distances use the expansion ``||a||^2 + ||b||^2 - 2 a.b`` so that the bulk of
the work is one matrix product; its cancellation error is what the tests'
error model allows for.  The ``1e-12`` clamp under the square root keeps
identical vectors ``1e-6`` apart and makes the gradient zero there (the
``clamp`` backward passes nothing below the bound).
"""

import torch

from . import _checks
from ._autocast import float32_under_autocast

EPS_NORM = 1e-12  # added to the norm in normalize
EPS_SQ = 1e-12    # lower bound of the squared distance


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
        ``x / (||x||_2 + 1e-12)``.

    Examples
    --------
    >>> import torch, torch_impl
    >>> torch_impl.normalize(torch.tensor([[3.0, 4.0]]))
    tensor([[0.6000, 0.8000]])
    """
    _checks.check_float_tensor("normalize", "x", x)
    axis = _checks.check_axis("normalize", x, axis)
    norm = torch.linalg.vector_norm(x, ord=2, dim=axis, keepdim=True)
    return x / (norm + EPS_NORM)


def _squared_norms(x):
    return (x * x).sum(dim=-1)


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
    _checks.check_pair("euclidean_dist", x, y, "(m, d)", "(n, d)", 2)
    sq = torch.addmm(_squared_norms(y).unsqueeze(0), x, y.t(), alpha=-2)
    sq = sq + _squared_norms(x).unsqueeze(1)
    return sq.clamp(min=EPS_SQ).sqrt()


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
    _checks.check_pair(fn, x, y, "(N, m, d)", "(N, n, d)", 3)
    _checks.check_same_batch(fn, x, y)
    return _batch_sq_dist(x, y).clamp(min=EPS_SQ).sqrt()


def _batch_sq_dist(x, y):
    """Squared distances ``[N, m, n]`` by one batched matrix product."""
    sq = torch.baddbmm(_squared_norms(y).unsqueeze(1), x, y.transpose(1, 2),
                       alpha=-2)
    return sq + _squared_norms(x).unsqueeze(2)


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
