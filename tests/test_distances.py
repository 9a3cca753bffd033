"""Formula 1, the Euclidean distances and the local distance, against the oracle."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from reference import error_model
from .assertions import assert_within
from .strategies import extreme_stripe_features, stripe_features

# Ordinary features, and features at scales where |x|^2 overflows, with +-inf entries
# (tests.strategies.extreme_stripe_features): results equal the oracle's explicit
# differences in IEEE arithmetic, NaN exactly where it has NaN.
FEATURES = pytest.mark.parametrize("features", [
    pytest.param(stripe_features, id="ordinary"),
    pytest.param(extreme_stripe_features, id="extreme",  # the oracle's IEEE overflow is the point
                 marks=pytest.mark.filterwarnings("ignore::RuntimeWarning")),
])


@pytest.mark.uses("normalize")
@FEATURES
@given(st.data(), st.sampled_from([-1, 0, 1, 2]))
def test_normalize(impl, features, data, axis):
    x = data.draw(features())[0]
    # A d-term sum of squares, a square root, a division, and where the sum overflows the
    # division by the largest entry first: (d + 5) u relative, twice.
    u = error_model.unit_roundoff(x.dtype)
    tol = 2 * (x.shape[axis] + 5) * u
    with np.errstate(over="ignore", invalid="ignore"):
        want = reference.normalize(x, axis=axis)
    got = impl("normalize", x, axis=axis)
    assert_within(got, want, tol, impl, "normalize", [x])
    # Independently of the oracle: a finite vector comes out with length |x| / (|x| + eps),
    # the entries' errors adding up to at most sqrt(d) times theirs. (eps is 1e-12, or the
    # module's own, which the gate measured: reference.gate.conventions.)
    x64 = np.moveaxis(x.astype(np.float64), axis, -1)
    finite = np.all(np.isfinite(x64), axis=-1)
    top = np.max(np.abs(x64), axis=-1, keepdims=True, where=np.isfinite(x64), initial=0.0)
    top = np.where(top > 0, top, 1.0)  # a zero vector: norm 0 either way
    with np.errstate(invalid="ignore"):
        norm = top[..., 0] * np.linalg.norm(x64 / top, axis=-1)  # no overflow
        length = np.linalg.norm(np.moveaxis(got.astype(np.float64), axis, -1), axis=-1)
    eps = reference.distance.NORM_EPS
    assert_within(np.where(finite, length, 0), np.where(finite, norm / (norm + eps), 0),
                  np.sqrt(x.shape[axis]) * tol, impl, "normalize (length)", [x])


@pytest.mark.uses("euclidean_dist", "batch_euclidean_dist")
@FEATURES
@given(st.data())
def test_euclidean_distances(impl, features, data):
    x, y = data.draw(features(pairs=True))
    u = error_model.unit_roundoff(x.dtype)
    tol = 2 * error_model.euclid_bound(x, y, u)
    assert_within(impl("batch_euclidean_dist", x, y), reference.batch_euclidean_dist(x, y), tol,
                  impl, "batch_euclidean_dist", [x, y])
    assert_within(impl("euclidean_dist", x[0], y[0]), reference.euclidean_dist(x[0], y[0]), tol[0],
                  impl, "euclidean_dist", [x[0], y[0]])


@pytest.mark.uses("stripe_dist")
@given(st.lists(st.floats(0, 1e30), min_size=1, max_size=20), st.sampled_from([np.float32, np.float64]))
def test_stripe_dist_is_tanh_of_half(impl, values, dtype):
    e = np.array(values, dtype=dtype)
    # tanh(x/2) is within a few ulps in every libm: 4u relative; halving a subnormal
    # rounds by up to half the smallest subnormal, absolute.
    want = np.tanh(e.astype(np.float64) / 2)
    tiny = float(np.finfo(dtype).smallest_subnormal)
    assert_within(impl("stripe_dist", e), want, 4 * error_model.unit_roundoff(dtype) * want + tiny,
                  impl, "stripe_dist", [e])


@pytest.mark.uses("local_dist")
@FEATURES
@given(st.data())
def test_local_dist(impl, features, data):
    x, y = data.draw(features(max_images=5))
    got = impl("local_dist", x, y)
    assert got.dtype == x.dtype, f"{impl.name}: dtype {got.dtype} from {x.dtype} input"
    assert_within(got, reference.local_dist(x, y), error_model.local_dist_tolerance(x, y, x.dtype),
                  impl, "local_dist", [x, y])


@pytest.mark.uses("local_dist")
@given(stripe_features(max_images=5))
def test_local_dist_symmetric_under_swap(impl, data):
    x, y = data
    # Swapping the images transposes every stripe matrix; formula 2 is symmetric under
    # transposition, so only the stripe distances' rounding differs (error model, twice).
    tol = error_model.local_dist_tolerance(x, y, x.dtype)
    assert_within(impl("local_dist", y, x), impl("local_dist", x, y).T, tol.T, impl,
                  "local_dist (swapped)", [x, y])


@pytest.mark.uses("local_dist", "batch_local_dist")
@FEATURES
@given(st.data())
def test_batch_local_dist_is_the_diagonal(impl, features, data):
    x, y = data.draw(features(pairs=True))
    tol = error_model.batch_local_dist_tolerance(x, y, x.dtype)
    assert_within(impl("batch_local_dist", x, y), reference.batch_local_dist(x, y), tol, impl,
                  "batch_local_dist", [x, y])
    assert_within(impl("batch_local_dist", x, y), np.diagonal(impl("local_dist", x, y)), tol, impl,
                  "batch_local_dist vs diagonal of local_dist", [x, y])


@pytest.mark.uses("local_dist", "batch_local_dist")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_unnormalised_features_give_no_nan(impl, dtype):
    # Stripe distances near 400: the literal formula 1 is inf/inf = NaN in float32 there.
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(3, 7, 16)) * 100).astype(dtype)
    y = (rng.normal(size=(3, 7, 16)) * 100).astype(dtype)
    for name, got in (("local_dist", impl("local_dist", x, y)),
                      ("batch_local_dist", impl("batch_local_dist", x, y))):
        assert np.all(np.isfinite(got)), f"{impl.name}.{name}: non-finite values {got}"
        # every stripe distance rounds to 1, so every path of 13 cells sums to 13
        np.testing.assert_array_equal(got, np.full_like(got, 13), err_msg=f"{impl.name}.{name}")


@pytest.mark.uses("local_dist")
@given(stripe_features(max_images=5), st.integers(1, 6))
def test_local_dist_in_chunks(impl, data, chunk):
    # chunk_size (queries per chunk) paces the work, not the result: within the error
    # model of the oracle (products of other shapes may round differently). A NumPy
    # integer means the same as a Python one.
    x, y = data
    tol = error_model.local_dist_tolerance(x, y, x.dtype)
    want = reference.local_dist(x, y)
    for size in (chunk, np.int64(chunk)):
        assert_within(impl("local_dist", x, y, chunk_size=size), want, tol, impl,
                      f"local_dist(chunk_size={size!r})", [x, y])


@pytest.mark.uses("local_dist")
def test_local_dist_progress_goes_to_stderr_only_when_asked(impl, capfd):
    x = np.random.default_rng(2).normal(size=(3, 2, 4))
    impl("local_dist", x, x, chunk_size=1)
    quiet = capfd.readouterr()
    impl("local_dist", x, x, chunk_size=1, progress=True)
    shown = capfd.readouterr()
    assert quiet.out == quiet.err == "" and shown.out == "", \
        f"{impl.name}: printed {quiet} without progress, {shown} with it"
    assert shown.err.strip(), f"{impl.name}: progress=True printed nothing on stderr"


@pytest.mark.uses("normalize")
def test_normalize_takes_a_numpy_integer_axis(impl):
    x = np.random.default_rng(3).normal(size=(3, 4))
    np.testing.assert_array_equal(impl("normalize", x, axis=np.int64(0)),
                                  impl("normalize", x, axis=0), err_msg=impl.name)
