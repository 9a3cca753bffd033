"""Formula 2: properties that every implementation must have, and bitwise agreement.

Formula 2 uses only comparisons and additions. Rounded addition is monotone
(``a <= b`` implies ``fl(a + c) <= fl(b + c)``), so the recurrence computes exactly the
minimum, over all paths, of the sum taken cell by cell in path order: brute force,
transposition and power-of-two scaling are all bitwise identities, not approximations.
"""
import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference
from reference.error_model import unit_roundoff
from .assertions import assert_bitwise, assert_within
from .naive import path_sum
from .strategies import cost_matrices, cost_matrices_with_extremes, matrix_and_path

pytestmark = pytest.mark.uses("shortest_dist")


@given(cost_matrices(specials=None))
@example(np.zeros((1, 1), np.float32))
@example(np.array([[-0.0, -0.0], [0.0, -0.0]], np.float32))  # -0 and +0 tie
@example(np.array([[1e-45, 1e-45], [np.inf, 1e-45]], np.float32))  # subnormal path, inf aside
@example(np.ones((1, 9), np.float64))
@example(np.full((9, 1), 0.5, np.float32))
@example(np.full((4, 4), 0.25, np.float64))  # every path ties
def test_bitwise_equal_to_oracle(impl, d):
    assert_bitwise(impl("shortest_dist", d), reference.shortest_dist(d), impl, "shortest_dist", [d])


# Path sums overflow to +inf on purpose: NumPy warns, the oracle is right.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@given(cost_matrices_with_extremes(batch=True))
def test_bitwise_equal_to_oracle_with_infinite_cells(impl, d):
    assert_bitwise(impl("shortest_dist", d), reference.shortest_dist(d), impl, "shortest_dist", [d])


# +inf and -inf in one matrix: a path through both sums to inf + (-inf), NaN with no NaN
# in the input. The contract keeps the recurrence's IEEE arithmetic there too: NaN exactly
# where the oracle has it, every other value bitwise.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@given(cost_matrices_with_extremes(batch=True), st.data())
def test_opposite_infinities_follow_the_recurrence(impl, d, data):
    negative = data.draw(hnp.arrays(np.bool_, d.shape, elements=st.sampled_from([False] * 5 + [True])))
    d[negative] = -np.inf
    assert_bitwise(impl("shortest_dist", d), reference.shortest_dist(d), impl, "shortest_dist", [d])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_opposite_infinities_on_one_path_give_nan(impl, dtype):
    d = np.array([[np.inf, 1.0], [1.0, -np.inf]], dtype)  # S[1,1] = min(inf, inf) + -inf
    assert np.isnan(impl("shortest_dist", d)), f"{impl.name}: inf + -inf must be NaN"
    d = np.array([[0.0, np.inf], [-np.inf, 0.0]], dtype)  # no path meets both: -inf
    assert impl("shortest_dist", d) == -np.inf, f"{impl.name}: the path through -inf only"


@given(cost_matrices(max_side=7))
def test_equals_brute_force_over_all_paths(impl, d):
    m, n = d.shape
    brute = min(path_sum(d, p) for p in reference.monotone_paths(m, n))
    assert_bitwise(impl("shortest_dist", d), brute, impl, "shortest_dist", [d])


@given(matrix_and_path())
def test_at_most_the_sum_along_any_path(impl, d_and_path):
    d, path = d_and_path
    got = impl("shortest_dist", d)
    assert got <= path_sum(d, path), f"{impl.name}: {got!r} exceeds the sum along {path}"


@given(cost_matrices())
def test_symmetric_under_transpose(impl, d):
    d_t = np.ascontiguousarray(d.T)
    assert_bitwise(impl("shortest_dist", d_t), impl("shortest_dist", d), impl, "shortest_dist", [d])


@given(cost_matrices(), st.integers(-3, 3))
def test_scale_by_power_of_two_is_exact(impl, d, power):
    scale = d.dtype.type(2.0 ** power)  # exact: only the exponents change
    assert_bitwise(impl("shortest_dist", d * scale), impl("shortest_dist", d) * scale, impl,
                   "shortest_dist", [d])


