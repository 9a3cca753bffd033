"""torch_impl's losses, with the soft margin written inline as ``where(z > 20, z, log1p(e^z))``.

The forward pass is right everywhere (the large branch is taken past 20); the backward
pass is not: autograd differentiates both branches, and where ``e^z`` overflows (``z``
past 709 in float64, 88 in float32) the discarded branch's slope ``inf / inf`` is NaN,
and ``0 * NaN`` is NaN. Only the losses far from the margin show it.
"""
import torch

import torch_impl

TripletLoss = torch_impl.TripletLoss


def _triplet(tri_loss, dist_ap, dist_an):
    z = dist_ap - dist_an
    if tri_loss.margin is None:
        return torch.where(z > 20, z, torch.log1p(torch.exp(z))).mean()
    return torch.relu(z + tri_loss.margin).mean()


def global_loss(tri_loss, global_feat, labels, normalize_feature=True):
    _, p_inds, n_inds, dist_ap, dist_an, dist_mat = torch_impl.global_loss(
        tri_loss, global_feat, labels, normalize_feature)
    return _triplet(tri_loss, dist_ap, dist_an), p_inds, n_inds, dist_ap, dist_an, dist_mat


def local_loss(tri_loss, local_feat, p_inds=None, n_inds=None, labels=None,
               normalize_feature=True):
    out = torch_impl.local_loss(tri_loss, local_feat, p_inds, n_inds, labels, normalize_feature)
    return (_triplet(tri_loss, out[1], out[2]), *out[1:])
