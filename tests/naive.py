"""The plain recurrences, written cell by cell the way widely used AlignedReID code writes
them: the one copy that the tests and ``benchmarks`` hold the implementations against.

Nothing here is fast or guarded: formula 2 is the textbook recurrence, one
``torch.minimum`` per cell, differentiated by autograd op by op (``torch.minimum`` passes
half the gradient to each side on a tie, as the contract's VJP); a path's sum is added
cell by cell in path order. ``batch_local_dist`` and ``aligned_loss`` are the plain
training loss of the end-to-end checks: formula 1 as the literal ``(e^x - 1) / (e^x + 1)``
(fine in float64 for the normalised features used there: ``x <= 2``), mining a masked
max/min. ``batch_local_dist_tanh`` is the benchmarks' baseline, whose formula 1 and
distances are the fast code's torch expressions, so that only formula 2 differs.
"""
import numpy as np
import torch

import reference
from reference import error_model


def euclidean_dist(x, y):
    """``[m, d] x [n, d] -> [m, n]`` by the norm expansion, clamped at 1e-12 before the root."""
    sq = (x * x).sum(1, keepdim=True) + (y * y).sum(1).unsqueeze(0) - 2 * x @ y.t()
    return sq.clamp(min=1e-12).sqrt()


def batch_euclidean_dist(x, y):
    """``[N, m, d] x [N, n, d] -> [N, m, n]``."""
    sq = (x * x).sum(2, keepdim=True) + (y * y).sum(2).unsqueeze(1) - 2 * x @ y.transpose(1, 2)
    return sq.clamp(min=1e-12).sqrt()


def _table(dist_mat, meet=None):
    """The table of formula 2 on ``[m, n, *batch]``, cell by cell; ``meet(up, left)`` sees
    the two sides of every interior cell's minimum."""
    m, n = dist_mat.shape[:2]
    table = [[None] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            if i == 0 and j == 0:
                table[i][j] = dist_mat[i, j]
            elif i == 0:
                table[i][j] = table[i][j - 1] + dist_mat[i, j]
            elif j == 0:
                table[i][j] = table[i - 1][j] + dist_mat[i, j]
            else:
                up, left = table[i - 1][j], table[i][j - 1]
                if meet is not None:
                    meet(up, left)
                table[i][j] = torch.minimum(up, left) + dist_mat[i, j]
    return table


def shortest_dist(dist_mat):
    """Formula 2 on ``[m, n, *batch]``, cell by cell: shape ``(*batch)``."""
    return _table(dist_mat)[-1][-1]


def tie_gap(dist_mat):
    """The smallest ``|up - left|`` over the interior cells of formula 2 on ``[m, n, *]``
    (``inf`` without interior cells): how far every ``min`` is from switching side."""
    gaps = []
    _table(dist_mat.detach(), lambda up, left: gaps.append(float((up - left).abs().min())))
    return min(gaps, default=float("inf"))


def path_sum(d, path):
    """The sum of ``d`` along ``path`` (cells ``(i, j)``), added in path order in the dtype
    of ``d``, as formula 2 adds it."""
    total = d[path[0]]
    for cell in path[1:]:
        total = total + d[cell]
    return total


def paths_clear_of_ties(x, y, margins):
    """Whether the best path of every aligned pair ``x[k]``, ``y[k]`` (the oracle's formula
    1) beats every other path by more than ``margins`` (one per pair, or one for all):
    where it does not, two correct implementations may take different paths and have
    different gradients (``reference.error_model.path_margin``)."""
    stripes = reference.stripe_dist(reference.batch_euclidean_dist(x, y))
    margins = np.broadcast_to(np.ravel(margins), (len(stripes),))
    return all(error_model.path_margin(s) > t for s, t in zip(stripes, margins))


def batch_stripes(x, y):
    """Formula 1 from explicit differences on every stripe pair of ``x [K, m, d]`` and
    ``y [K, n, d]``, laid out ``[m, n, K]`` for ``shortest_dist``."""
    sq = ((x[:, :, None, :] - y[:, None, :, :]) ** 2).sum(-1)
    return torch.tanh(torch.sqrt(torch.clamp(sq, min=1e-12)) / 2).permute(1, 2, 0)


def local_dist(x, y):
    """Every query of ``x [M, m, d]`` against every gallery image of ``y [N, n, d]``."""
    big_m, big_n = x.shape[0], y.shape[0]
    pairs = batch_stripes(x.repeat_interleave(big_n, 0), y.repeat(big_m, 1, 1))
    return shortest_dist(pairs).reshape(big_m, big_n)


def batch_local_dist(x, y):
    """Formula 1 (literal) on every stripe pair, then formula 2: ``[N]``."""
    euclid = batch_euclidean_dist(x, y)
    stripes = (torch.exp(euclid) - 1) / (torch.exp(euclid) + 1)
    return shortest_dist(stripes.permute(1, 2, 0))


def batch_local_dist_tanh(x, y):
    """``[N, m, d]``, ``[N, n, d]`` -> ``[N]``: formula 1 as ``tanh(e / 2)`` on the norm
    expansion (the fast code's torch expressions), then formula 2 cell by cell."""
    xx = (x * x).sum(-1).unsqueeze(2)
    yy = (y * y).sum(-1).unsqueeze(1)
    sq = xx + yy - 2 * torch.bmm(x, y.transpose(1, 2))
    stripe = torch.tanh(sq.clamp(min=1e-12).sqrt() * 0.5)
    return shortest_dist(stripe.permute(1, 2, 0))


def normalize(x):
    return x / (x.norm(dim=-1, keepdim=True) + 1e-12)


def hard_example_mining(dist_mat, labels):
    """Farthest positive and nearest negative per anchor, by masked max/min."""
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    dist_ap, p_inds = dist_mat.masked_fill(~same, float("-inf")).max(1)
    dist_an, n_inds = dist_mat.masked_fill(same, float("inf")).min(1)
    return dist_ap, dist_an, p_inds, n_inds


def triplet_loss(dist_ap, dist_an, margin):
    return torch.relu(dist_ap - dist_an + margin).mean()


def aligned_loss(global_feat, local_feat, labels, margin):
    """AlignedReID's training loss: global triplet loss with batch-hard mining, plus the
    local triplet loss on the same hard examples. Returns ``(loss, p_inds, n_inds)``."""
    g = normalize(global_feat)
    dist_ap, dist_an, p_inds, n_inds = hard_example_mining(euclidean_dist(g, g), labels)
    local = normalize(local_feat)
    local_ap = batch_local_dist(local, local[p_inds])
    local_an = batch_local_dist(local, local[n_inds])
    loss = triplet_loss(dist_ap, dist_an, margin) + triplet_loss(local_ap, local_an, margin)
    return loss, p_inds, n_inds
