"""Per-element bodies written once and compiled for both targets (see ``_dp.py``).

``cpu/jit.py`` compiles every function here with ``numba.njit``, ``gpu/launch.py`` with
``cuda.jit(device=True)`` (``_compile.for_target``): a call between functions of this
module calls the version compiled for the same target, and ``tanh`` is the target's own
(``cpu/tanh.py``, vectorisable, on the CPU; ``math.tanh`` on the GPU).

No Python float constants: a float constant would promote float32 arithmetic to float64.
The zero of the data's dtype is written ``clamp - clamp``; one comes in as an argument.
"""
import math

#: Formula 1's ``tanh``; the CPU compiles its own in its place (``cpu/jit.py``).
tanh = math.tanh


def clamped(sq, clamp):
    """``max(sq, clamp)`` that keeps a NaN (as np.maximum), so NaN input gives NaN out."""
    return clamp if sq < clamp else sq


def sq_dist(x, r, i, y, s, j):
    """``|x[r, i] - y[s, j]|^2`` from explicit differences (no cancellation, as the oracle)."""
    diff = x[r, i, 0] - y[s, j, 0]
    total = diff * diff
    for f in range(1, x.shape[2]):
        diff = x[r, i, f] - y[s, j, f]
        total += diff * diff
    return total


def euclid(sq, clamp):
    """The Euclidean distance of a squared distance: ``sqrt(max(sq, clamp))``."""
    return math.sqrt(clamped(sq, clamp))


def stripe(e, half):
    """Formula 1 on a Euclidean distance: ``(e^x - 1) / (e^x + 1)`` as ``tanh(e / 2)``."""
    return tanh(e * half)


def stripe_of_sq(sq, half, clamp):
    """Formula 1 on a squared distance: ``tanh(sqrt(max(sq, clamp)) / 2)``."""
    return stripe(euclid(sq, clamp), half)


def stripe_slope(t, half):
    """The derivative of formula 1 given its value ``t``: ``(1 - t^2) / 2``."""
    return (half + half - t * t) * half


def euclid_coef(sq, grad, clamp):
    """The chain rule from ``grad`` on ``euclid(sq)`` to the difference vector it is the
    length of, per unit of that vector: ``grad / sqrt(sq)``; zero where the clamp is
    active (its gradient) and for a NaN ``sq``."""
    return grad / math.sqrt(sq) if sq >= clamp else clamp - clamp


def path_coef(sq, t, flow, half, clamp):
    """The chain rule from a cell's flow of formula 2 back to its two stripes' difference
    vector, given ``t = stripe_of_sq(sq)``: zero where no flow passes."""
    if flow == 0:
        return clamp - clamp
    return euclid_coef(sq, flow * stripe_slope(t, half), clamp)


def scaled_norm(x, o, k, eps):
    """``(s, ||x[o, :, k] / s||)``: the norm of a vector of ``x`` without overflow.

    ``s`` is 1 where the plain sum of squares is finite (the usual case: ``x / s`` is then
    ``x``, bit for bit) and the vector's largest ``|x|`` where that sum overflows, so that
    no finite vector's norm overflows. A vector holding ``±inf`` or NaN keeps ``s = 1``
    (norm inf or NaN). ``eps`` (positive) gives the constant 1 in the data's dtype.
    """
    length = x.shape[1]
    sq = x[o, 0, k] * x[o, 0, k]
    for a in range(1, length):
        sq += x[o, a, k] * x[o, a, k]
    one = eps / eps
    if sq == sq and sq - sq == sq - sq:  # finite (inf - inf and NaN are NaN)
        return one, math.sqrt(sq)
    largest = abs(x[o, 0, k])
    for a in range(1, length):
        v = abs(x[o, a, k])
        largest = v if v > largest else largest
    if not (sq == sq and largest - largest == largest - largest):  # NaN, or an infinite entry
        return one, math.sqrt(sq)
    total = eps - eps
    for a in range(length):
        r = x[o, a, k] / largest
        total += r * r
    return largest, math.sqrt(total)


def normalize_vector(x, o, k, eps, out):
    """``out[o, :, k]``: ``(x / s) / (||x / s|| + eps / s)`` with ``s`` from ``scaled_norm``."""
    scale, norm = scaled_norm(x, o, k, eps)
    denom = norm + eps / scale
    for a in range(x.shape[1]):
        out[o, a, k] = (x[o, a, k] / scale) / denom


def normalize_vector_vjp(x, g, o, k, eps, out):
    """``out[o, :, k]``: the oracle's grouping ``(g / s - (x / s) (<x, g> / ||x|| / s))``,
    on ``x / c`` and divided by ``c`` where ``normalize_vector`` rescales by ``c``."""
    scale, norm = scaled_norm(x, o, k, eps)
    denom = norm + eps / scale
    along = (x[o, 0, k] / scale) * g[o, 0, k]
    for a in range(1, x.shape[1]):
        along += (x[o, a, k] / scale) * g[o, a, k]
    for a in range(x.shape[1]):
        radial = eps - eps  # the radial term's limit is 0 for a zero vector
        if norm > 0:
            radial = ((x[o, a, k] / scale) / denom) * (along / norm / denom)
        out[o, a, k] = (g[o, a, k] / denom - radial) / scale


def softplus(z):
    """``logaddexp(0, z)`` with NumPy's branches, so the result matches np.logaddexp."""
    if z == 0:
        return z + math.log1p(math.exp(z))  # 0 + log(2)
    if -z > 0:
        return math.log1p(math.exp(z))
    return z + math.log1p(math.exp(-z))


def triplet_terms(ap, an, margin, one, soft):
    """One anchor's loss and its slope ``d loss / d ap``: the soft margin
    ``logaddexp(0, ap - an)`` (slope the logistic function, finite for any difference), or
    ``max(0, ap - an + margin)`` (slope 1 above the kink, 0 at and below it; NaN stays NaN).
    """
    z = ap - an
    if soft:
        return softplus(z), math.exp(-softplus(-z))
    zero = one - one
    v = z + margin
    return (zero if v <= zero else v), (one if v > zero else zero)


def mine_anchor(dist, labels, a):
    """Hardest positive and negative of anchor ``a``; ``-1`` when it has no negative.

    Strict comparisons in ascending order give ties to the lowest index. NaN counts as
    the extreme for both (as ``np.argmax``/``np.argmin`` treat it): the first NaN
    candidate is taken and kept, so a NaN distance is never skipped for a finite one.
    """
    best_p = -1
    best_n = -1
    p_val = dist[a, a]
    n_val = dist[a, a]
    for b in range(dist.shape[0]):
        v = dist[a, b]
        if labels[b] == labels[a]:
            if best_p < 0 or (p_val == p_val and (v > p_val or v != v)):
                best_p, p_val = b, v
        elif best_n < 0 or (n_val == n_val and (v < n_val or v != v)):
            best_n, n_val = b, v
    return best_p, best_n


def mine(dist, labels, a, dist_ap, dist_an, p_inds, n_inds):
    """Anchor ``a``'s hard examples and their distances into the four outputs (the
    negative's distance is a placeholder, ``dist[a, 0]``, where it has none)."""
    best_p, best_n = mine_anchor(dist, labels, a)
    p_inds[a] = best_p
    n_inds[a] = best_n
    dist_ap[a] = dist[a, best_p]
    dist_an[a] = dist[a, max(best_n, 0)]
