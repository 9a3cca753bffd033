"""Pitfalls of commonly used AlignedReID implementations, each shown to be avoided here.

The docs refer to these tests by name; every one runs for every implementation.
"""
import numpy as np
import pytest

import reference
from reference import error_model

from .assertions import assert_bitwise, assert_within
from .naive import path_sum

DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64])


# Formula 1 ------------------------------------------------------------------------------
def _uses_each(*names):
    """Parametrise over ``names``, each row marked with the function it needs (the bridge
    ``numba_impl.autograd`` provides some and is skipped only for the others)."""
    return pytest.mark.parametrize(
        "func", [pytest.param(n, marks=pytest.mark.uses(*n.split("+"))) for n in names])


HUGE = np.array([89.0, 100.0, 500.0, 1e4, 3e38], dtype=np.float32)


@_uses_each("stripe_dist", "local_dist", "batch_local_dist", "pair_local_dist")
def test_formula1_no_overflow(impl, ref, func):
    # The literal (e^x - 1) / (e^x + 1): e^x overflows float32 past ~88.7, giving inf / inf.
    # That is the pitfall; the test is meaningful only if the literal form really is NaN on
    # these inputs (and on the ~335 stripe distances below), which this asserts.
    with np.errstate(over="ignore", invalid="ignore"):
        literal = (np.exp(HUGE) - 1) / (np.exp(HUGE) + 1)
    assert np.all(np.isnan(literal)), literal
    if func == "stripe_dist":
        got = impl("stripe_dist", HUGE)
        assert got.dtype == np.float32, got.dtype
        # tanh(x/2) rounds to exactly 1 in float32 once x/2 > 9: no tolerance needed.
        np.testing.assert_array_equal(got, np.ones_like(HUGE), err_msg=f"{impl.name}.stripe_dist")
        return
    # Stripe features ~335 apart (> 88): every cell of the matrix is exactly 1 in float32,
    # so each local distance is exactly the path length m+n-1.
    m, n, dim = 3, 4, 5
    x = np.zeros((2, m, dim), dtype=np.float32)
    y = np.full((2, n, dim), 150.0, dtype=np.float32)
    y[:, :, 1] = -150.0  # different directions, same huge distance
    args = (x[0], y[0]) if func == "pair_local_dist" else (x, y)
    got = impl(func, *args)
    assert np.all(np.isfinite(got)), f"{impl.name}.{func} overflowed: {got}"
    want_shape = {"local_dist": (2, 2), "batch_local_dist": (2,), "pair_local_dist": ()}[func]
    np.testing.assert_array_equal(got, np.full(want_shape, m + n - 1, dtype=np.float32),
                                  err_msg=f"{impl.name}.{func}")
    assert_bitwise(got, ref(func, *args), impl, func, list(args))


# The norm expansion -----------------------------------------------------------------------
@_uses_each("euclidean_dist", "local_dist", "batch_local_dist", "pair_local_dist")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the oracle's IEEE overflow is the point
def test_norm_expansion_no_overflow(impl, ref, func):
    # |x|^2 + |y|^2 - 2 x.y overflows float32 for features near 1e19 (|x|^2 > 3.4e38) and
    # gives inf - inf = NaN; one inf feature does the same at any scale. The explicit
    # differences of the oracle give NaN only for inf - inf of the same infinite feature.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 8)).astype(np.float32)
    y = rng.normal(size=(2, 4, 8)).astype(np.float32)
    x[0] *= np.float32(1e19)  # |x|^2 overflows: the expansion is inf - inf = NaN ...
    y[0, 1:] = x[0, :]        # ... even for stripes 0 apart (the oracle: the 1e-6 floor)
    y[1] *= np.float32(1e30)  # every squared distance overflows
    x[1, 2, 5] = np.inf       # one infinite feature in an ordinary image
    with np.errstate(over="ignore", invalid="ignore"):
        expanded = (np.sum(x[0] ** 2, -1)[:, None] + np.sum(y[0] ** 2, -1)[None]
                    - 2 * x[0] @ y[0].T)
    assert np.isnan(expanded).any(), "the pitfall needs an overflowing expansion here"
    args = (x[0], y[0]) if func in ("euclidean_dist", "pair_local_dist") else (x, y)
    want = ref(func, *args)
    assert not np.isnan(want).any(), want
    tol = (2 * error_model.euclid_bound(*args, error_model.unit_roundoff(np.float32))
           if func == "euclidean_dist" else
           error_model.local_dist_tolerance(x, y, np.float32) if func == "local_dist" else
           error_model.batch_local_dist_tolerance(x, y, np.float32))
    if func == "pair_local_dist":
        tol = tol[0]
    assert_within(impl(func, *args), want, tol, impl, func, list(args))


