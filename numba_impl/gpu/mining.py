"""Batch-hard mining on the GPU: one thread per anchor."""
import numpy as np
from numba import cuda

from .context import empty
from .launch import int64, kernel, launch, scalar


@kernel("F2", "I1", "F1", "F1", "I1", "I1")
def _mine_kernel(dist, labels, dist_ap, dist_an, p_inds, n_inds):
    a = cuda.grid(1)
    if a < dist.shape[0]:
        scalar.mine(dist, labels, a, dist_ap, dist_an, p_inds, n_inds)


def hard_example_mining(dist_mat, labels):
    count = dist_mat.shape[0]
    dist_ap, dist_an = empty((count,), dist_mat.dtype), empty((count,), dist_mat.dtype)
    p_inds, n_inds = empty((count,), np.int64), empty((count,), np.int64)
    launch(_mine_kernel, count, dist_mat, int64(labels), dist_ap, dist_an, p_inds, n_inds)
    return dist_ap, dist_an, p_inds, n_inds
