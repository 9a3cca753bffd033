"""Triplet loss on mined distances, and the global and local losses of AlignedReID.

The losses are compositions of the backend's steps (``_backend.Backend``); their VJPs run
the same composition backwards. Mining is a selection: its indices carry no gradient,
the selected distances do.
"""

import numpy as np

from alignedreid_dp import arguments

from . import _checks
from ._dispatch import backend, follows_torch
from .mining import _mine, hard_example_mining


class TripletLoss:
    """Batch-hard triplet loss on the distances to the hardest positive and negative.

    Parameters
    ----------
    margin : float or None
        With a finite margin: ``mean(max(0, ap - an + margin))``; an infinite or NaN
        margin is refused. With ``None`` the soft margin ``mean(log(1 + exp(ap - an)))``,
        computed as ``logaddexp(0, ap - an)``.

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> loss = numba_impl.TripletLoss(margin=0.3)
    >>> round(float(loss(np.array([0.5, 0.1]), np.array([0.4, 0.9]))), 6)
    0.2
    """

    def __init__(self, margin=None):
        # finite or None: with +-inf the hinge or its slope would meet inf - inf or 0 * inf,
        # and NaN has no meaning as a margin
        self.margin = None if margin is None else arguments.finite_float(
            "TripletLoss", "margin", margin, "a finite real number or None")

    def __repr__(self):
        return f"TripletLoss(margin={self.margin})"

    def _terms(self, func, dist_ap, dist_an):
        target, dist_ap = _checks.float_array(func, "dist_ap", dist_ap, "(N,)", ndim=1)
        an_target, dist_an = _checks.float_array(func, "dist_an", dist_an, "(N,)", ndim=1)
        _checks.same_target(func, "dist_an", an_target, "dist_ap", target)
        _checks.same_dtype(func, "dist_an", dist_an, "dist_ap", dist_ap)
        _checks.same_size(func, "dist_an", dist_an, 0, dist_ap.shape[0], "the length of dist_ap")
        ops = backend(target)
        return target, ops, ops.triplet_terms(dist_ap, dist_an, self.margin)

    @follows_torch
    def __call__(self, dist_ap, dist_an):
        """The loss: a 0-d value of the distances' dtype (a 0-d device array on the GPU)."""
        _, ops, (losses, _) = self._terms("TripletLoss", dist_ap, dist_an)
        return ops.mean(losses)

    @follows_torch
    def vjp(self, dist_ap, dist_an, grad_out=1.0):
        """Gradients ``(grad_ap, grad_an)`` of the loss pulled back from ``grad_out``.

        The soft margin's slope is the logistic function ``exp(-logaddexp(0, -z))``; the
        margin loss's is 1 where ``z + margin > 0`` and 0 elsewhere (0 at the kink).
        """
        target, ops, (_, slopes) = self._terms("TripletLoss.vjp", dist_ap, dist_an)
        grad_out = _checks.grad_like("TripletLoss.vjp", grad_out, (), slopes.dtype, target)
        dtype = np.dtype(slopes.dtype).type
        grad_ap = ops.scale(slopes, dtype(dtype(ops.to_host(grad_out).item()) / slopes.shape[0]))
        return grad_ap, ops.negate(grad_ap)


def _tri_loss(func, tri_loss):
    if not isinstance(tri_loss, TripletLoss):
        raise TypeError(f"{func}: tri_loss must be a numba_impl.TripletLoss; got "
                        f"{type(tri_loss).__name__}")
    return tri_loss


def _mined_grad(ops, tri_loss, dist_mat, labels):
    """Gradient of the mined triplet loss on the whole distance matrix (only chosen entries)."""
    dist_ap, dist_an, p_inds, n_inds = _mine("hard_example_mining", dist_mat, labels)
    grad_ap, grad_an = tri_loss.vjp(dist_ap, dist_an)
    return ops.mined_grad(tuple(dist_mat.shape), dist_mat.dtype, p_inds, n_inds, grad_ap, grad_an)


def _global_args(func, tri_loss, global_feat, labels):
    _tri_loss(func, tri_loss)
    target, global_feat = _checks.float_array(func, "global_feat", global_feat, "(N, C)", ndim=2)
    labels = _checks.labels_array(func, labels, global_feat.shape[0], target)
    return backend(target), global_feat, labels


@follows_torch
def global_loss(tri_loss, global_feat, labels, normalize_feature=True):
    """Triplet loss on the Euclidean distances of global features, with batch-hard mining.

    Parameters
    ----------
    tri_loss : TripletLoss
    global_feat : ndarray or CUDA array, shape (N, C), float32 or float64
    labels : integer array, shape (N,)
    normalize_feature : bool

    Returns
    -------
    loss : 0-d
    p_inds, n_inds : int64 array, shape (N,)
    dist_ap, dist_an : array, shape (N,)
    dist_mat : array, shape (N, N)

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> feat = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> out = numba_impl.global_loss(numba_impl.TripletLoss(0.3), feat, np.array([0, 0, 1]))
    >>> [o.shape for o in out]
    [(), (3,), (3,), (3,), (3,), (3, 3)]
    """
    ops, global_feat, labels = _global_args("global_loss", tri_loss, global_feat, labels)
    feat = ops.normalize(global_feat, 1) if normalize_feature else global_feat
    dist_mat = ops.euclidean_dist(feat, feat)
    dist_ap, dist_an, p_inds, n_inds = hard_example_mining(dist_mat, labels, return_inds=True)
    return tri_loss(dist_ap, dist_an), p_inds, n_inds, dist_ap, dist_an, dist_mat


