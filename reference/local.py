"""The local distance: formula 1 on every stripe pair, then formula 2 on the resulting matrix."""
import numpy as np

from alignedreid_dp.progress import report

from . import _checks
from .distance import _euclidean, _euclidean_vjp, _stripe
from .path import _table, shortest_dist_vjp


def _pair_dist(x, y):
    """Local distances of aligned pairs ``x[k]``, ``y[k]`` (``[K, m, d]``, ``[K, n, d]``): ``[K]``."""
    stripes = _stripe(_euclidean(x, y))  # formula 1, [K, m, n]
    return _table(np.moveaxis(stripes, 0, -1))[-1, -1]  # formula 2 over [m, n, K]


def _pair_dist_vjp(x, y, grad_out):
    """Chain rule of ``_pair_dist``: formula 2, then formula 1, then the Euclidean distance."""
    euclid = _euclidean(x, y)
    stripes = _stripe(euclid)
    grad_stripes = np.moveaxis(shortest_dist_vjp(np.moveaxis(stripes, 0, -1), grad_out), -1, 0)
    grad_euclid = grad_stripes * (1 - stripes * stripes) / 2
    return _euclidean_vjp(x, y, grad_euclid)


def local_dist(x, y, *, chunk_size=None, progress=False):
    """AlignedReID local distance between every image of ``x`` and every image of ``y``.

    Parameters
    ----------
    x : ndarray, shape (M, m, d), float32 or float64
        ``m`` stripe features of each of ``M`` images.
    y : ndarray, shape (N, n, d), same dtype as ``x``
    chunk_size : int or None
        Query images computed together against the whole gallery (default: one at a
        time); memory grows with it. The result does not depend on it.
    progress : bool
        Report the finished pairs on stderr after every chunk (``alignedreid_dp.progress``).

    Returns
    -------
    ndarray, shape (M, N)
        Formula 1 on every stripe pair, then formula 2, for every pair of images.

    Examples
    --------
    >>> import numpy as np, reference
    >>> x = np.zeros((2, 3, 4)); y = np.ones((5, 2, 4))
    >>> reference.local_dist(x, y).shape
    (2, 5)
    """
    func = "local_dist"
    _checks.feature_pair(func, x, y, "(M, m, d)", "(N, n, d)", rank=3)
    chunk = _checks.chunk_size(func, chunk_size) or 1
    _checks.progress(func, progress)
    big_m, big_n = x.shape[0], y.shape[0]
    out = np.empty((big_m, big_n), dtype=x.dtype)
    with report(func, big_m * big_n, progress) as shown:
        for start in range(0, big_m, chunk):
            queries = x[start:start + chunk]
            # every query of the chunk against every gallery image, as aligned pairs
            pairs = _pair_dist(np.repeat(queries, big_n, axis=0), np.tile(y, (len(queries), 1, 1)))
            out[start:start + len(queries)] = pairs.reshape(len(queries), big_n)
            shown.update(pairs.size)
    return out


def local_dist_vjp(x, y, grad_out):
    """Gradients of ``local_dist(x, y)`` pulled back from ``grad_out``.

    Parameters
    ----------
    x : ndarray, shape (M, m, d)
    y : ndarray, shape (N, n, d)
    grad_out : ndarray, shape (M, N)

    Returns
    -------
    grad_x : ndarray, shape (M, m, d)
    grad_y : ndarray, shape (N, n, d)

    Examples
    --------
    >>> import numpy as np, reference
    >>> x = np.eye(3)[None]; y = np.eye(3)[None, ::-1]
    >>> gx, gy = reference.local_dist_vjp(x, y, np.ones((1, 1)))
    >>> gx.shape, gy.shape
    ((1, 3, 3), (1, 3, 3))
    """
    _checks.feature_pair("local_dist_vjp", x, y, "(M, m, d)", "(N, n, d)", rank=3)
    grad_out = _checks.grad_like("local_dist_vjp", grad_out, (x.shape[0], y.shape[0]), x.dtype)
    grad_x = np.zeros_like(x)
    grad_y = np.zeros_like(y)
    for a in range(x.shape[0]):
        gx, gy = _pair_dist_vjp(np.broadcast_to(x[a], (y.shape[0],) + x.shape[1:]), y, grad_out[a])
        grad_x[a] = gx.sum(axis=0)
        grad_y += gy
    return grad_x, grad_y


