"""The baseline: formula 2 cell by cell, as most AlignedReID code writes it.

A Python double loop over the ``m x n`` cells, each cell one ``torch.minimum``
and one addition on a tensor of all trailing (batch) indices, recorded by
autograd cell by cell.  Formula 1 and the distances are the same plain torch
expressions as in the fast code, so rows differ only in the DP.
"""

import torch


def shortest_dist(dist_mat):
    """Formula 2 on ``[m, n, *batch]`` by the cell-by-cell recurrence."""
    m, n = dist_mat.shape[0], dist_mat.shape[1]
    table = [[None] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            cell = dist_mat[i, j]
            if i == 0 and j == 0:
                table[i][j] = cell
            elif i == 0:
                table[i][j] = table[i][j - 1] + cell
            elif j == 0:
                table[i][j] = table[i - 1][j] + cell
            else:
                table[i][j] = torch.minimum(table[i - 1][j], table[i][j - 1]) + cell
    return table[m - 1][n - 1]


def batch_local_dist(x, y):
    """``[N, m, d]``, ``[N, n, d]`` -> ``[N]`` with the naive DP."""
    xx = (x * x).sum(-1).unsqueeze(2)
    yy = (y * y).sum(-1).unsqueeze(1)
    sq = xx + yy - 2 * torch.bmm(x, y.transpose(1, 2))
    stripe = torch.tanh(sq.clamp(min=1e-12).sqrt() * 0.5)
    return shortest_dist(stripe.permute(1, 2, 0))