@follows_torch
def global_loss_vjp(tri_loss, global_feat, labels, normalize_feature=True):
    """Gradient of ``global_loss(...)[0]`` with respect to ``global_feat``.

    Returns
    -------
    grad_global_feat : array, shape (N, C)

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> feat = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> numba_impl.global_loss_vjp(numba_impl.TripletLoss(0.3), feat, np.array([0, 0, 1])).shape
    (3, 2)
    """
    ops, global_feat, labels = _global_args("global_loss_vjp", tri_loss, global_feat, labels)
    feat = ops.normalize(global_feat, 1) if normalize_feature else global_feat
    grad_dist = _mined_grad(ops, tri_loss, ops.euclidean_dist(feat, feat), labels)
    grad_x, grad_y = ops.euclidean_dist_vjp(feat, feat, grad_dist)
    grad_feat = ops.add(grad_x, grad_y)
    return ops.normalize_vjp(global_feat, grad_feat, 1) if normalize_feature else grad_feat


def _local_args(func, tri_loss, local_feat, p_inds, n_inds, labels):
    _tri_loss(func, tri_loss)
    target, local_feat = _checks.float_array(func, "local_feat", local_feat, "(N, H, c)", ndim=3)
    count = local_feat.shape[0]
    if (p_inds is None) != (n_inds is None):
        raise ValueError(f"{func}: give both p_inds and n_inds, or neither; got only "
                         f"{'p_inds' if n_inds is None else 'n_inds'}")
    if p_inds is None:
        if labels is None:
            raise ValueError(f"{func}: labels are required when p_inds and n_inds are not given")
        labels = _checks.labels_array(func, labels, count, target)
    else:
        p_inds = _checks.index_array(func, "p_inds", p_inds, count, target)
        n_inds = _checks.index_array(func, "n_inds", n_inds, count, target)
        if labels is not None:  # unused with indices, but a wrong one is still an error
            labels = _checks.labels_array(func, labels, count, target)
    return backend(target), local_feat, p_inds, n_inds, labels


@follows_torch
def local_loss(tri_loss, local_feat, p_inds=None, n_inds=None, labels=None, normalize_feature=True):
    """Triplet loss on local distances, with given hard examples or mined on the local distance.

    Parameters
    ----------
    tri_loss : TripletLoss
    local_feat : ndarray or CUDA array, shape (N, H, c), float32 or float64
    p_inds, n_inds : integer array, shape (N,), optional
        Hard positives and negatives (typically mined on the global distance).
    labels : integer array, shape (N,), optional
        Required without indices: mining then uses the local distance itself.
    normalize_feature : bool
        Normalise each stripe feature to unit length first.

    Returns
    -------
    With indices ``loss, dist_ap, dist_an``; without ``loss, dist_ap, dist_an, dist_mat``.

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> feat = np.random.default_rng(0).normal(size=(4, 3, 2))
    >>> loss, ap, an, dist = numba_impl.local_loss(numba_impl.TripletLoss(0.3), feat,
    ...                                            labels=np.array([0, 0, 1, 1]))
    >>> dist.shape
    (4, 4)
    """
    ops, local_feat, p_inds, n_inds, labels = _local_args(
        "local_loss", tri_loss, local_feat, p_inds, n_inds, labels)
    feat = ops.normalize(local_feat, 2) if normalize_feature else local_feat
    if p_inds is not None:
        dist_ap = ops.batch_local_dist(feat, ops.take_rows(feat, p_inds))
        dist_an = ops.batch_local_dist(feat, ops.take_rows(feat, n_inds))
        return tri_loss(dist_ap, dist_an), dist_ap, dist_an
    dist_mat = ops.local_dist(feat, feat)
    dist_ap, dist_an = hard_example_mining(dist_mat, labels)
    return tri_loss(dist_ap, dist_an), dist_ap, dist_an, dist_mat


@follows_torch
def local_loss_vjp(tri_loss, local_feat, p_inds=None, n_inds=None, labels=None,
                   normalize_feature=True):
    """Gradient of ``local_loss(...)[0]`` with respect to ``local_feat``.

    Each selected distance depends on the features twice, as anchor and as the chosen
    sample; both gradients are gathered back (repeated indices accumulate).

    Returns
    -------
    grad_local_feat : array, shape (N, H, c)

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> feat = np.random.default_rng(0).normal(size=(4, 3, 2))
    >>> numba_impl.local_loss_vjp(numba_impl.TripletLoss(0.3), feat,
    ...                           labels=np.array([0, 0, 1, 1])).shape
    (4, 3, 2)
    """
    ops, local_feat, p_inds, n_inds, labels = _local_args(
        "local_loss_vjp", tri_loss, local_feat, p_inds, n_inds, labels)
    feat = ops.normalize(local_feat, 2) if normalize_feature else local_feat
    if p_inds is None:
        grad_dist = _mined_grad(ops, tri_loss, ops.local_dist(feat, feat), labels)
        grad_feat = ops.add(*ops.local_dist_vjp(feat, feat, grad_dist))
    else:
        chosen = [(inds, ops.take_rows(feat, inds)) for inds in (p_inds, n_inds)]
        grads = tri_loss.vjp(*(ops.batch_local_dist(feat, other) for _, other in chosen))
        grad_feat = ops.zeros(tuple(feat.shape), feat.dtype)
        for (inds, other), grad in zip(chosen, grads):
            grad_anchor, grad_other = ops.batch_local_dist_vjp(feat, other, grad)
            grad_feat = ops.add(grad_feat, grad_anchor)
            ops.add_rows_at(grad_feat, inds, grad_other)  # the chosen sample's share
    return ops.normalize_vjp(local_feat, grad_feat, 2) if normalize_feature else grad_feat
