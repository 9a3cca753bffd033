"""The triplet loss's per-anchor terms and the mined loss's gradient on the CPU."""
import numpy as np
from numba import prange

from .jit import parallel_jit, scalar


@parallel_jit
def _triplet_kernel(dist_ap, dist_an, margin, one, soft, losses, slopes):
    for k in prange(dist_ap.shape[0]):
        losses[k], slopes[k] = scalar.triplet_terms(dist_ap[k], dist_an[k], margin, one, soft)


def triplet_terms(dist_ap, dist_an, margin):
    """Per-anchor losses and slopes ``d loss_k / d ap_k``; ``margin=None`` is the soft margin."""
    dtype = dist_ap.dtype.type
    losses, slopes = np.empty_like(dist_ap), np.empty_like(dist_ap)
    _triplet_kernel(dist_ap, dist_an, dtype(0 if margin is None else margin), dtype(1),
                    margin is None, losses, slopes)
    return losses, slopes


def mined_grad(shape, dtype, p_inds, n_inds, grad_ap, grad_an):
    """Gradient of the mined loss on the whole distance matrix: only the chosen entries."""
    grad = np.zeros(shape, dtype=dtype)
    anchors = np.arange(shape[0])
    np.add.at(grad, (anchors, p_inds), grad_ap)  # an anchor may be its own positive
    np.add.at(grad, (anchors, n_inds), grad_an)
    return grad
