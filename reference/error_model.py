"""Error models behind the tolerances with which implementations are compared to the oracle.

``u`` is the unit roundoff of the dtype (half its machine epsilon). Bounds are worst-case
first-order bounds in the style of Higham, *Accuracy and Stability of Numerical
Algorithms* (2002), chapter 3; they are computed in float64 from the inputs.

- Squared distances. An implementation may use the expansion ``|f|^2 + |g|^2 - 2 f.g``
  (matrix products) instead of explicit differences. Each of the three terms is a dot
  product of length ``d`` with error at most ``gamma(d) * |f||g|``-like terms, and the two
  additions add ``2u``, so ``|delta sq| <= 2 gamma(d + 2) (|f|^2 + |g|^2)``.
- Distances. ``|sqrt(a) - sqrt(b)| <= min(sqrt(|a - b|), |a - b| / sqrt(max(a, b)))``
  plus one rounding of the square root; the first form covers cancellation near zero.
- Formula 1 is 1/2-Lipschitz: ``|delta tanh(e/2)| <= |delta e| / 2``, plus ``2u`` for the
  rounded tanh and halving.
- Formula 2 is 1-Lipschitz in the max norm along a path: a change of at most ``delta`` in
  every cell moves the shortest path length by at most ``(m+n-1) delta``; its own
  ``m+n-2`` rounded additions of partial sums below ``m+n-1`` add ``(m+n-1)^2 u``.
- Both the implementation and the oracle carry such errors, hence a factor 2.

Extreme inputs (features near the overflow threshold, or ``±inf``):

- The bounds are computed on each stripe pair scaled by a power of two (exact) that brings
  its largest finite entry below 1, so they do not overflow in float64 themselves, and a
  small pair beside a huge one keeps its own precision.
- A stripe pair holding ``±inf`` or NaN has an exactly determined result (``inf``, or
  NaN from NaN or ``inf - inf``): bound 0, so both must agree exactly.
- Where the exact squared distance lies within the bound above of the dtype's largest
  number, either side may round to ``inf`` and the other not: that distance's bound is
  ``inf``. Beyond it both overflow to ``inf`` and must agree.
- Formula 1 flattens: ``tanh`` is increasing and its slope ``(1 - tanh^2) / 2`` falls
  with the argument, so an error ``de`` in ``e`` moves ``tanh(e/2)`` by at most
  ``de/2 * (1 - tanh^2(max(0, e - de)/2))``, and never by more than 1 (its range). Huge
  distances therefore keep a tight bound (``tanh`` rounds to 1 on both sides).
"""
import numpy as np

from . import distance
from .path import _table, shortest_path


def unit_roundoff(dtype):
    """Half the machine epsilon of ``dtype``."""
    return float(np.finfo(dtype).eps) / 2


def gamma(k, u):
    """Higham's ``gamma_k = k u / (1 - k u)``: the relative error bound of ``k`` roundings."""
    return k * u / (1 - k * u)


def _euclid64(x, y):
    """Stripe distances between ``x [..., m, d]`` and ``y [..., n, d]`` in float64 (clamped as
    the oracle clamps, ``distance.SQ_DIST_CLAMP``)."""
    diff = x[..., :, None, :] - y[..., None, :, :]
    return np.sqrt(np.maximum(np.sum(diff * diff, axis=-1), distance.SQ_DIST_CLAMP))


def _largest(u):
    """The largest finite number of the float dtype whose unit roundoff is ``u``."""
    for dtype in (np.float16, np.float32, np.float64):
        if unit_roundoff(dtype) == u:
            return float(np.finfo(dtype).max)
    return np.inf


def _pair_scales(x, y):
    """``c[..., i, j] = 2^-k <= 1`` such that ``c |a| < 1`` for every finite entry ``a`` of
    stripes ``x[..., i, :]`` and ``y[..., j, :]``: scaling a pair by its ``c`` is exact, and
    the squares of its scaled entries cannot overflow in float64; a small stripe beside a
    huge one loses only what is negligible next to the huge one."""
    def top(a):
        return np.max(np.abs(a), axis=-1, where=np.isfinite(a), initial=0.0)
    largest = np.maximum(top(x)[..., :, None], top(y)[..., None, :])
    exponent = np.frexp(largest)[1]
    return np.where(largest < 1, 1.0, np.ldexp(1.0, -exponent))


