"""Triplet loss on mined distances, and the global and local losses of AlignedReID."""

import numpy as np

from alignedreid_dp import arguments

from . import _checks
from .distance import _euclidean, euclidean_dist_vjp, normalize, normalize_vjp
from .local import _pair_dist, batch_local_dist_vjp, local_dist, local_dist_vjp
from .mining import hard_example_mining


class TripletLoss:
    """Batch-hard triplet loss on the distances to the hardest positive and negative.

    Parameters
    ----------
    margin : float or None
        With a finite margin: ``mean(max(0, ap - an + margin))``; an infinite or NaN
        margin is refused. With ``None``, the soft margin ``mean(log(1 + exp(ap - an)))``,
        computed as ``logaddexp(0, ap - an)`` so that large differences do not overflow.

    Examples
    --------
    >>> import numpy as np, reference
    >>> loss = reference.TripletLoss(margin=0.3)
    >>> float(loss(np.array([0.5, 0.1]), np.array([0.4, 0.9]))).__round__(6)
    0.2
    """

    def __init__(self, margin=None):
        # finite or None: with +-inf the hinge or its slope would meet inf - inf or 0 * inf,
        # and NaN has no meaning as a margin
        self.margin = None if margin is None else arguments.finite_float(
            "TripletLoss", "margin", margin, "a finite real number or None")

    def __repr__(self):
        return f"TripletLoss(margin={self.margin})"

    def _difference(self, func, dist_ap, dist_an):
        _checks.float_array(func, "dist_ap", dist_ap, "(N,)", ndim=1)
        _checks.float_array(func, "dist_an", dist_an, "(N,)", ndim=1)
        _checks.same_dtype(func, "dist_an", dist_an, "dist_ap", dist_ap)
        _checks.same_size(func, "dist_an", dist_an, 0, dist_ap.shape[0], "the length of dist_ap")
        return dist_ap - dist_an

    def __call__(self, dist_ap, dist_an):
        """The loss, a scalar of the dtype of the distances."""
        z = self._difference("TripletLoss", dist_ap, dist_an)
        losses = np.logaddexp(0, z) if self.margin is None else np.maximum(z + self.margin, 0)
        return np.mean(losses)

    def vjp(self, dist_ap, dist_an, grad_out=1.0):
        """Gradients ``(grad_ap, grad_an)`` of the loss pulled back from ``grad_out``.

        The soft margin's derivative is the logistic function ``1 / (1 + exp(-z))``,
        written as ``exp(-logaddexp(0, -z))`` to stay finite; the margin loss's is 1
        where ``z + margin > 0`` and 0 elsewhere (0 at the kink, as ``relu`` has it).
        """
        z = self._difference("TripletLoss.vjp", dist_ap, dist_an)
        grad_out = _checks.grad_like("TripletLoss.vjp", grad_out, (), z.dtype)
        if self.margin is None:
            slope = np.exp(-np.logaddexp(0, -z))
        else:
            slope = (z + self.margin > 0).astype(z.dtype)
        grad = slope * (grad_out / z.shape[0])
        return grad, -grad


def _tri_loss(func, tri_loss):
    if not isinstance(tri_loss, TripletLoss):
        raise TypeError(f"{func}: tri_loss must be a reference.TripletLoss; got {type(tri_loss).__name__}")
    return tri_loss


def _mined_grad(tri_loss, dist_mat, labels):
    """Gradient of the mined triplet loss with respect to the whole distance matrix.

    Mining is a selection: the loss gradient lands on the chosen entries
    ``dist_mat[a, p_inds[a]]`` and ``dist_mat[a, n_inds[a]]`` and nowhere else.
    """
    dist_ap, dist_an, p_inds, n_inds = hard_example_mining(dist_mat, labels, return_inds=True)
    grad_ap, grad_an = tri_loss.vjp(dist_ap, dist_an)
    anchors = np.arange(dist_mat.shape[0])
    grad_dist = np.zeros_like(dist_mat)
    np.add.at(grad_dist, (anchors, p_inds), grad_ap)  # add.at: an anchor may be its own positive
    np.add.at(grad_dist, (anchors, n_inds), grad_an)
    return grad_dist


