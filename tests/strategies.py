"""Hypothesis strategies: cost matrices, monotone paths, stripe features and labels."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

DTYPES = st.sampled_from([np.float32, np.float64])


@st.composite
def cost_matrices(draw, min_side=1, max_side=16, dtype=None, batch=False, ties=None,
                  specials=False):
    """Non-negative cost matrices ``[m, n]`` (or ``[m, n, k]`` when ``batch``).

    With ``ties`` (drawn when None) the entries come from a handful of values such as
    0.25 and 0.5, so that equal partial sums, hence ties in formula 2, are common. With
    ``specials`` (drawn when None) some entries are -0, subnormal or +inf: values that a
    flush to zero, a sign lost from a zero or an inf - inf would change.
    """
    dtype = draw(DTYPES) if dtype is None else dtype
    m = draw(st.integers(min_side, max_side))
    n = draw(st.integers(min_side, max_side))
    shape = (m, n) + ((draw(st.integers(1, 4)),) if batch else ())
    ties = draw(st.booleans()) if ties is None else ties
    specials = draw(st.booleans()) if specials is None else specials
    if ties:
        elements = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])
    else:
        elements = st.floats(0, 1, width=np.finfo(dtype).bits, allow_subnormal=False)
    if specials:
        tiny = float(np.finfo(dtype).smallest_subnormal)
        elements = st.one_of(elements, st.sampled_from([-0.0, tiny, 3 * tiny, np.inf]))
    return draw(hnp.arrays(dtype, shape, elements=elements))


@st.composite
def matrix_and_path(draw, max_side=16, **kwargs):
    """A cost matrix and one monotone path through it, as a list of ``(i, j)`` cells."""
    d = draw(cost_matrices(max_side=max_side, **kwargs))
    m, n = d.shape[:2]
    steps = draw(st.permutations([True] * (m - 1) + [False] * (n - 1)))  # True: a step down
    i = j = 0
    path = [(0, 0)]
    for down in steps:
        i, j = (i + 1, j) if down else (i, j + 1)
        path.append((i, j))
    return d, path


@st.composite
def stripe_features(draw, pairs=None, dtype=None, max_images=4, max_stripes=8, max_dim=8,
                    scale=1.0):
    """Two stripe-feature arrays ``x [M, m, d]`` and ``y [N, n, d]`` (``M == N`` when ``pairs``).

    Entries are drawn on a grid of step 1/8 plus a drawn jitter, then scaled, so that
    features are far from the zero-distance clamp unless two stripes are equal.
    """
    dtype = draw(DTYPES) if dtype is None else dtype
    big_m = draw(st.integers(1, max_images))
    big_n = big_m if pairs else draw(st.integers(1, max_images))
    m, n = draw(st.integers(1, max_stripes)), draw(st.integers(1, max_stripes))
    dim = draw(st.integers(1, max_dim))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(big_m, m, dim)) * scale).astype(dtype)
    y = (rng.normal(size=(big_n, n, dim)) * scale).astype(dtype)
    return x, y


@st.composite
def labels(draw, min_ids=2, max_ids=6, max_per_id=5, balanced=None):
    """Identity labels with at least two identities; balanced (P x K) or not, shuffled or not."""
    ids = draw(st.integers(min_ids, max_ids))
    balanced = draw(st.booleans()) if balanced is None else balanced
    if balanced:
        counts = [draw(st.integers(1, max_per_id))] * ids
    else:
        counts = draw(st.lists(st.integers(1, max_per_id), min_size=ids, max_size=ids))
    out = np.repeat(np.arange(ids, dtype=np.int64), counts)
    if draw(st.booleans()):
        out = np.asarray(draw(st.permutations(out)), dtype=np.int64)
    return out


@st.composite
def distance_matrices(draw, n, dtype=None, ties=None):
    """Square distance matrices ``[n, n]``; with ties, from a few values only."""
    dtype = draw(DTYPES) if dtype is None else dtype
    ties = draw(st.booleans()) if ties is None else ties
    elements = (st.sampled_from([0.0, 0.5, 1.0]) if ties
                else st.floats(0, 4, width=np.finfo(dtype).bits, allow_subnormal=False))
    return draw(hnp.arrays(dtype, (n, n), elements=elements))


# --- issue 9: extreme values and NaN in mining
#: Entries that mining must rank like np.argmax/argmin do: NaN first (the extreme for both
#: the hardest positive and the hardest negative), then the infinities, zeros of both signs.
_SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e5]


@st.composite
def extreme_distance_matrices(draw, n, dtype=None):
    """Square matrices ``[n, n]`` mixing ordinary distances with NaN, ``±inf``, values near
    ``1e5`` (a few ulps apart) and near 0 (subnormals included).

    Each matrix draws a small pool of such values and fills its entries from the pool, so
    that equal values, hence ties among NaNs, infinities and near-equal numbers, are common.
    """
    dtype = draw(DTYPES) if dtype is None else dtype
    width = np.finfo(dtype).bits

    def floats(low, high):  # bounds rounded to the dtype, as Hypothesis demands
        return st.floats(float(dtype(low)), float(dtype(high)), width=width)

    pool = draw(st.lists(st.one_of(
        st.sampled_from(_SPECIAL),
        floats(0, 4),
        floats(1e5 * (1 - 1e-6), 1e5 * (1 + 1e-6)),
        floats(-1e-30, 1e-30),
    ), min_size=1, max_size=6))
    return draw(hnp.arrays(dtype, (n, n), elements=st.sampled_from(pool)))


#: Feature scales at which ``|x|^2 + |y|^2 - 2 x.y`` overflows: in float32 some stripe
#: pairs from about 1e19 on, every one at 1e30; in float64 from about 1e154 on.
_HUGE_SCALES = {np.dtype(np.float32): [1e19, 1e30, 1e37],
                np.dtype(np.float64): [1e154, 1e200, 1e300]}


@st.composite
def extreme_stripe_features(draw, pairs=None, dtype=None, max_images=4, max_stripes=6,
                            max_dim=6, images=None):
    """Stripe features ``x [M, m, d]``, ``y [N, n, d]`` at scales where squared norms overflow.

    Each image gets its own scale, drawn from ``_HUGE_SCALES`` or 1, so that huge images
    meet ordinary ones. Some stripes of ``y`` repeat stripes of ``x`` (distance 0 between
    huge vectors), and a few entries are ``±inf``, sometimes in the same feature of an
    ``x`` and a ``y`` stripe (``inf - inf``: NaN in the oracle, the only NaN allowed).
    ``images`` fixes ``M`` (drawn images repeat before they are scaled).
    """
    dtype = np.dtype(draw(DTYPES) if dtype is None else dtype)
    x, y = draw(stripe_features(pairs=pairs, dtype=np.float64, max_images=max_images,
                                max_stripes=max_stripes, max_dim=max_dim))
    if images is not None:
        x = x[np.arange(images) % len(x)]
    scales = st.sampled_from(_HUGE_SCALES[dtype] + [1.0])
    x *= np.array(draw(st.lists(scales, min_size=len(x), max_size=len(x))))[:, None, None]
    y *= np.array(draw(st.lists(scales, min_size=len(y), max_size=len(y))))[:, None, None]
    x, y = x.astype(dtype), y.astype(dtype)
    for _ in range(draw(st.integers(0, 2))):  # a stripe of y copied from x
        q, i = draw(st.integers(0, len(x) - 1)), draw(st.integers(0, x.shape[1] - 1))
        g, j = draw(st.integers(0, len(y) - 1)), draw(st.integers(0, y.shape[1] - 1))
        y[g, j] = x[q, i]
    for _ in range(draw(st.integers(0, 3))):  # an infinite entry, in x, y or both
        f = draw(st.integers(0, x.shape[2] - 1))
        sign = draw(st.sampled_from([1.0, -1.0]))
        where = draw(st.sampled_from(["x", "y", "both"]))
        if where in ("x", "both"):
            x[draw(st.integers(0, len(x) - 1)), draw(st.integers(0, x.shape[1] - 1)), f] = sign * np.inf
        if where in ("y", "both"):
            y[draw(st.integers(0, len(y) - 1)), draw(st.integers(0, y.shape[1] - 1)), f] = sign * np.inf
    return x, y


# --- issue 9: indices, layouts, infinite cells
from reference.crosscheck import LAYOUTS  # noqa: E402 - kept with the strategies that use it


@st.composite
def cost_matrices_with_extremes(draw, min_side=1, max_side=16, dtype=None, batch=False,
                                non_finite=False):
    """Cost matrices with some cells ``+inf`` or so large that path sums overflow to ``+inf``.

    Where every path through a cell is infinite, the comparisons of formula 2 tie between
    infinities, and on the first row and column with the ``+inf`` padding that some
    implementations read outside the matrix: the gradient must still stay inside it.
    No ``-inf`` unless ``non_finite``: with ``+inf`` in the same matrix it makes NaN
    (``inf - inf``); ``non_finite`` plants ``-inf`` and NaN cells too, so that the table
    of formula 2 holds NaN and its comparisons are false both ways.
    """
    d = draw(cost_matrices(min_side, max_side, dtype=dtype, batch=batch))
    big = np.finfo(d.dtype).max
    extremes = np.array([np.inf, big, big / 2] + ([-np.inf, np.nan] if non_finite else []),
                        dtype=d.dtype)
    planted = draw(hnp.arrays(np.bool_, d.shape, elements=st.sampled_from([False, False, True])))
    which = draw(hnp.arrays(np.int8, d.shape, elements=st.integers(0, len(extremes) - 1)))
    d[planted] = extremes[which[planted]]
    return d


def layouts():
    """The memory layouts in which ``reference.crosscheck`` hands inputs over (``in_layout``)."""
    return st.sampled_from(LAYOUTS)


@st.composite
def repeated_along(draw, array, axes=None):
    """``array`` made constant along one axis drawn from ``axes`` (default: any), so that the
    ``expanded`` layout gives it stride 0 there; unchanged when no such axis is longer than 1."""
    axes = [a for a in (range(array.ndim) if axes is None else axes) if array.shape[a] > 1]
    if not axes:
        return array
    axis = draw(st.sampled_from(axes))
    return np.ascontiguousarray(np.broadcast_to(array.take([0], axis=axis), array.shape))


INTEGER_DTYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)


@st.composite
def labels_in_any_integer_dtype(draw, ids):
    """Identity labels ``ids`` (0, 1, ...) renamed in a drawn integer dtype: shifted to the
    dtype's lowest or highest values, to negative ones, or next to 2**24 or 2**53, where
    float32 or float64 would merge neighbours (2**24 + 1 rounds to 2**24 in float32).

    Only equality of labels matters, so every result must be that of ``ids`` itself.
    """
    dtype = draw(st.sampled_from(INTEGER_DTYPES))
    info = np.iinfo(dtype)
    count = int(ids.max()) + 1
    starts = [0, int(info.min), int(info.max) - count + 1, -count, 2**24 - 1, 2**53 - 1]
    start = draw(st.sampled_from([s for s in starts
                                  if info.min <= s and s + count - 1 <= info.max]))
    return np.array([start + int(k) for k in ids], dtype=dtype)  # Python ints: no overflow


def indices_in_any_integer_dtype(inds):
    """Sample indices ``inds`` in a drawn integer dtype (fewer than 128 samples fit them all)."""
    return st.sampled_from(INTEGER_DTYPES).map(inds.astype)