def _euclid_error(x, y, u):
    """``(euclid, bound, may_overflow)`` for the stripe distances of ``x`` and ``y``.

    ``euclid`` is the float64 distance (clamped; ``inf`` where it exceeds float64),
    ``bound`` the finite bound of the module docstring (0 for pairs holding ``±inf`` or
    NaN), ``may_overflow`` where the dtype of ``u`` may or may not overflow to ``inf``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    c = _pair_scales(x, y)  # [..., m, n]: each pair in its own units, no overflow, no underflow
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        xs = x[..., :, None, :] * c[..., None]
        ys = y[..., None, :, :] * c[..., None]
        sq_x = np.sum(xs * xs, axis=-1)
        sq_y = np.sum(ys * ys, axis=-1)
        diff = xs - ys
        # the oracle's clamp, scaled (a module's own clamp at 0 may leave a distance of 0:
        # then only the cancellation form of the bound applies)
        sq = np.maximum(np.sum(diff * diff, axis=-1), distance.SQ_DIST_CLAMP * c * c)
        euclid = np.sqrt(sq)
        delta_sq = 2 * gamma(x.shape[-1] + 2, u) * (sq_x + sq_y)
        # Normalising in the implementation moves each feature by about 3u of its length.
        delta_inputs = 3 * u * (np.sqrt(sq_x) + np.sqrt(sq_y))
        relative = np.divide(delta_sq, euclid, out=np.full_like(euclid, np.inf), where=euclid > 0)
        bound = np.minimum(np.sqrt(delta_sq), relative) + 2 * u * euclid + delta_inputs
        finite = np.isfinite(sq_x + sq_y)
        # |sq - top| <= delta_sq in unscaled units, written on square roots (no overflow)
        top = np.sqrt(_largest(u)) * c
        may_overflow = finite & (np.sqrt(sq + delta_sq) >= top) & (np.sqrt(np.maximum(
            sq - delta_sq, 0)) <= top)
        return euclid / c, np.where(finite, bound / c, 0.0), may_overflow


def euclid_bound(x, y, u):
    """Bound on the error of every stripe distance between ``x [..., m, d]`` and ``y [..., n, d]``."""
    _, bound, may_overflow = _euclid_error(x, y, u)
    return np.where(may_overflow, np.inf, bound)


def stripe_bound(x, y, u):
    """Bound on the error of every entry of formula 1 for the pair ``x``, ``y``."""
    euclid, bound, _ = _euclid_error(x, y, u)
    with np.errstate(invalid="ignore"):
        reach = np.maximum(euclid - bound, 0) / 2  # NaN for pairs holding NaN
        slope = 1 - np.tanh(np.where(np.isnan(reach), 0, reach)) ** 2
    return np.minimum(bound / 2 * slope, 1.0) + 2 * u


def path_bound(cell_bound, m, n, u):
    """Bound on the error of formula 2 given a bound on each cell (max over the last two axes)."""
    k = m + n - 1
    return k * np.max(cell_bound, axis=(-2, -1)) + k * k * u


def local_dist_tolerance(x, y, dtype):
    """Tolerance for ``local_dist(x, y)`` against the oracle: shape ``[M, N]``."""
    u = unit_roundoff(dtype)
    cells = stripe_bound(np.asarray(x)[:, None], np.asarray(y)[None, :], u)
    return 2 * path_bound(cells, x.shape[1], y.shape[1], u)


def batch_local_dist_tolerance(x, y, dtype):
    """Tolerance for ``batch_local_dist(x, y)`` against the oracle: shape ``[N]``."""
    u = unit_roundoff(dtype)
    return 2 * path_bound(stripe_bound(x, y, u), x.shape[1], y.shape[1], u)


def path_margin(dist_mat):
    """How far the best path of ``dist_mat [m, n]`` is from a tie with any other path.

    The best path through cell ``(i, j)`` costs ``F[i,j] + B[i,j] - d[i,j]``, with ``F``
    the table of formula 2 from the top-left and ``B`` the same from the bottom-right. Any
    other path leaves the optimal one somewhere, so the runner-up costs the least of these
    over the cells off the optimal path. Returns ``inf`` when there is only one path.
    """
    d = np.asarray(dist_mat, dtype=np.float64)
    forward = _table(d)
    backward = _table(d[::-1, ::-1])[::-1, ::-1]
    through = forward + backward - d
    _, _, path = shortest_path(d)
    off_path = np.ones(d.shape, dtype=bool)
    off_path[tuple(np.array(path).T)] = False
    if not off_path.any():
        return np.inf
    return float(np.min(through[off_path]) - forward[-1, -1])


def mining_margin(dist_mat, labels):
    """Smallest gap, over anchors, between the chosen hard example and the runner-up.

    A cross-check of mined losses is only meaningful when this exceeds the distance
    tolerance: otherwise two correct implementations may pick different samples.
    """
    dist_mat = np.asarray(dist_mat, dtype=np.float64)
    gaps = [np.inf]
    for anchor, label in enumerate(labels):
        same = labels == label
        for values in (np.sort(dist_mat[anchor, same])[::-1], np.sort(dist_mat[anchor, ~same])):
            if values.size > 1:
                gaps.append(abs(values[0] - values[1]))
    return float(min(gaps))


def local_grad_bounds(x, y, dtype):
    """Bound on the error of the feature gradient of the local distance of each pair ``x``, ``y``.

    The gradient of one pair is a sum over at most ``m+n-1`` path cells of
    ``w (f_i - g_j) / e_ij`` with ``w = (1 - t^2)/2 <= 1/2``; an error ``de`` in ``e_ij``
    changes the unit vector by at most ``2 de / e`` and ``w`` by at most ``de / 2``. The
    path itself must be the same in both implementations (check ``path_margin`` first).
    Returns one bound per pair (shape ``x.shape[:-2]`` broadcast with ``y.shape[:-2]``).
    """
    u = unit_roundoff(dtype)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    euclid = _euclid64(x, y)
    cell = euclid_bound(x, y, u)
    # A cell 0 apart (no clamp: a module's own convention) has gradient 0 on both sides.
    turn = np.divide(2 * cell, euclid, out=np.zeros_like(cell), where=euclid > 0)
    return (x.shape[-2] + y.shape[-2] - 1) * np.max(turn + cell / 2 + 4 * u, axis=(-2, -1))


def local_grad_tolerance(x, y, grad_out, dtype):
    """Tolerance for feature gradients of the local distances of pairs ``x``, ``y`` weighted by
    ``grad_out``: the bounds of ``local_grad_bounds`` summed with weights ``|grad_out|``,
    doubled for the two implementations compared."""
    return 2 * float(np.sum(np.abs(grad_out) * local_grad_bounds(x, y, dtype)))


def _loss_grad_tolerance(pair_bounds, value_bound, gradient_size, raw_feat):
    """Common tail of the mined-loss gradient tolerances.

    The loss gives weight at most ``1/N`` to each of ``2N`` selected distances (total 2),
    so feature-gradient errors add up to ``2 * max(pair_bounds)``; the loss's own slope
    (sigmoid, 1/4-Lipschitz, or a relu away from its kink) moves by at most
    ``2 value_bound / 4`` and multiplies a distance gradient of size ``gradient_size``.
    normalize's Jacobian scales everything by at most ``1 / min |x|``. Doubled for the
    two implementations compared.
    """
    per_feature = 2 * np.max(pair_bounds) + value_bound / 2 * gradient_size
    return 2 * per_feature / np.min(np.linalg.norm(raw_feat, axis=-1))


def global_loss_grad_tolerance(global_feat, dtype):
    """Tolerance for ``global_loss``'s feature gradient (normalised features, mined)."""
    u = unit_roundoff(dtype)
    feat = np.asarray(global_feat, dtype=np.float64)
    feat = feat / np.linalg.norm(feat, axis=-1, keepdims=True)
    a, k = np.nonzero(~np.eye(len(feat), dtype=bool))
    bound = euclid_bound(feat[a][:, None], feat[k][:, None], u)[:, 0, 0]
    euclid = _euclid64(feat[a][:, None], feat[k][:, None])[:, 0, 0]
    # a unit vector (x - y) / e moved by de: 2 de / e; plus the roundings of the division
    return _loss_grad_tolerance(2 * bound / euclid + 4 * u, np.max(bound), 1.0, global_feat)


def local_loss_grad_tolerance(local_feat, dtype):
    """Tolerance for ``local_loss``'s feature gradient (normalised stripes, mined or given)."""
    feat = np.asarray(local_feat, dtype=np.float64)
    feat = feat / np.linalg.norm(feat, axis=-1, keepdims=True)
    a, k = np.nonzero(~np.eye(len(feat), dtype=bool))
    pair_bounds = local_grad_bounds(feat[a], feat[k], dtype)
    value_bound = np.max(batch_local_dist_tolerance(feat[a], feat[k], dtype))
    m = feat.shape[1]
    return _loss_grad_tolerance(pair_bounds, value_bound, (2 * m - 1) / 2, local_feat)
