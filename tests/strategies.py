"""Hypothesis strategies: cost matrices, monotone paths, stripe features and labels."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

DTYPES = st.sampled_from([np.float32, np.float64])


@st.composite
def cost_matrices(draw, min_side=1, max_side=16, dtype=None, batch=False, ties=None):
    """Non-negative cost matrices ``[m, n]`` (or ``[m, n, k]`` when ``batch``).

    With ``ties`` (drawn when None) the entries come from a handful of values such as
    0.25 and 0.5, so that equal partial sums, hence ties in formula 2, are common.
    """
    dtype = draw(DTYPES) if dtype is None else dtype
    m = draw(st.integers(min_side, max_side))
    n = draw(st.integers(min_side, max_side))
    shape = (m, n) + ((draw(st.integers(1, 4)),) if batch else ())
    ties = draw(st.booleans()) if ties is None else ties
    if ties:
        elements = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])
    else:
        elements = st.floats(0, 1, width=np.finfo(dtype).bits, allow_subnormal=False)
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


# --- issue 9: indices, layouts, infinite cells
from reference.crosscheck import LAYOUTS  # noqa: E402 - kept with the strategies that use it


@st.composite
def cost_matrices_with_extremes(draw, min_side=1, max_side=16, dtype=None, batch=False):
    """Cost matrices with some cells ``+inf`` or so large that path sums overflow to ``+inf``.

    Where every path through a cell is infinite, the comparisons of formula 2 tie between
    infinities, and on the first row and column with the ``+inf`` padding that some
    implementations read outside the matrix: the gradient must still stay inside it.
    No ``-inf``: with ``+inf`` in the same matrix it makes NaN (``inf - inf``).
    """
    d = draw(cost_matrices(min_side, max_side, dtype=dtype, batch=batch))
    big = np.finfo(d.dtype).max
    extremes = np.array([np.inf, big, big / 2], dtype=d.dtype)
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
