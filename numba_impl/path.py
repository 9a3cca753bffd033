"""Formula 2 (the shortest monotone path) and its VJP, on the CPU or the GPU."""
from . import _checks
from ._dispatch import backend, follows_torch


@follows_torch
def shortest_dist(dist_mat):
    """Formula 2: length of the shortest down/right path through each matrix.

    Bitwise equal to the oracle: the same recurrence, cell by cell, in the input dtype.

    Parameters
    ----------
    dist_mat : ndarray or CUDA array, shape (m, n) or (m, n, *), float32 or float64

    Returns
    -------
    scalar or array of shape (*), same dtype (a device array for device input)

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> float(numba_impl.shortest_dist(np.array([[0.1, 0.9], [0.2, 0.1]])))
    0.4
    """
    func = "shortest_dist"
    target, dist_mat = _checks.float_array(func, "dist_mat", dist_mat, "(m, n) or (m, n, *)",
                                           min_ndim=2)
    return backend(target).shortest_dist(dist_mat)


@follows_torch
def shortest_dist_vjp(dist_mat, grad_out):
    """Gradient of formula 2: the optimal path's unit flow (half each way on a tie) times grad_out.

    Parameters
    ----------
    dist_mat : ndarray or CUDA array, shape (m, n) or (m, n, *)
    grad_out : scalar or array of shape (*), same dtype

    Returns
    -------
    grad_dist_mat : array, same shape and dtype as ``dist_mat``

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> numba_impl.shortest_dist_vjp(np.array([[0.1, 0.9], [0.2, 0.1]]), 1.0)
    array([[1., 0.],
           [1., 1.]])
    """
    func = "shortest_dist_vjp"
    target, dist_mat = _checks.float_array(func, "dist_mat", dist_mat, "(m, n) or (m, n, *)",
                                           min_ndim=2)
    grad_out = _checks.grad_like(func, grad_out, dist_mat.shape[2:], dist_mat.dtype, target)
    return backend(target).shortest_dist_vjp(dist_mat, grad_out)
