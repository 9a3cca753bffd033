"""The AlignedReID functions written as the widely used reproduction writes them, in NumPy.

A test fixture: the gate must find exactly its real defects and report its conventions
apart (``tests/test_gate.py``). Its functions follow that code line by line, wrapped only
to the contract's names and arguments, as a user's adapter would. What is wrong with it:

Defects
- formula 1 written literally, ``(e^x - 1) / (e^x + 1)``: NaN once ``e^x`` overflows
  (stripe distances past 88.7 in float32, 709 in float64);
- squared distances by the norm expansion ``|x|^2 + |y|^2 - 2 x.y``, and ``np.linalg.norm``
  in normalize: NaN or inf, or 0, once the squares overflow (features near 1e19 in float32);
- the soft margin as ``log(1 + exp(z))``: inf for large ``z = ap - an``;
- mining by a P x K reshape of the masked distances: a crash when identities have unequal
  image counts, and where the reshape happens to fit (3, 1, 1 and 1 images), rows mixed
  up: wrong distances and indices, silently;
- the single-pair local distance passes the stripe matrix with a leading axis to formula
  2, which reads it as a 1 x m matrix of n pairs: only column 0 of the matrix is used.

Conventions (not defects)
- no ``1e-12`` clamp: squared distances are clipped at 0, identical vectors are 0 apart;
- normalize divides by ``||x|| + eps`` with float32's eps (``1.19e-7``) in every dtype.

It checks no argument (bad input is accepted or refused by whatever NumPy raises), and
has no gradients (NumPy): those clauses are not provided.
"""
import sys

import numpy as np


def normalize(x, axis=-1):
    norm = np.linalg.norm(x, ord=2, axis=axis, keepdims=True)
    return x / (norm + np.finfo(np.float32).eps)


def euclidean_dist(x, y):
    square1 = np.sum(np.square(x), axis=1)[..., np.newaxis]
    square2 = np.sum(np.square(y), axis=1)[np.newaxis, ...]
    squared_dist = -2 * np.matmul(x, y.T) + square1 + square2
    squared_dist[squared_dist < 0] = 0
    return np.sqrt(squared_dist)


def batch_euclidean_dist(x, y):
    xx = np.sum(np.square(x), axis=-1)[:, :, np.newaxis]
    yy = np.sum(np.square(y), axis=-1)[:, np.newaxis, :]
    dist = xx + yy - 2 * np.matmul(x, y.transpose(0, 2, 1))
    dist[dist < 0] = 0
    return np.sqrt(dist)


def stripe_dist(euclid):
    return (np.exp(euclid) - 1.) / (np.exp(euclid) + 1.)


def shortest_dist(dist_mat):
    m, n = dist_mat.shape[:2]
    dist = np.zeros_like(dist_mat)
    for i in range(m):
        for j in range(n):
            if i == 0 and j == 0:
                dist[i, j] = dist_mat[i, j]
            elif i == 0 and j > 0:
                dist[i, j] = dist[i, j - 1] + dist_mat[i, j]
            elif i > 0 and j == 0:
                dist[i, j] = dist[i - 1, j] + dist_mat[i, j]
            else:
                dist[i, j] = np.min(np.stack([dist[i - 1, j], dist[i, j - 1]], axis=0),
                                    axis=0) + dist_mat[i, j]
    return dist[-1, -1].copy()


def pair_local_dist(x, y):
    eu_dist = euclidean_dist(x, y)
    dist_mat = stripe_dist(eu_dist)
    return shortest_dist(dist_mat[np.newaxis])[0]


def local_dist(x, y, chunk_size=None, progress=False):
    M, m, d = x.shape
    N, n, d = y.shape
    dist_mat = euclidean_dist(x.reshape([M * m, d]), y.reshape([N * n, d]))
    dist_mat = stripe_dist(dist_mat)
    dist_mat = dist_mat.reshape([M, m, N, n]).transpose([1, 3, 0, 2])
    if progress:
        print(f"local_dist: {M} queries", file=sys.stderr)
    return shortest_dist(dist_mat)


def batch_local_dist(x, y):
    dist_mat = stripe_dist(batch_euclidean_dist(x, y))
    return shortest_dist(dist_mat.transpose(1, 2, 0))


def hard_example_mining(dist_mat, labels, return_inds=False):
    N = dist_mat.shape[0]
    is_pos = labels[np.newaxis, :] == labels[:, np.newaxis]
    is_neg = labels[np.newaxis, :] != labels[:, np.newaxis]
    pos = dist_mat[is_pos].reshape(N, -1)
    neg = dist_mat[is_neg].reshape(N, -1)
    relative_p_inds = np.argmax(pos, axis=1)
    relative_n_inds = np.argmin(neg, axis=1)
    rows = np.arange(N)
    dist_ap, dist_an = pos[rows, relative_p_inds], neg[rows, relative_n_inds]
    if not return_inds:
        return dist_ap, dist_an
    ind = np.broadcast_to(np.arange(N), (N, N))
    p_inds = ind[is_pos].reshape(N, -1)[rows, relative_p_inds]
    n_inds = ind[is_neg].reshape(N, -1)[rows, relative_n_inds]
    return dist_ap, dist_an, p_inds, n_inds


class TripletLoss:
    def __init__(self, margin=None):
        self.margin = margin

    def __call__(self, dist_ap, dist_an):
        if self.margin is not None:
            return np.mean(np.maximum(0, dist_ap - dist_an + self.margin))
        return np.mean(np.log(1 + np.exp(dist_ap - dist_an)))


def global_loss(tri_loss, global_feat, labels, normalize_feature=True):
    if normalize_feature:
        global_feat = normalize(global_feat, axis=-1)
    dist_mat = euclidean_dist(global_feat, global_feat)
    dist_ap, dist_an, p_inds, n_inds = hard_example_mining(dist_mat, labels, return_inds=True)
    loss = tri_loss(dist_ap, dist_an)
    return loss, p_inds, n_inds, dist_ap, dist_an, dist_mat


def local_loss(tri_loss, local_feat, p_inds=None, n_inds=None, labels=None,
               normalize_feature=True):
    if normalize_feature:
        local_feat = normalize(local_feat, axis=-1)
    if p_inds is None or n_inds is None:
        dist_mat = local_dist(local_feat, local_feat)
        dist_ap, dist_an = hard_example_mining(dist_mat, labels, return_inds=False)
        return tri_loss(dist_ap, dist_an), dist_ap, dist_an, dist_mat
    dist_ap = batch_local_dist(local_feat, local_feat[p_inds])
    dist_an = batch_local_dist(local_feat, local_feat[n_inds])
    return tri_loss(dist_ap, dist_an), dist_ap, dist_an
