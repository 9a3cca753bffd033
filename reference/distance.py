"""Formula 1 and the Euclidean distances it is built on, with their VJPs.

Everything here is plain NumPy, written to be read next to the derivation page.
The squared distances come from explicit differences, ``sum((f_i - g_j)**2)``, not
from ``|f|^2 + |g|^2 - 2 f.g``: slower, but free of cancellation, which is what an
oracle should be.
"""
import contextlib

import numpy as np

from . import _checks

#: Added to a norm before dividing by it, so that a zero vector normalises to zero.
NORM_EPS = 1e-12
#: Lower clamp of a squared distance: identical vectors are ``sqrt(1e-12) = 1e-6`` apart.
SQ_DIST_CLAMP = 1e-12


@contextlib.contextmanager
def conventions(norm_eps=NORM_EPS, sq_dist_clamp=SQ_DIST_CLAMP):
    """Compute the oracle under other conventions than the contract's, inside a ``with`` block.

    The conformance gate compares a module that adds another ``eps`` to its norms, or
    clamps squared distances elsewhere (at 0, say), with the oracle under the same
    conventions, so that the difference is reported once, as a convention, and not again
    as a wrong value in every test. The gradient stays zero wherever the clamp is active
    and at distance 0 (no ``1 / 0``). Not thread-safe: it sets this module's constants.

    Examples
    --------
    >>> import numpy as np, reference
    >>> x = np.zeros((1, 2))
    >>> with reference.distance.conventions(sq_dist_clamp=0.0):
    ...     print(reference.euclidean_dist(x, x))
    [[0.]]
    >>> reference.euclidean_dist(x, x)
    array([[1.e-06]])
    """
    global NORM_EPS, SQ_DIST_CLAMP
    saved = NORM_EPS, SQ_DIST_CLAMP
    NORM_EPS, SQ_DIST_CLAMP = float(norm_eps), float(sq_dist_clamp)
    try:
        yield
    finally:
        NORM_EPS, SQ_DIST_CLAMP = saved


def _scaled_norm(x, axis):
    """``(s, ||x / s||)`` along ``axis``, so that the norm of a finite vector never overflows.

    ``s`` is 1 where the plain sum of squares is finite (then ``x / s`` is ``x``, bit for
    bit), and the vector's largest ``|x|`` where that sum overflows: the entries of
    ``x / s`` are then at most 1 and their squares cannot overflow. A vector holding
    ``±inf`` keeps ``s = 1`` and an infinite norm.
    """
    with np.errstate(over="ignore"):  # overflow is what is detected here
        sq = np.sum(x * x, axis=axis, keepdims=True)
        largest = np.max(np.abs(x), axis=axis, keepdims=True)
        rescale = np.isinf(sq) & np.isfinite(largest)
        scale = np.where(rescale, largest, 1).astype(x.dtype)
        if rescale.any():
            shrunk = x / scale
            sq = np.where(rescale, np.sum(shrunk * shrunk, axis=axis, keepdims=True), sq)
    return scale, np.sqrt(sq)


def normalize(x, axis=-1):
    """Scale ``x`` to unit Euclidean length along ``axis``.

    The norm is computed without overflow (see ``_scaled_norm``): vectors of any finite
    size normalise to unit length. A vector holding ``±inf`` has an infinite norm: its
    finite entries become 0 and its infinite ones NaN (``inf / inf``).

    Parameters
    ----------
    x : ndarray, float32 or float64, any shape with at least one dimension
    axis : int
        The axis holding the feature vectors.

    Returns
    -------
    ndarray, same shape and dtype as ``x``
        ``x / (||x||_2 + 1e-12)``, computed as ``(x / s) / (||x / s|| + 1e-12 / s)``.

    Examples
    --------
    >>> import numpy as np, reference
    >>> reference.normalize(np.array([3.0, 4.0]))
    array([0.6, 0.8])
    >>> reference.normalize(np.array([3e30, 4e30], dtype=np.float32)).round(6)  # no overflow
    array([0.6, 0.8], dtype=float32)
    """
    _checks.float_array("normalize", "x", x, min_ndim=1)
    axis = _checks.axis_of("normalize", axis, x.ndim)
    scale, norm = _scaled_norm(x, axis)
    with np.errstate(invalid="ignore"):  # inf / inf: NaN, as stated above
        return (x / scale) / (norm + NORM_EPS / scale)


