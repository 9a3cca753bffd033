"""The oracle, except that some outputs come back in float64 for float32 input.

``local_dist`` computes in float64 "for accuracy" and returns that; ``TripletLoss``
averages in float64, so the losses (``global_loss`` uses it) return a float64 loss.
Values are right; only the dtype is not the input's.
"""
import numpy as np

import reference


def local_dist(x, y, chunk_size=None, progress=False):
    return reference.local_dist(x.astype(np.float64), y.astype(np.float64),
                                chunk_size=chunk_size, progress=progress)


class TripletLoss(reference.TripletLoss):
    def __call__(self, dist_ap, dist_an):
        return np.float64(super().__call__(dist_ap.astype(np.float64), dist_an.astype(np.float64)))


def global_loss(tri_loss, global_feat, labels, normalize_feature=True):
    return reference.global_loss(tri_loss, global_feat, labels, normalize_feature)