def batch_local_dist(x, y):
    """Local distance of pair ``k``: image ``x[k]`` with image ``y[k]``.

    Parameters
    ----------
    x : ndarray, shape (N, m, d), float32 or float64
    y : ndarray, shape (N, n, d), same dtype as ``x``

    Returns
    -------
    ndarray, shape (N,)

    Examples
    --------
    >>> import numpy as np, reference
    >>> reference.batch_local_dist(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)))
    array([1.5e-06])
    """
    _checks.batch_pair("batch_local_dist", x, y)
    return _pair_dist(x, y)


def batch_local_dist_vjp(x, y, grad_out):
    """Gradients of ``batch_local_dist(x, y)`` pulled back from ``grad_out``.

    Parameters
    ----------
    x : ndarray, shape (N, m, d)
    y : ndarray, shape (N, n, d)
    grad_out : ndarray, shape (N,)

    Returns
    -------
    grad_x : ndarray, shape (N, m, d)
    grad_y : ndarray, shape (N, n, d)

    Examples
    --------
    >>> import numpy as np, reference
    >>> gx, gy = reference.batch_local_dist_vjp(np.zeros((1, 1, 2)), np.ones((1, 1, 2)),
    ...                                         np.ones(1))
    >>> gx.round(4)
    array([[[-0.2225, -0.2225]]])
    """
    _checks.batch_pair("batch_local_dist_vjp", x, y)
    grad_out = _checks.grad_like("batch_local_dist_vjp", grad_out, (x.shape[0],), x.dtype)
    return _pair_dist_vjp(x, y, grad_out)


def pair_local_dist(x, y):
    """Local distance of one pair of images: ``x [m, d]`` against ``y [n, d]``.

    An optional extra of the contract, for the single-pair form that test-time code
    often has; it equals ``batch_local_dist(x[None], y[None])[0]``.

    Parameters
    ----------
    x : ndarray, shape (m, d), float32 or float64
    y : ndarray, shape (n, d), same dtype as ``x``

    Returns
    -------
    scalar of the dtype of ``x``
        Formula 1 on every stripe pair, then formula 2 on the whole ``m x n`` matrix.

    Examples
    --------
    >>> import numpy as np, reference
    >>> float(reference.pair_local_dist(np.zeros((2, 3)), np.zeros((2, 3)))).__round__(12)
    1.5e-06
    """
    _checks.feature_pair("pair_local_dist", x, y, "(m, d)", "(n, d)", rank=2)
    return _pair_dist(x[None], y[None])[0]


def pair_local_dist_vjp(x, y, grad_out):
    """Gradients of ``pair_local_dist(x, y)`` pulled back from the scalar ``grad_out``.

    Returns
    -------
    grad_x : ndarray, shape (m, d)
    grad_y : ndarray, shape (n, d)

    Examples
    --------
    >>> import numpy as np, reference
    >>> gx, gy = reference.pair_local_dist_vjp(np.zeros((1, 2)), np.ones((1, 2)), 1.0)
    >>> gx.round(4)
    array([[-0.2225, -0.2225]])
    """
    _checks.feature_pair("pair_local_dist_vjp", x, y, "(m, d)", "(n, d)", rank=2)
    grad_out = _checks.grad_like("pair_local_dist_vjp", grad_out, (), x.dtype)
    grad_x, grad_y = _pair_dist_vjp(x[None], y[None], grad_out[None])
    return grad_x[0], grad_y[0]