# Hard-example mining ----------------------------------------------------------------------
@pytest.mark.uses("hard_example_mining")
def test_mining_does_not_skip_nan(impl, ref):
    # A loop keeping the best so far with `v > best` never takes a NaN once it holds a
    # number (every comparison with NaN is false): here anchor 0's NaN positive at index 1
    # was replaced by 0. NaN is the extreme for both choices, as in np.argmax/argmin.
    # Two identities of two images: nothing but the NaN is unusual about this batch.
    d = np.array([[0, np.nan, .3, .9], [.5, 0, .2, .4], [.3, .2, 0, .6], [.9, .4, .6, 0]])
    labels = np.array([0, 0, 1, 1])
    got = impl("hard_example_mining", d, labels, return_inds=True)
    assert np.isnan(got[0][0]) and got[2][0] == 1, f"{impl.name}: {got}"
    for name, g, w in zip(("dist_ap", "dist_an", "p_inds", "n_inds"), got,
                          ref("hard_example_mining", d, labels, return_inds=True)):
        assert_bitwise(g, w, impl, f"hard_example_mining -> {name}", [d, labels])


@pytest.mark.uses("hard_example_mining")
@pytest.mark.parametrize("counts", [(1, 2, 5), (3, 1, 1, 1)], ids=["1-2-5", "3-1-1-1"])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@DTYPES
def test_mining_unbalanced_identities(impl, ref, dtype, ties, counts):
    # Images per identity, shuffled. No P x K reshape can express these batches: with
    # 1, 2 and 5 it fails loudly (30 positives do not fill 8 rows); with 3, 1, 1 and 1 it
    # fits (12 positives in 6 rows of 2) and silently mixes rows up: wrong distances and
    # indices, the images alone in their identity included.
    rng = np.random.default_rng(7)
    n = sum(counts)
    labels = rng.permutation(np.repeat(np.arange(len(counts), dtype=np.int64), counts))
    values = rng.choice([0.0, 0.5, 1.0], size=(n, n)) if ties else rng.uniform(0, 4, (n, n))
    dist_mat = values.astype(dtype)
    got = impl("hard_example_mining", dist_mat, labels, return_inds=True)
    want = ref("hard_example_mining", dist_mat, labels, return_inds=True)
    # Mining is a selection: values and indices must be exactly the oracle's.
    for name, g, w in zip(("dist_ap", "dist_an", "p_inds", "n_inds"), got, want):
        assert_bitwise(g, w, impl, f"hard_example_mining -> {name}", [dist_mat, labels])
    singleton = np.flatnonzero(labels == counts.index(1))[0]
    assert got[2][singleton] == singleton, "an identity's only image is its own hardest positive"


# Formula 2 on the whole matrix -------------------------------------------------------------
# Stripes on a line (d = 1) so that the cheap cells can be placed by hand: stripe 0 of A
# is near the first stripes of B, the last stripe of B near the last stripes of A, so the
# best path runs along the first row and down the last column, far from the first column.
_A = np.array([0.0, 3.0, 3.1, 3.2])[:, None]
_B = np.array([0.0, 0.1, 0.2, 3.1, 3.15])[:, None]


def _stripe_matrix(dtype):
    """Formula 1 on the oracle's distances (which keep the 1e-6 floor of equal stripes)."""
    return np.tanh(reference.euclidean_dist(_A.astype(dtype), _B.astype(dtype)) / 2)