def global_loss(tri_loss, global_feat, labels, normalize_feature=True):
    """Triplet loss on the Euclidean distances of global features, with batch-hard mining.

    Parameters
    ----------
    tri_loss : TripletLoss
    global_feat : ndarray, shape (N, C), float32 or float64
    labels : ndarray of int, shape (N,)
    normalize_feature : bool
        Normalise each feature to unit length first.

    Returns
    -------
    loss : scalar
    p_inds, n_inds : ndarray of int64, shape (N,)
    dist_ap, dist_an : ndarray, shape (N,)
    dist_mat : ndarray, shape (N, N)

    Examples
    --------
    >>> import numpy as np, reference
    >>> feat = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> out = reference.global_loss(reference.TripletLoss(0.3), feat, np.array([0, 0, 1]))
    >>> [o.shape for o in out]
    [(), (3,), (3,), (3,), (3,), (3, 3)]
    """
    func = "global_loss"
    _tri_loss(func, tri_loss)
    _checks.float_array(func, "global_feat", global_feat, "(N, C)", ndim=2)
    _checks.labels_array(func, labels, global_feat.shape[0])
    feat = normalize(global_feat, axis=-1) if normalize_feature else global_feat
    dist_mat = _euclidean(feat, feat)
    dist_ap, dist_an, p_inds, n_inds = hard_example_mining(dist_mat, labels, return_inds=True)
    return tri_loss(dist_ap, dist_an), p_inds, n_inds, dist_ap, dist_an, dist_mat


def global_loss_vjp(tri_loss, global_feat, labels, normalize_feature=True):
    """Gradient of ``global_loss(...)[0]`` with respect to ``global_feat``.

    The mined indices are a selection and carry no gradient; the selected entries of the
    distance matrix do: the loss gradient lands on ``dist_mat[a, p_inds[a]]`` and
    ``dist_mat[a, n_inds[a]]``, then flows through the Euclidean distance (both of its
    arguments are the features) and the normalisation.

    Returns
    -------
    grad_global_feat : ndarray, shape (N, C)

    Examples
    --------
    >>> import numpy as np, reference
    >>> feat = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> reference.global_loss_vjp(reference.TripletLoss(0.3), feat, np.array([0, 0, 1])).shape
    (3, 2)
    """
    func = "global_loss_vjp"
    _tri_loss(func, tri_loss)
    _checks.float_array(func, "global_feat", global_feat, "(N, C)", ndim=2)
    _checks.labels_array(func, labels, global_feat.shape[0])
    feat = normalize(global_feat, axis=-1) if normalize_feature else global_feat
    grad_dist = _mined_grad(tri_loss, _euclidean(feat, feat), labels)
    grad_x, grad_y = euclidean_dist_vjp(feat, feat, grad_dist)
    grad_feat = grad_x + grad_y
    return normalize_vjp(global_feat, grad_feat, axis=-1) if normalize_feature else grad_feat


def _local_loss_args(func, tri_loss, local_feat, p_inds, n_inds, labels):
    _tri_loss(func, tri_loss)
    _checks.float_array(func, "local_feat", local_feat, "(N, H, c)", ndim=3)
    n = local_feat.shape[0]
    if (p_inds is None) != (n_inds is None):
        raise ValueError(f"{func}: give both p_inds and n_inds, or neither; got only "
                         f"{'p_inds' if n_inds is None else 'n_inds'}")
    if p_inds is None:
        if labels is None:
            raise ValueError(f"{func}: labels are required when p_inds and n_inds are not given")
        _checks.labels_array(func, labels, n)
    else:
        _checks.index_array(func, "p_inds", p_inds, n)
        _checks.index_array(func, "n_inds", n_inds, n)
        if labels is not None:  # unused with indices, but a wrong one is still an error
            _checks.labels_array(func, labels, n)