@given(cost_matrices(ties=False), st.floats(0.01, 100))
def test_scale(impl, d, a):
    # Each of the m+n-1 cells is scaled with one rounding (u each), and both sides round
    # their m+n-2 additions of partial sums below (m+n-1)·max d: (m+n-1)^2 u · a · max(d).
    a = d.dtype.type(a)
    k = sum(d.shape) - 1
    tol = 3 * k * k * unit_roundoff(d.dtype) * float(a) * max(float(d.max()), 1e-30)
    want = np.float64(a) * np.float64(impl("shortest_dist", d))
    assert_within(impl("shortest_dist", d * a), want, tol, impl, "shortest_dist", [d])


@given(cost_matrices(ties=False), st.floats(-0.5, 2))
def test_shift(impl, d, c):
    # S(D + c) = S(D) + (m+n-1) c. Error: the shift rounds each cell (u |d + c|), and
    # both sides round m+n-2 partial sums below (m+n-1) max|d + c|: 3 (m+n-1)^2 u max|d+c|.
    c = d.dtype.type(c)
    k = sum(d.shape) - 1
    big = float(np.max(np.abs(d))) + abs(float(c))
    tol = 3 * k * k * unit_roundoff(d.dtype) * big
    want = np.float64(impl("shortest_dist", d)) + k * np.float64(c)
    assert_within(impl("shortest_dist", d + c), want, tol, impl, "shortest_dist", [d])


@given(cost_matrices(), st.data())
def test_monotone_in_every_entry(impl, d, data):
    i = data.draw(st.integers(0, d.shape[0] - 1))
    j = data.draw(st.integers(0, d.shape[1] - 1))
    bigger = d.copy()
    bigger[i, j] = bigger[i, j] + data.draw(st.floats(0, 1))
    assert impl("shortest_dist", bigger) >= impl("shortest_dist", d), \
        f"{impl.name}: raising d[{i},{j}] lowered the distance"


@given(cost_matrices(ties=False))
def test_lower_bound_by_row_and_column_minima(impl, d):
    # Every path visits every row and every column, so it costs at least the sum of the
    # row minima and of the column minima. Rounding of the (m+n-1)-term sums: (m+n-1)^2 u S.
    k = sum(d.shape) - 1
    bound = max(np.min(d, axis=1).astype(np.float64).sum(), np.min(d, axis=0).astype(np.float64).sum())
    got = float(impl("shortest_dist", d))
    assert got >= bound - k * k * unit_roundoff(d.dtype) * max(got, 1.0), \
        f"{impl.name}: {got!r} below the row/column-minima bound {bound!r}"


@given(cost_matrices(batch=True))
def test_batched_equals_loop(impl, d):
    loop = np.array([impl("shortest_dist", np.ascontiguousarray(d[:, :, k]))
                     for k in range(d.shape[2])])
    assert_bitwise(impl("shortest_dist", d), loop, impl, "shortest_dist", [d])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 4), (3, 4, 5), (1, 1, 2, 3)])
def test_dtype_and_shape_preserved(impl, dtype, shape):
    d = np.random.default_rng(0).random(shape).astype(dtype)
    got = impl("shortest_dist", d)
    assert got.dtype == dtype, f"{impl.name}: dtype {got.dtype} from {np.dtype(dtype)} input"
    assert got.shape == shape[2:], f"{impl.name}: shape {got.shape} from input {shape}"


@given(cost_matrices())
def test_oracle_path_is_a_monotone_path_whose_sum_is_the_distance(d):
    dist, table, path = reference.shortest_path(d)
    m, n = d.shape
    assert path[0] == (0, 0) and path[-1] == (m - 1, n - 1), path
    assert len(path) == m + n - 1, path
    steps = {(b[0] - a[0], b[1] - a[1]) for a, b in zip(path, path[1:])}
    assert steps <= {(1, 0), (0, 1)}, f"non-monotone step in {path}"
    assert path_sum(d, path) == dist, f"path sum {path_sum(d, path)!r} != distance {dist!r}"
    assert table[-1, -1] == dist == reference.shortest_dist(d)


def test_oracle_tie_steps_back_to_the_previous_row():
    # Both neighbours of (1,1) have S = 1: the path must come from (0,1), the previous row.
    d = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert reference.shortest_path(d)[2] == [(0, 0), (0, 1), (1, 1)]
