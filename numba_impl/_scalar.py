"""Per-element helpers written once and compiled for both targets (see ``_dp.py``).

``cpu.py`` compiles them with ``numba.njit``, ``gpu.py`` with ``cuda.jit(device=True)``.
No Python float constants: the zero of the data's dtype is written ``clamp - clamp``.
"""
import math


def clamped(sq, clamp):
    """``max(sq, clamp)`` that keeps a NaN (as np.maximum), so NaN input gives NaN out."""
    return clamp if sq < clamp else sq


def stripe(sq, half, clamp):
    """Formula 1 on a squared distance: ``tanh(sqrt(max(sq, clamp)) / 2)``.

    The clamp is written out, not a call of ``clamped``: a plain function cannot call
    another before both are compiled for the same target.
    """
    return math.tanh(math.sqrt(clamp if sq < clamp else sq) * half)


def stripe_coef(sq, flow, half, clamp):
    """Chain rule from a stripe distance back to its two stripes' difference vector.

    ``d tanh(e/2)/de = (1 - t^2)/2`` and ``d e/d(x - y) = (x - y)/e``; zero where the
    1e-12 clamp is active (its gradient) and where no flow of formula 2 passes.
    """
    if not (sq >= clamp) or flow == 0:
        return clamp - clamp
    e = math.sqrt(sq)
    t = math.tanh(e * half)
    return flow * ((half + half - t * t) * half) / e


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


def softplus(z):
    """``logaddexp(0, z)`` with NumPy's branches, so the result matches np.logaddexp."""
    if z == 0:
        return z + math.log1p(math.exp(z))  # 0 + log(2)
    if -z > 0:
        return math.log1p(math.exp(z))
    return z + math.log1p(math.exp(-z))


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
