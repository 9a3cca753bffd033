"""Normalisation, Euclidean distances and formula 1, with their VJPs, on the CPU or the GPU.

Squared distances come from explicit differences, ``sum((f_i - g_j)**2)``, as in the
oracle; only the CPU's ``local_dist`` and ``batch_local_dist`` use the faster
``|f|^2 + |g|^2 - 2 f.g``, with explicit differences where it overflows (see ``cpu/expansion.py``).
``normalize`` divides a vector by its largest entry first where ``|x|^2`` overflows.
"""
from . import _checks
from ._dispatch import backend, follows_torch


@follows_torch
def normalize(x, axis=-1):
    """Scale ``x`` to unit Euclidean length along ``axis``: ``x / (||x||_2 + 1e-12)``.

    Parameters
    ----------
    x : ndarray or CUDA array, float32 or float64, at least one dimension
    axis : int

    Returns
    -------
    array, same shape and dtype as ``x``

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> numba_impl.normalize(np.array([3.0, 4.0]))
    array([0.6, 0.8])
    """
    target, x = _checks.float_array("normalize", "x", x, min_ndim=1)
    axis = _checks.axis_of("normalize", axis, x.ndim)
    return backend(target).normalize(x, axis)


@follows_torch
def normalize_vjp(x, grad_out, axis=-1):
    """Gradient of ``normalize(x, axis)`` pulled back from ``grad_out``.

    ``grad_x = grad_out / s - x <x, grad_out> / (s^2 ||x||)`` with ``s = ||x|| + 1e-12``;
    the second term is 0 for a zero vector.

    Parameters
    ----------
    x : ndarray or CUDA array, float32 or float64
    grad_out : array, same shape and dtype as ``x``
    axis : int

    Returns
    -------
    grad_x : array, same shape and dtype as ``x``

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> numba_impl.normalize_vjp(np.array([3.0, 4.0]), np.array([1.0, 0.0])).round(4)
    array([ 0.128, -0.096])
    """
    func = "normalize_vjp"
    target, x = _checks.float_array(func, "x", x, min_ndim=1)
    axis = _checks.axis_of(func, axis, x.ndim)
    grad_out = _checks.grad_like(func, grad_out, x.shape, x.dtype, target)
    return backend(target).normalize_vjp(x, grad_out, axis)


@follows_torch
def euclidean_dist(x, y):
    """Euclidean distance ``sqrt(max(||x_i - y_j||^2, 1e-12))`` between all rows.

    Parameters
    ----------
    x : ndarray or CUDA array, shape (m, d), float32 or float64
    y : array, shape (n, d), same dtype and device as ``x``

    Returns
    -------
    array, shape (m, n)

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> numba_impl.euclidean_dist(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[5.e+00, 1.e-06]])
    """
    target, x, y = _checks.feature_pair("euclidean_dist", x, y, "(m, d)", "(n, d)", rank=2)
    return backend(target).euclidean_dist(x, y)


@follows_torch
def euclidean_dist_vjp(x, y, grad_out):
    """Gradients ``(grad_x, grad_y)`` of ``euclidean_dist``; zero where the 1e-12 clamp is active.

    Parameters
    ----------
    x : ndarray or CUDA array, shape (m, d)
    y : array, shape (n, d)
    grad_out : array, shape (m, n)

    Returns
    -------
    grad_x : array, shape (m, d)
    grad_y : array, shape (n, d)

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> gx, gy = numba_impl.euclidean_dist_vjp(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]),
    ...                                         np.array([[1.0]]))
    >>> gx
    array([[-0.6, -0.8]])
    """
    func = "euclidean_dist_vjp"
    target, x, y = _checks.feature_pair(func, x, y, "(m, d)", "(n, d)", rank=2)
    grad_out = _checks.grad_like(func, grad_out, (x.shape[0], y.shape[0]), x.dtype, target)
    return backend(target).euclidean_dist_vjp(x, y, grad_out)


@follows_torch
def batch_euclidean_dist(x, y):
    """Euclidean distances within each pair of a batch: ``out[k] = euclidean_dist(x[k], y[k])``.

    Parameters
    ----------
    x : ndarray or CUDA array, shape (N, m, d), float32 or float64
    y : array, shape (N, n, d)

    Returns
    -------
    array, shape (N, m, n)

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> numba_impl.batch_euclidean_dist(np.zeros((2, 1, 2)), np.ones((2, 3, 2))).shape
    (2, 1, 3)
    """
    target, x, y = _checks.batch_pair("batch_euclidean_dist", x, y)
    return backend(target).batch_euclidean_dist(x, y)


@follows_torch
def batch_euclidean_dist_vjp(x, y, grad_out):
    """Gradients ``(grad_x, grad_y)`` of ``batch_euclidean_dist``.

    Parameters
    ----------
    x : ndarray or CUDA array, shape (N, m, d)
    y : array, shape (N, n, d)
    grad_out : array, shape (N, m, n)

    Returns
    -------
    grad_x : array, shape (N, m, d)
    grad_y : array, shape (N, n, d)

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> gx, gy = numba_impl.batch_euclidean_dist_vjp(np.zeros((1, 1, 2)), np.array([[[3.0, 4.0]]]),
    ...                                               np.ones((1, 1, 1)))
    >>> gy
    array([[[0.6, 0.8]]])
    """
    func = "batch_euclidean_dist_vjp"
    target, x, y = _checks.batch_pair(func, x, y)
    grad_out = _checks.grad_like(func, grad_out, (x.shape[0], x.shape[1], y.shape[1]), x.dtype,
                                 target)
    return backend(target).batch_euclidean_dist_vjp(x, y, grad_out)


@follows_torch
def stripe_dist(euclid):
    """Formula 1, ``(e^x - 1) / (e^x + 1)``, computed as ``tanh(x / 2)`` (no overflow).

    Parameters
    ----------
    euclid : ndarray or CUDA array, float32 or float64, any shape

    Returns
    -------
    array, same shape and dtype, values in ``[0, 1]``

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> numba_impl.stripe_dist(np.array([0.0, 200.0], dtype=np.float32))
    array([0., 1.], dtype=float32)
    """
    target, euclid = _checks.float_array("stripe_dist", "euclid", euclid)
    return backend(target).stripe_dist(euclid)


@follows_torch
def stripe_dist_vjp(euclid, grad_out):
    """Gradient of formula 1: ``grad_out * (1 - tanh(x/2)^2) / 2``.

    Parameters
    ----------
    euclid : ndarray or CUDA array, float32 or float64
    grad_out : array, same shape and dtype

    Returns
    -------
    grad_euclid : array, same shape and dtype

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> numba_impl.stripe_dist_vjp(np.array([0.0]), np.array([1.0]))
    array([0.5])
    """
    target, euclid = _checks.float_array("stripe_dist_vjp", "euclid", euclid)
    grad_out = _checks.grad_like("stripe_dist_vjp", grad_out, euclid.shape, euclid.dtype, target)
    return backend(target).stripe_dist_vjp(euclid, grad_out)