@pytest.mark.uses("shortest_dist", "local_dist", "pair_local_dist")
@DTYPES
def test_local_dist_2d_uses_whole_matrix(impl, ref, dtype):
    d = _stripe_matrix(dtype)
    m, n = d.shape
    paths = reference.monotone_paths(m, n)
    costs = [path_sum(d, p) for p in paths]
    best = min(costs)
    first_column_sum = d[:, 0].sum(dtype=dtype)
    down_then_right = path_sum(d, paths[0])  # the first column, then the last row
    assert paths[0] == [(i, 0) for i in range(m)] + [(m - 1, j) for j in range(1, n)]
    assert best < down_then_right and best != first_column_sum  # the matrix is meaningful

    got = impl("shortest_dist", d)
    # Formula 2 is additions and comparisons only, and rounding is monotone, so the table's
    # minimum equals the minimum of the sequentially rounded path sums: bitwise.
    want = np.asarray(best, dtype=dtype)
    assert_bitwise(got, want, impl, "shortest_dist (brute force)", [d])
    assert got != first_column_sum, f"{impl.name}: only the first column was used"

    # The same through local_dist and pair_local_dist (the single-pair form of test-time
    # code) on the features behind d, within the error model.
    x, y = _A[None].astype(dtype), _B[None].astype(dtype)
    tol = error_model.local_dist_tolerance(x, y, dtype)
    gap = abs(float(first_column_sum) - float(best))
    assert gap > tol.max(), "the first-column sum must be told apart from the answer"
    got = impl("local_dist", x, y)
    assert_within(got, np.full((1, 1), best), tol, impl, "local_dist (brute force)", [x, y])
    got = impl("pair_local_dist", x[0], y[0])
    assert_within(got, best, tol[0, 0], impl, "pair_local_dist (brute force)", [x[0], y[0]])


# Backtracking ---------------------------------------------------------------------------------
def _border_matrix(m, n, along):
    """Cheap cells on two borders: ``"top-right"`` (first row, last column) or ``"left-bottom"``."""
    d = np.full((m, n), 1.0)
    if along == "top-right":
        d[0, :], d[:, -1] = 0.125, 0.125
    else:
        d[:, 0], d[-1, :] = 0.125, 0.125
    return d


GRID_CASES = [
    ("1x1", np.array([[0.5]])),
    ("1x6", np.linspace(0.1, 0.6, 6)[None, :]),
    ("5x1", np.linspace(0.1, 0.5, 5)[:, None]),
    ("4x6 top-right", _border_matrix(4, 6, "top-right")),
    ("6x4 top-right", _border_matrix(6, 4, "top-right")),
    ("4x6 left-bottom", _border_matrix(4, 6, "left-bottom")),
    ("6x4 left-bottom", _border_matrix(6, 4, "left-bottom")),
    ("5x5 all tied", np.full((5, 5), 0.25)),
    ("2x7 random", np.random.default_rng(3).uniform(0, 1, (2, 7))),
]


@pytest.mark.uses("shortest_dist")
@pytest.mark.parametrize("case, d", GRID_CASES, ids=[c[0] for c in GRID_CASES])
@DTYPES
def test_backtracking_stays_on_grid(impl, ref, case, d, dtype):
    d = d.astype(dtype)
    m, n = d.shape
    dist, table, path = reference.shortest_path(d)
    assert len(path) == m + n - 1, path
    assert path[0] == (0, 0) and path[-1] == (m - 1, n - 1), path
    for i, j in path:  # a negative index would silently wrap around in NumPy
        assert 0 <= i < m and 0 <= j < n, f"cell {(i, j)} is off the {m}x{n} grid: {path}"
    steps = {(i1 - i0, j1 - j0) for (i0, j0), (i1, j1) in zip(path, path[1:])}
    assert steps <= {(1, 0), (0, 1)}, f"not a down/right path: {path}"
    if case.endswith("top-right") or case.endswith("all tied"):  # ties step back up first
        assert path == [(0, j) for j in range(n)] + [(i, n - 1) for i in range(1, m)], path
    if case.endswith("left-bottom"):
        assert path == [(i, 0) for i in range(m)] + [(m - 1, j) for j in range(1, n)], path
    # The path found by backtracking costs what formula 2 says, in every implementation.
    assert_bitwise(path_sum(d, path), dist, ref, "shortest_path", [d])
    assert_bitwise(impl("shortest_dist", d), dist, impl, "shortest_dist", [d])


