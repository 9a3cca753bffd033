"""Batch-hard example mining: for each anchor, its farthest positive and nearest negative."""
import numpy as np

from . import _checks


def hard_example_mining(dist_mat, labels, return_inds=False):
    """Hardest positive and hardest negative of every anchor.

    The hardest positive is the farthest sample with the anchor's label (the anchor
    itself counts, so every anchor has one); the hardest negative is the nearest sample
    with another label. Identities may have any number of samples. Ties go to the lowest
    index. NaN counts as the extreme for both choices (as ``np.argmax`` and ``np.argmin``
    treat it): an anchor with a NaN candidate gets the first such NaN, never a finite
    distance instead. An anchor whose label every sample shares has no negative: that is
    an error.

    Parameters
    ----------
    dist_mat : ndarray, shape (N, N), float32 or float64
        ``dist_mat[a, k]`` is the distance from anchor ``a`` to sample ``k``.
    labels : ndarray of int, shape (N,)
    return_inds : bool
        Also return the indices of the chosen samples.

    Returns
    -------
    dist_ap, dist_an : ndarray, shape (N,), dtype of ``dist_mat``
    p_inds, n_inds : ndarray of int64, shape (N,)
        Only when ``return_inds`` is true.

    Examples
    --------
    >>> import numpy as np, reference
    >>> dist = np.array([[0.0, 0.3, 0.5], [0.3, 0.0, 0.2], [0.5, 0.2, 0.0]])
    >>> reference.hard_example_mining(dist, np.array([0, 0, 1]), return_inds=True)
    (array([0.3, 0.3, 0. ]), array([0.5, 0.2, 0.2]), array([1, 0, 2]), array([2, 2, 1]))
    """
    func = "hard_example_mining"
    _checks.float_array(func, "dist_mat", dist_mat, "(N, N)", ndim=2)
    if dist_mat.shape[0] != dist_mat.shape[1]:
        raise ValueError(f"{func}: dist_mat must have shape (N, N); got {dist_mat.shape}")
    n = dist_mat.shape[0]
    _checks.labels_array(func, labels, n)
    dist_ap = np.empty(n, dtype=dist_mat.dtype)
    dist_an = np.empty(n, dtype=dist_mat.dtype)
    p_inds = np.empty(n, dtype=np.int64)
    n_inds = np.empty(n, dtype=np.int64)
    for anchor in range(n):
        same = labels == labels[anchor]
        positives = np.flatnonzero(same)  # ascending, so argmax/argmin pick the lowest index
        negatives = np.flatnonzero(~same)
        if negatives.size == 0:
            raise ValueError(
                f"{func}: anchor {anchor} (label {labels[anchor]}) has no negative; "
                "labels must hold at least two identities"
            )
        p_inds[anchor] = positives[np.argmax(dist_mat[anchor, positives])]
        n_inds[anchor] = negatives[np.argmin(dist_mat[anchor, negatives])]
        dist_ap[anchor] = dist_mat[anchor, p_inds[anchor]]
        dist_an[anchor] = dist_mat[anchor, n_inds[anchor]]
    if return_inds:
        return dist_ap, dist_an, p_inds, n_inds
    return dist_ap, dist_an