def normalize_vjp(x, grad_out, axis=-1):
    """Gradient of ``normalize(x, axis)`` pulled back from ``grad_out``.

    With ``s = ||x|| + eps`` and ``y = x / s``, the chain rule gives
    ``grad_x = grad_out / s - (x / s) * (<x, grad_out> / ||x|| / s)``, grouped so that no
    intermediate overflows or underflows where the result does not; the second term is
    zero for a zero vector (its limit), so that case returns ``grad_out / eps``. Where
    ``normalize`` rescales a vector by ``c`` (``_scaled_norm``) the same formula runs on
    ``x / c`` and its result is divided by ``c``.

    Parameters
    ----------
    x : ndarray, float32 or float64
    grad_out : ndarray, same shape and dtype as ``x``
    axis : int

    Returns
    -------
    grad_x : ndarray, same shape and dtype as ``x``

    Examples
    --------
    >>> import numpy as np, reference
    >>> reference.normalize_vjp(np.array([3.0, 4.0]), np.array([1.0, 0.0])).round(4)
    array([ 0.128, -0.096])
    """
    _checks.float_array("normalize_vjp", "x", x, min_ndim=1)
    axis = _checks.axis_of("normalize_vjp", axis, x.ndim)
    grad_out = _checks.grad_like("normalize_vjp", grad_out, x.shape, x.dtype)
    scale, norm = _scaled_norm(x, axis)
    with np.errstate(invalid="ignore"):  # inf / inf for vectors holding inf: NaN
        x = x / scale
        denom = norm + NORM_EPS / scale
        along = np.sum(x * grad_out, axis=axis, keepdims=True)
        safe_norm = np.where(norm > 0, norm, 1)
        radial = np.where(norm > 0, (x / denom) * (along / safe_norm / denom), 0)
        return ((grad_out / denom - radial) / scale).astype(x.dtype, copy=False)


def _sq_dist(x, y):
    """Squared distances between the rows of ``x [..., m, d]`` and ``y [..., n, d]``: ``[..., m, n]``."""
    diff = x[..., :, None, :] - y[..., None, :, :]
    return np.sum(diff * diff, axis=-1)


def _euclidean(x, y):
    return np.sqrt(np.maximum(_sq_dist(x, y), SQ_DIST_CLAMP))


def _euclidean_vjp(x, y, grad_out):
    """Chain rule through ``sqrt(max(sq, 1e-12))`` and ``sq = sum((x_i - y_j)^2)``.

    ``d dist / d sq = 1 / (2 dist)`` where the clamp is inactive, 0 where it is active;
    ``d sq / d x_i = 2 (x_i - y_j)`` and ``d sq / d y_j = -2 (x_i - y_j)``.
    """
    sq = _sq_dist(x, y)
    dist = np.sqrt(np.maximum(sq, SQ_DIST_CLAMP))
    with np.errstate(divide="ignore", invalid="ignore"):  # dist 0 only where no clamp: masked
        grad_sq = np.where((sq >= SQ_DIST_CLAMP) & (sq > 0), grad_out / (2 * dist), 0)
    grad_sq = grad_sq.astype(x.dtype, copy=False)
    diff = x[..., :, None, :] - y[..., None, :, :]
    weighted = 2 * grad_sq[..., None] * diff  # [..., m, n, d]
    return weighted.sum(axis=-2), -weighted.sum(axis=-3)


def _stripe(euclid):
    """Formula 1 without argument checks: ``tanh(euclid / 2)``, which cannot overflow."""
    return np.tanh(euclid / 2)


def euclidean_dist(x, y):
    """Euclidean distance between every row of ``x`` and every row of ``y``.

    Parameters
    ----------
    x : ndarray, shape (m, d), float32 or float64
    y : ndarray, shape (n, d), same dtype as ``x``

    Returns
    -------
    ndarray, shape (m, n)
        ``sqrt(max(||x_i - y_j||^2, 1e-12))``: identical rows are ``1e-6`` apart.

    Examples
    --------
    >>> import numpy as np, reference
    >>> reference.euclidean_dist(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[5.e+00, 1.e-06]])
    """
    _checks.feature_pair("euclidean_dist", x, y, "(m, d)", "(n, d)", rank=2)
    return _euclidean(x, y)


