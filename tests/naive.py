"""The plain torch AlignedReID loss, written cell by cell the way widely used code writes it.

Nothing here is fast or guarded: it is the textbook recurrence, differentiated by autograd
op by op, to hold the implementations against in end-to-end checks. Formula 1 is the
literal ``(e^x - 1) / (e^x + 1)`` (fine in float64 for the normalised features used
here: ``x <= 2``), formula 2 one ``torch.minimum`` per cell, mining a masked max/min.
"""
import torch


def euclidean_dist(x, y):
    """``[m, d] x [n, d] -> [m, n]`` by the norm expansion, clamped at 1e-12 before the root."""
    sq = (x * x).sum(1, keepdim=True) + (y * y).sum(1).unsqueeze(0) - 2 * x @ y.t()
    return sq.clamp(min=1e-12).sqrt()


def batch_euclidean_dist(x, y):
    """``[N, m, d] x [N, n, d] -> [N, m, n]``."""
    sq = (x * x).sum(2, keepdim=True) + (y * y).sum(2).unsqueeze(1) - 2 * x @ y.transpose(1, 2)
    return sq.clamp(min=1e-12).sqrt()


def shortest_dist(dist_mat):
    """Formula 2 on ``[m, n, *batch]``, cell by cell."""
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
                table[i][j] = torch.minimum(table[i - 1][j], table[i][j - 1]) + dist_mat[i, j]
    return table[-1][-1]


def batch_local_dist(x, y):
    """Formula 1 (literal) on every stripe pair, then formula 2: ``[N]``."""
    euclid = batch_euclidean_dist(x, y)
    stripes = (torch.exp(euclid) - 1) / (torch.exp(euclid) + 1)
    return shortest_dist(stripes.permute(1, 2, 0))


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