# Gradients ------------------------------------------------------------------------------------
def _feature_batch(dtype):
    """Six images, 4 stripes of 3 features; pairs with clear (untied) optimal paths."""
    feat = np.random.default_rng(11).normal(size=(6, 4, 3))
    p_inds = np.array([1, 0, 3, 2, 5, 4], dtype=np.int64)
    n_inds = np.array([2, 4, 0, 5, 1, 3], dtype=np.int64)
    return feat.astype(dtype), p_inds, n_inds


def _assert_clear_paths(x, y, tol):
    """The optimal path of every pair beats the runner-up by more than the tolerance."""
    stripes = np.tanh(reference.batch_euclidean_dist(x.astype(np.float64),
                                                     y.astype(np.float64)) / 2)
    margins = [error_model.path_margin(s) for s in stripes]
    assert min(margins) > 10 * tol, f"test data has near-tied paths ({min(margins)}); reseed"


@_uses_each("batch_local_dist+batch_local_dist_vjp", "local_loss+local_loss_vjp")
@DTYPES
def test_batch_first_keeps_gradients(impl, ref, func, dtype):
    """Gradients reach the input features: through autograd for torch modules, through
    the module's explicit ``*_vjp`` for NumPy modules. Both are compared with the oracle's VJP.

    The pitfall: implementations that reorder the batch axis with NumPy round trips,
    ``.data`` or in-place writes into a preallocated table, which cut the autograd graph
    and leave the features without (or with zero) gradient.
    """
    feat, p_inds, n_inds = _feature_batch(dtype)
    if func.startswith("batch_local_dist"):
        x, y = feat, feat[p_inds]
        grad_out = np.linspace(0.5, 1.5, len(x)).astype(dtype)
        tol = error_model.local_grad_tolerance(x, y, grad_out, dtype)
        _assert_clear_paths(x, y, error_model.batch_local_dist_tolerance(x, y, dtype).max())
        got = impl.vjp("batch_local_dist", x, y, grad_out=grad_out)
        want = ref.vjp("batch_local_dist", x, y, grad_out=grad_out)
        for name, g, w in zip(("grad_x", "grad_y"), got, want):
            assert np.any(g != 0), f"{impl.name}: batch_local_dist gives {name} == 0"
            assert_within(g, w, tol, impl, f"batch_local_dist -> {name}", [x, y, grad_out])
        return

    # local_loss with given indices: dist_ap, dist_an come from batch_local_dist on
    # feat[p_inds], feat[n_inds]; a margin of 10 keeps every triplet active (slope exactly
    # 1/N in both implementations). Each feature collects gradients as an anchor and as a
    # chosen sample, hence twice the per-pair tolerances of the two halves.
    ones = np.full(len(feat), 1 / len(feat))
    tol = 2 * sum(error_model.local_grad_tolerance(feat, feat[inds], ones, dtype)
                  for inds in (p_inds, n_inds))
    for inds in (p_inds, n_inds):
        _assert_clear_paths(feat, feat[inds],
                            error_model.batch_local_dist_tolerance(feat, feat[inds], dtype).max())
    kwargs = dict(p_inds=p_inds, n_inds=n_inds, normalize_feature=False)
    got = impl.vjp("local_loss", reference.TripletLoss(10.0), feat, **kwargs)
    want = ref.vjp("local_loss", reference.TripletLoss(10.0), feat, **kwargs)
    assert np.all(np.any(got != 0, axis=(1, 2))), f"{impl.name}: a feature got no gradient"
    assert_within(got, want, tol, impl, "local_loss -> grad_local_feat", [feat])
