"""Batch-hard mining of the hardest positive and negative of every anchor."""
from . import _checks
from ._dispatch import backend, follows_torch


def _mine(func, dist_mat, labels):
    target, dist_mat = _checks.float_array(func, "dist_mat", dist_mat, "(N, N)", ndim=2)
    if dist_mat.shape[0] != dist_mat.shape[1]:
        raise ValueError(f"{func}: dist_mat must have shape (N, N); got {tuple(dist_mat.shape)}")
    labels = _checks.labels_array(func, labels, dist_mat.shape[0], target)
    dist_ap, dist_an, p_inds, n_inds = backend(target).hard_example_mining(dist_mat, labels)
    host_n = backend(target).to_host(n_inds)
    if (host_n < 0).any():
        anchor = int((host_n < 0).argmax())
        raise ValueError(f"{func}: anchor {anchor} has no negative; labels must hold at least "
                         "two identities")
    return dist_ap, dist_an, p_inds, n_inds


@follows_torch
def hard_example_mining(dist_mat, labels, return_inds=False):
    """For each anchor, the farthest same-label sample and the nearest other-label sample.

    The anchor counts as its own positive; ties go to the lowest index. NaN counts as the
    extreme for both choices: the first NaN candidate wins, as in ``np.argmax``/``argmin``.

    Parameters
    ----------
    dist_mat : ndarray or CUDA array, shape (N, N), float32 or float64
    labels : integer array, shape (N,)
    return_inds : bool

    Returns
    -------
    dist_ap, dist_an : array, shape (N,)
    p_inds, n_inds : int64 array, shape (N,), only with ``return_inds=True``

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> dist = np.array([[0.0, 0.4, 0.9], [0.4, 0.0, 0.2], [0.9, 0.2, 0.0]])
    >>> numba_impl.hard_example_mining(dist, np.array([0, 0, 1]))
    (array([0.4, 0.4, 0. ]), array([0.9, 0.2, 0.2]))
    """
    dist_ap, dist_an, p_inds, n_inds = _mine("hard_example_mining", dist_mat, labels)
    if return_inds:
        return dist_ap, dist_an, p_inds, n_inds
    return dist_ap, dist_an
