"""Batch-hard mining on the GPU: one thread per anchor."""
import numpy as np
from numba import cuda

from .context import empty
from .launch import _int64, _kernel, _launch, _mine_anchor


@_kernel("F2", "I1", "F1", "F1", "I1", "I1")
def _mine_kernel(dist, labels, dist_ap, dist_an, p_inds, n_inds):
    a = cuda.grid(1)
    if a < dist.shape[0]:
        best_p, best_n = _mine_anchor(dist, labels, a)
        p_inds[a] = best_p
        n_inds[a] = best_n
        dist_ap[a] = dist[a, best_p]
        dist_an[a] = dist[a, max(best_n, 0)]


def hard_example_mining(dist_mat, labels):
    count = dist_mat.shape[0]
    dist_ap, dist_an = empty((count,), dist_mat.dtype), empty((count,), dist_mat.dtype)
    p_inds, n_inds = empty((count,), np.int64), empty((count,), np.int64)
    _launch(_mine_kernel, count, dist_mat, _int64(labels), dist_ap, dist_an, p_inds, n_inds)
    return dist_ap, dist_an, p_inds, n_inds
