"""Batch-hard mining on the CPU."""
import numpy as np
from numba import prange

from .jit import parallel_jit, scalar


@parallel_jit
def _mine_kernel(dist, labels, dist_ap, dist_an, p_inds, n_inds):
    for a in prange(dist.shape[0]):
        scalar.mine(dist, labels, a, dist_ap, dist_an, p_inds, n_inds)


def hard_example_mining(dist_mat, labels):
    """Returns ``dist_ap, dist_an, p_inds, n_inds``; ``n_inds`` is -1 for an anchor without negative."""
    count = dist_mat.shape[0]
    dist_ap = np.empty(count, dtype=dist_mat.dtype)
    dist_an = np.empty(count, dtype=dist_mat.dtype)
    p_inds = np.empty(count, dtype=np.int64)
    n_inds = np.empty(count, dtype=np.int64)
    # Labels as int64: one compiled kernel for every integer dtype; the cast is one to one
    # (uint64 wraps), so it keeps equal labels equal and others apart.
    _mine_kernel(np.ascontiguousarray(dist_mat), np.ascontiguousarray(labels, dtype=np.int64),
                 dist_ap, dist_an, p_inds, n_inds)
    return dist_ap, dist_an, p_inds, n_inds