def euclidean_dist_vjp(x, y, grad_out):
    """Gradients of ``euclidean_dist(x, y)`` pulled back from ``grad_out``.

    Parameters
    ----------
    x : ndarray, shape (m, d)
    y : ndarray, shape (n, d)
    grad_out : ndarray, shape (m, n)

    Returns
    -------
    grad_x : ndarray, shape (m, d)
    grad_y : ndarray, shape (n, d)

    Examples
    --------
    >>> import numpy as np, reference
    >>> gx, gy = reference.euclidean_dist_vjp(np.array([[3.0, 4.0]]), np.array([[0.0, 0.0]]),
    ...                                       np.array([[1.0]]))
    >>> gx, gy
    (array([[0.6, 0.8]]), array([[-0.6, -0.8]]))
    """
    _checks.feature_pair("euclidean_dist_vjp", x, y, "(m, d)", "(n, d)", rank=2)
    _checks.grad_like("euclidean_dist_vjp", grad_out, (x.shape[0], y.shape[0]), x.dtype)
    return _euclidean_vjp(x, y, grad_out)


def batch_euclidean_dist(x, y):
    """Euclidean distances within each of ``N`` pairs of stripe sets.

    Parameters
    ----------
    x : ndarray, shape (N, m, d), float32 or float64
    y : ndarray, shape (N, n, d), same dtype as ``x``

    Returns
    -------
    ndarray, shape (N, m, n)
        ``out[k] = euclidean_dist(x[k], y[k])``.

    Examples
    --------
    >>> import numpy as np, reference
    >>> reference.batch_euclidean_dist(np.zeros((2, 1, 2)), np.ones((2, 3, 2))).shape
    (2, 1, 3)
    """
    _checks.batch_pair("batch_euclidean_dist", x, y)
    return _euclidean(x, y)


def batch_euclidean_dist_vjp(x, y, grad_out):
    """Gradients of ``batch_euclidean_dist(x, y)`` pulled back from ``grad_out``.

    Parameters
    ----------
    x : ndarray, shape (N, m, d)
    y : ndarray, shape (N, n, d)
    grad_out : ndarray, shape (N, m, n)

    Returns
    -------
    grad_x : ndarray, shape (N, m, d)
    grad_y : ndarray, shape (N, n, d)

    Examples
    --------
    >>> import numpy as np, reference
    >>> gx, gy = reference.batch_euclidean_dist_vjp(np.zeros((1, 1, 2)), np.ones((1, 1, 2)),
    ...                                             np.ones((1, 1, 1)))
    >>> gx.round(4)
    array([[[-0.7071, -0.7071]]])
    """
    _checks.batch_pair("batch_euclidean_dist_vjp", x, y)
    _checks.grad_like("batch_euclidean_dist_vjp", grad_out, (x.shape[0], x.shape[1], y.shape[1]),
                      x.dtype)
    return _euclidean_vjp(x, y, grad_out)


def stripe_dist(euclid):
    """Formula 1: ``(e^x - 1) / (e^x + 1)`` of a Euclidean distance ``x``, as ``tanh(x / 2)``.

    Multiplying numerator and denominator by ``e^(-x/2)`` turns the literal form into
    ``tanh(x/2)``, which never overflows; the literal form is ``inf / inf = NaN`` in
    float32 once ``x > 88``.

    Parameters
    ----------
    euclid : ndarray, float32 or float64, any shape

    Returns
    -------
    ndarray, same shape and dtype, values in ``[0, 1]``

    Examples
    --------
    >>> import numpy as np, reference
    >>> reference.stripe_dist(np.array([0.0, 1.0, 100.0], dtype=np.float32))
    array([0.       , 0.4621172, 1.       ], dtype=float32)
    """
    _checks.float_array("stripe_dist", "euclid", euclid)
    return _stripe(euclid)


def stripe_dist_vjp(euclid, grad_out):
    """Gradient of formula 1: ``d tanh(x/2) / dx = (1 - tanh(x/2)^2) / 2``.

    Parameters
    ----------
    euclid : ndarray, float32 or float64
    grad_out : ndarray, same shape and dtype

    Returns
    -------
    grad_euclid : ndarray, same shape and dtype

    Examples
    --------
    >>> import numpy as np, reference
    >>> reference.stripe_dist_vjp(np.array([0.0]), np.array([1.0]))
    array([0.5])
    """
    _checks.float_array("stripe_dist_vjp", "euclid", euclid)
    grad_out = _checks.grad_like("stripe_dist_vjp", grad_out, euclid.shape, euclid.dtype)
    t = _stripe(euclid)
    return grad_out * (1 - t * t) / 2