def local_loss(tri_loss, local_feat, p_inds=None, n_inds=None, labels=None, normalize_feature=True):
    """Triplet loss on local distances, with given hard examples or mined on the local distance.

    Parameters
    ----------
    tri_loss : TripletLoss
    local_feat : ndarray, shape (N, H, c), float32 or float64
        ``H`` stripe features of length ``c`` per image.
    p_inds, n_inds : ndarray of int, shape (N,), optional
        Hard positives and negatives, typically mined on the global distance.
    labels : ndarray of int, shape (N,), optional
        Required when the indices are not given: mining then uses the local distance.
    normalize_feature : bool
        Normalise each stripe feature to unit length first.

    Returns
    -------
    With indices: ``loss, dist_ap, dist_an``; without: ``loss, dist_ap, dist_an, dist_mat``.

    Examples
    --------
    >>> import numpy as np, reference
    >>> feat = np.random.default_rng(0).normal(size=(4, 3, 2))
    >>> loss, ap, an, dist = reference.local_loss(reference.TripletLoss(0.3), feat,
    ...                                           labels=np.array([0, 0, 1, 1]))
    >>> dist.shape
    (4, 4)
    """
    func = "local_loss"
    _local_loss_args(func, tri_loss, local_feat, p_inds, n_inds, labels)
    feat = normalize(local_feat, axis=-1) if normalize_feature else local_feat
    if p_inds is not None:
        dist_ap, dist_an = _pair_dist(feat, feat[p_inds]), _pair_dist(feat, feat[n_inds])
        return tri_loss(dist_ap, dist_an), dist_ap, dist_an
    dist_mat = local_dist(feat, feat)
    dist_ap, dist_an = hard_example_mining(dist_mat, labels)
    return tri_loss(dist_ap, dist_an), dist_ap, dist_an, dist_mat


def local_loss_vjp(tri_loss, local_feat, p_inds=None, n_inds=None, labels=None,
                   normalize_feature=True):
    """Gradient of ``local_loss(...)[0]`` with respect to ``local_feat``.

    Each selected distance ``D(f_a, f_k)`` depends on the features twice, as anchor and
    as the chosen sample, so both gradients of the local distance are gathered back
    onto the features (repeated indices accumulate).

    Returns
    -------
    grad_local_feat : ndarray, shape (N, H, c)

    Examples
    --------
    >>> import numpy as np, reference
    >>> feat = np.random.default_rng(0).normal(size=(4, 3, 2))
    >>> reference.local_loss_vjp(reference.TripletLoss(0.3), feat,
    ...                          labels=np.array([0, 0, 1, 1])).shape
    (4, 3, 2)
    """
    func = "local_loss_vjp"
    _local_loss_args(func, tri_loss, local_feat, p_inds, n_inds, labels)
    feat = normalize(local_feat, axis=-1) if normalize_feature else local_feat
    if p_inds is None:
        grad_dist = _mined_grad(tri_loss, local_dist(feat, feat), labels)
        grad_x, grad_y = local_dist_vjp(feat, feat, grad_dist)
        grad_feat = grad_x + grad_y
    else:
        dist_ap, dist_an = _pair_dist(feat, feat[p_inds]), _pair_dist(feat, feat[n_inds])
        grad_ap, grad_an = tri_loss.vjp(dist_ap, dist_an)
        grad_feat = np.zeros_like(feat)
        for inds, grad in ((p_inds, grad_ap), (n_inds, grad_an)):
            grad_anchor, grad_other = batch_local_dist_vjp(feat, feat[inds], grad)
            grad_feat += grad_anchor
            np.add.at(grad_feat, inds, grad_other)  # the chosen sample's share
    return normalize_vjp(local_feat, grad_feat, axis=-1) if normalize_feature else grad_feat
