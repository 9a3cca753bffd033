"""The triplet loss's per-anchor terms and the mined loss's gradient on the GPU."""
import numpy as np
from numba import cuda

from .arrays import zeros
from .context import empty
from .launch import int64, kernel, launch, scalar


@kernel("F1", "F1", "f", "f", "b", "F1", "F1")
def _triplet_kernel(dist_ap, dist_an, margin, one, soft, losses, slopes):
    k = cuda.grid(1)
    if k < dist_ap.size:
        losses[k], slopes[k] = scalar.triplet_terms(dist_ap[k], dist_an[k], margin, one, soft)


def triplet_terms(dist_ap, dist_an, margin):
    dtype = np.dtype(dist_ap.dtype).type
    losses, slopes = empty(dist_ap.shape, dist_ap.dtype), empty(dist_ap.shape, dist_ap.dtype)
    launch(_triplet_kernel, dist_ap.size, dist_ap, dist_an, dtype(0 if margin is None else margin),
           dtype(1), margin is None, losses, slopes)
    return losses, slopes


@kernel("F2", "I1", "I1", "F1", "F1")
def _mined_grad_kernel(grad, p_inds, n_inds, grad_ap, grad_an):
    a = cuda.grid(1)
    if a < grad.shape[0]:  # one thread per anchor row: no races
        grad[a, p_inds[a]] += grad_ap[a]
        grad[a, n_inds[a]] += grad_an[a]


def mined_grad(shape, dtype, p_inds, n_inds, grad_ap, grad_an):
    grad = zeros(shape, dtype)
    launch(_mined_grad_kernel, shape[0], grad, int64(p_inds), int64(n_inds), grad_ap,
           grad_an)
    return grad
