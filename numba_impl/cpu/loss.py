"""The triplet loss's per-anchor terms and the mined loss's gradient on the CPU."""
import math

import numpy as np
from numba import prange

from .jit import _pjit, _softplus


@_pjit
def _triplet_kernel(dist_ap, dist_an, margin, soft, losses, slopes):
    for k in prange(dist_ap.shape[0]):
        z = dist_ap[k] - dist_an[k]
        if soft:
            losses[k] = _softplus(z)
            slopes[k] = math.exp(-_softplus(-z))  # the logistic function, finite for any z
        else:
            v = z + margin
            zero = margin - margin
            losses[k] = zero if v <= 0 else v  # NaN stays NaN, as np.maximum
            slopes[k] = (zero + 1) if v > 0 else zero


def triplet_terms(dist_ap, dist_an, margin):
    """Per-anchor losses and slopes ``d loss_k / d ap_k``; ``margin=None`` is the soft margin."""
    dtype = dist_ap.dtype.type
    losses, slopes = np.empty_like(dist_ap), np.empty_like(dist_ap)
    _triplet_kernel(dist_ap, dist_an, dtype(0 if margin is None else margin), margin is None,
                    losses, slopes)
    return losses, slopes


def mined_grad(shape, dtype, p_inds, n_inds, grad_ap, grad_an):
    """Gradient of the mined loss on the whole distance matrix: only the chosen entries."""
    grad = np.zeros(shape, dtype=dtype)
    anchors = np.arange(shape[0])
    np.add.at(grad, (anchors, p_inds), grad_ap)  # an anchor may be its own positive
    np.add.at(grad, (anchors, n_inds), grad_an)
    return grad
