"""An adapter: code of another shape, seen by the gate under the contract's names.

Above the line, "their" code as a training codebase might have it: a loss that is an
``nn.Module`` taking the negatives' distances first and returning only the loss, and a
local distance taking the gallery first. Below it, the adapter the gate is pointed at:
``python -m reference.gate adapter_example:torch``.
"""
import torch
import torch.nn.functional as F


class TheirTripletLoss(torch.nn.Module):
    def __init__(self, margin=None):
        super().__init__()
        self.margin = margin

    def forward(self, dist_an, dist_ap):
        if self.margin is None:
            return F.softplus(dist_ap - dist_an).mean()
        return F.relu(dist_ap - dist_an + self.margin).mean()


def their_local_distance(gallery, query):
    """``[N, n, d]`` gallery stripes and ``[N, m, d]`` query stripes -> ``[N]``."""
    diff = query[:, :, None, :] - gallery[:, None, :, :]
    d = torch.tanh(diff.pow(2).sum(-1).clamp(min=1e-12).sqrt() / 2)  # [N, m, n]
    m, n = d.shape[1:]
    table = [[None] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            if i == 0 and j == 0:
                table[i][j] = d[:, 0, 0]
                continue
            if i == 0 or j == 0:
                prev = table[i][j - 1] if i == 0 else table[i - 1][j]
            else:
                prev = torch.minimum(table[i - 1][j], table[i][j - 1])
            table[i][j] = prev + d[:, i, j]
    return table[-1][-1]


# ---- the adapter --------------------------------------------------------------------------
def _float32_under_autocast(func):
    """Inside torch.autocast the contract computes half-precision input in float32."""
    def call(*args):
        if not torch.is_autocast_enabled("cpu"):
            return func(*args)
        with torch.autocast("cpu", enabled=False):
            return func(*(a.float() if torch.is_tensor(a) else a for a in args))
    return call


class TripletLoss:
    def __init__(self, margin=None):
        self.margin = margin
        self._theirs = _float32_under_autocast(TheirTripletLoss(margin))

    def __call__(self, dist_ap, dist_an):  # the contract's order: positives first
        return self._theirs(dist_an, dist_ap)


@_float32_under_autocast
def batch_local_dist(x, y):  # the query first
    return their_local_distance(y, x)
