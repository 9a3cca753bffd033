"""The ranking rule, in one place: the ``k`` smallest distances of each row.

Order: ascending distance; equal distances by the lower gallery index; NaN after every
number, NaNs among themselves by the lower gallery index. The same function reduces a
block of distances to its top ``k`` and merges partial top-``k`` results, so a result
does not depend on how the gallery was cut into blocks, nor on which block finished
first.
"""
import numpy as np


def smallest(dist, index, k):
    """The ``k`` best entries of each row of ``dist`` under the ranking rule.

    Parameters
    ----------
    dist : ndarray, shape (R, C), float
    index : ndarray of int64, shape (R, C) or (C,)
        The gallery index of each entry (distinct within a row).
    k : int
        At least 1; rows with fewer than ``k`` entries keep them all.

    Returns
    -------
    dist : ndarray, shape (R, min(k, C)), same dtype as ``dist``
    index : ndarray of int64, same shape
        Each row sorted by the ranking rule.

    Examples
    --------
    >>> import numpy as np
    >>> d = np.array([[0.5, np.nan, 0.25, 0.5]])
    >>> smallest(d, np.arange(4), 3)
    (array([[0.25, 0.5 , 0.5 ]]), array([[2, 0, 3]]))
    """
    rows, cols = dist.shape
    index = np.broadcast_to(index, dist.shape)
    keep = min(k, cols)
    if keep < cols:
        # Only entries up to each row's k-th value can be among its k best (partition
        # is linear and puts NaN last); a row whose k-th value is NaN keeps all its NaNs.
        kth = np.partition(dist, keep - 1, axis=1)[:, keep - 1:keep]
        wanted = (dist <= kth) | np.isnan(kth)
        row, col = np.nonzero(wanted)
        counts = np.count_nonzero(wanted, axis=1)
    else:
        row, col = np.divmod(np.arange(rows * cols), cols)
        counts = np.full(rows, cols)
    values, labels = dist[row, col], index[row, col]
    # lexsort: the last key is the primary one; NaN sorts after every number.
    order = np.lexsort((labels, values, row))
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    pick = order[first[:, None] + np.arange(keep)]
    return values[pick], labels[pick]


def merge(k, *parts):
    """One top-``k`` result from partial ones ``(dist, index)`` over the same rows."""
    dist = np.concatenate([d for d, _ in parts], axis=1)
    index = np.concatenate([i for _, i in parts], axis=1)
    return smallest(dist, index, k)
