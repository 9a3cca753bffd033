"""Triplet loss and the global and local losses of AlignedReID."""

import torch

from alignedreid_dp import arguments

from . import _checks
from ._autocast import float32_under_autocast
from .distance import euclidean_dist, normalize
from .local import batch_local_dist, local_dist
from .mining import hard_example_mining


class TripletLoss:
    """Triplet loss on hardest-positive and hardest-negative distances.

    Parameters
    ----------
    margin : float, optional
        With a finite margin: ``mean(max(0, ap - an + margin))`` (the
        derivative is 0 where ``ap - an + margin == 0``); an infinite or NaN
        margin is refused.  ``None``: the soft margin
        ``mean(log(1 + exp(ap - an)))``, computed without overflow.

    Examples
    --------
    >>> import torch, torch_impl
    >>> loss = torch_impl.TripletLoss(margin=0.3)
    >>> loss(torch.tensor([1.0, 0.5]), torch.tensor([1.0, 2.0]))
    tensor(0.1500)
    """

    def __init__(self, margin=None):
        # finite or None: with +-inf the hinge or its slope would meet inf - inf or 0 * inf,
        # and NaN has no meaning as a margin
        self.margin = None if margin is None else arguments.finite_float(
            "TripletLoss", "margin", margin, "a finite real number or None")

    def __repr__(self):
        return f"TripletLoss(margin={self.margin!r})"

    @float32_under_autocast
    def __call__(self, dist_ap, dist_an):
        """Loss of the triplets.

        Parameters
        ----------
        dist_ap, dist_an : Tensor, shape (N,)

        Returns
        -------
        Tensor, shape ()
        """
        fn = "TripletLoss"
        _checks.check_float_tensor(fn, "dist_ap", dist_ap, 1, "(N,)")
        _checks.check_float_tensor(fn, "dist_an", dist_an, 1, "(N,)")
        _checks.check_same_shape(fn, dist_ap, dist_an, "dist_ap", "dist_an")
        if dist_ap.dtype != dist_an.dtype:
            raise TypeError(
                f"{fn}: dist_ap and dist_an must have the same dtype; got "
                f"{dist_ap.dtype} and {dist_an.dtype}")
        z = dist_ap - dist_an
        if self.margin is None:
            # log(1 + e^z) = logaddexp(0, z): no overflow, exact sigmoid slope.
            return torch.logaddexp(torch.zeros_like(z), z).mean()
        return torch.relu(z + self.margin).mean()


def _check_tri_loss(fn, tri_loss):
    if not isinstance(tri_loss, TripletLoss):
        raise TypeError(
            f"{fn}: tri_loss must be a torch_impl.TripletLoss; got "
            f"{type(tri_loss).__name__}")


@float32_under_autocast
def global_loss(tri_loss, global_feat, labels, normalize_feature=True):
    """Triplet loss on global features with hard-example mining.

    Parameters
    ----------
    tri_loss : TripletLoss
    global_feat : Tensor, shape (N, C)
    labels : Tensor, shape (N,)
        Integer identity labels.
    normalize_feature : bool, default True
        Normalise each feature vector first.

    Returns
    -------
    loss : Tensor, shape ()
    p_inds, n_inds : Tensor of torch.long, shape (N,)
    dist_ap, dist_an : Tensor, shape (N,)
    dist_mat : Tensor, shape (N, N)

    Examples
    --------
    >>> import torch, torch_impl
    >>> feat = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> out = torch_impl.global_loss(torch_impl.TripletLoss(0.3), feat,
    ...                              torch.tensor([0, 0, 1, 1]))
    >>> float(out[0])
    0.0
    """
    fn = "global_loss"
    _check_tri_loss(fn, tri_loss)
    _checks.check_float_tensor(fn, "global_feat", global_feat, 2, "(N, C)")
    _checks.check_labels(fn, labels, global_feat.shape[0])
    feat = normalize(global_feat, axis=-1) if normalize_feature else global_feat
    dist_mat = euclidean_dist(feat, feat)
    dist_ap, dist_an, p_inds, n_inds = hard_example_mining(
        dist_mat, labels, return_inds=True)
    loss = tri_loss(dist_ap, dist_an)
    return loss, p_inds, n_inds, dist_ap, dist_an, dist_mat


@float32_under_autocast
def local_loss(tri_loss, local_feat, p_inds=None, n_inds=None, labels=None,
               normalize_feature=True):
    """Triplet loss on local (stripe) features.

    With ``p_inds`` and ``n_inds`` (usually mined on global features) the
    pairs are given; otherwise hard examples are mined on the local distance
    itself, which needs ``labels``.

    Parameters
    ----------
    tri_loss : TripletLoss
    local_feat : Tensor, shape (N, H, c)
    p_inds, n_inds : Tensor of integers, shape (N,), optional
        Give both or neither.
    labels : Tensor, shape (N,), optional
        Required when the indices are not given.
    normalize_feature : bool, default True
        Normalise each stripe feature first.

    Returns
    -------
    tuple
        ``(loss, dist_ap, dist_an)`` with indices, else
        ``(loss, dist_ap, dist_an, dist_mat)``.

    Examples
    --------
    >>> import torch, torch_impl
    >>> feat = torch.eye(4).reshape(4, 2, 2)
    >>> out = torch_impl.local_loss(torch_impl.TripletLoss(0.3), feat,
    ...                             labels=torch.tensor([0, 0, 1, 1]))
    >>> out[3].shape
    torch.Size([4, 4])
    """
    fn = "local_loss"
    _check_tri_loss(fn, tri_loss)
    _checks.check_float_tensor(fn, "local_feat", local_feat, 3, "(N, H, c)")
    n = local_feat.shape[0]
    if (p_inds is None) != (n_inds is None):
        raise ValueError(
            f"{fn}: p_inds and n_inds must be given together; got "
            f"{'only p_inds' if n_inds is None else 'only n_inds'}")
    feat = normalize(local_feat, axis=-1) if normalize_feature else local_feat
    if p_inds is not None:
        p_inds = _checks.check_indices(fn, "p_inds", p_inds, n)
        n_inds = _checks.check_indices(fn, "n_inds", n_inds, n)
        if labels is not None:  # unused here, but a wrong one is still an error
            _checks.check_labels(fn, labels, n)
        # index_select, not feat[p_inds]: the same rows, but on the CPU its backward
        # (index_add) took a quarter of the time of indexing's (index_put).
        dist_ap = batch_local_dist(feat, feat.index_select(0, p_inds))
        dist_an = batch_local_dist(feat, feat.index_select(0, n_inds))
        return tri_loss(dist_ap, dist_an), dist_ap, dist_an
    if labels is None:
        raise ValueError(
            f"{fn}: labels are required when p_inds and n_inds are not given; "
            "got None")
    _checks.check_labels(fn, labels, n)
    dist_mat = local_dist(feat, feat)
    dist_ap, dist_an = hard_example_mining(dist_mat, labels)
    return tri_loss(dist_ap, dist_an), dist_ap, dist_an, dist_mat
