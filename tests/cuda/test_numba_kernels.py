"""The ``@cuda.jit`` kernels against the ``@njit`` path and the NumPy oracle.

Sizes are small (the simulator costs about a millisecond per thread) but always larger
than one block and not a multiple of it. The same tests run on hardware
(``benchmarks/gpu_check.sh``), so the tolerances are those of the hardware, whose math
differs from the simulator's: the simulator rounds a float64 ``tanh`` to float32, while a
GPU runs libdevice's ``tanhf`` / ``tanh``, within 2 ulp of the exact value (CUDA C++
Programming Guide, mathematical functions appendix); ``sqrt`` and divisions are IEEE
(no fast-math). Error models:
- formula 2 is additions and comparisons only: the same bits as the oracle, signs of
  zero included (no flush of subnormals to zero without fast-math).
- local distances use the CPU's norm expansion: ``reference.error_model`` bounds them
  for a correctly rounded tanh; libdevice's may be 2 ulp(1) = 4u further off in each of
  the ``m + n - 1`` cells of a path (``_hardware_tolerance``; shown to cover that by
  ``test_tolerance_covers_a_tanh_two_ulp_off``).
- explicit-difference distances differ from the oracle only in summation order:
  relative error below ``(d + 2) eps`` on a squared distance, carried through sqrt (IEEE)
  and tanh (2 ulp), so ``rtol = 4 (d + m + n) eps``.
- gradients multiply a few such factors: ``rtol = 16 (d + m + n) eps`` with an absolute
  floor of the same size times the largest gradient (cancellation in the sums).
"""
import threading

import numpy as np
import pytest

import numba_impl
import reference
from numba_impl.gpu import context as _gpu_context
from numba_impl.gpu import launch
from reference import error_model

pytestmark = pytest.mark.cudasim
DTYPES = [np.float32, np.float64]


def _dev(array):
    from numba import cuda

    return cuda.to_device(np.ascontiguousarray(array))


def _host(array):
    return array.copy_to_host() if hasattr(array, "copy_to_host") else np.asarray(array)


def _rtol(dtype, d, m, n, factor=4):
    return factor * (d + m + n) * np.finfo(dtype).eps


def _close(actual, expected, rtol):
    expected = np.asarray(expected)
    atol = rtol * max(1.0, float(np.max(np.abs(expected)))) if expected.size else 0
    np.testing.assert_allclose(_host(actual), expected, rtol=rtol, atol=atol)


def _hardware_tolerance(model_tolerance, dtype, m, n):
    """The error model's tolerance plus libdevice's tanh: 4u more in each of m + n - 1 cells."""
    return model_tolerance + (m + n - 1) * 4 * error_model.unit_roundoff(dtype)


def _within(actual, expected, tolerance):
    error = np.abs(_host(actual).astype(np.float64) - np.asarray(expected, dtype=np.float64))
    assert np.all(error <= tolerance), f"largest error {error.max()!r} over {tolerance!r}"


def _same_bits(actual, expected):
    """Equal values with equal signs of zero; NaN equal to NaN."""
    actual, expected = _host(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    both_nan = np.isnan(actual) & np.isnan(expected)
    same = both_nan | ((actual == expected) & (np.signbit(actual) == np.signbit(expected)))
    assert np.all(same), f"{np.count_nonzero(~same)} entries differ: {actual[~same]} vs {expected[~same]}"


@pytest.fixture
def rng():
    return np.random.default_rng(20240521)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shortest_dist_bitwise(block, dtype, rng):
    d = rng.random((5, 4, 3, 13)).astype(dtype)  # trailing (3, 13): 39 pairs
    d[2, 1, 0, 5] = np.nan  # NaN in the middle
    d[4, 3, 2, 7] = np.nan  # NaN in the last cell
    tiny = np.finfo(dtype).smallest_subnormal
    d[..., 0, 8] = tiny * rng.integers(1, 5, size=(5, 4))  # a path of subnormals: no flush to 0
    d[..., 1, 9] = -0.0  # a matrix of -0: the result is -0
    d[1:, :, 2, 10] = np.inf  # only the first row is finite
    d[:, :, 1, 11] = np.inf  # every path infinite
    d[3, 2, 0, 12], d[0, 0, 0, 12] = -np.inf, -0.0
    d[:, :, 2, 12], d[1, 0, 2, 12] = -0.0, 0.0  # a -0 and a +0 tie, then zeros to the end
    out = numba_impl.shortest_dist(_dev(d))
    # the value of the oracle; the bits, signs of zero included, of the CPU's recurrence
    # (on a tie of -0 and +0 the oracle's np.minimum keeps the other zero than they do)
    np.testing.assert_array_equal(_host(out), reference.shortest_dist(d))
    _same_bits(out, numba_impl.shortest_dist(d))


@pytest.mark.parametrize("shape", [(1, 1, 9), (1, 6, 9), (6, 1, 9), (32, 32, 9), (40, 3, 5)])
def test_shortest_dist_edge_shapes(block, shape, rng):
    # no stripe limit: the tables are device arrays sized by the input, not thread-local
    d = rng.random(shape).astype(np.float32)
    _same_bits(numba_impl.shortest_dist(_dev(d)), reference.shortest_dist(d))


@pytest.mark.parametrize("dtype", DTYPES)
def test_shortest_dist_vjp_ties(block, dtype, rng):
    d = rng.integers(0, 3, size=(4, 5, 11)).astype(dtype)  # small integers: many exact ties
    grad_out = rng.random(11).astype(dtype)
    grad = numba_impl.shortest_dist_vjp(_dev(d), _dev(grad_out))
    # halves of a product of the same factors: exact
    np.testing.assert_array_equal(_host(grad), numba_impl.shortest_dist_vjp(d, grad_out))
    np.testing.assert_allclose(_host(grad), reference.shortest_dist_vjp(d, grad_out),
                               rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reverse_pass_stops_where_nothing_flows(block, dtype, rng):
    d = rng.random((3, 4, 17)).astype(dtype)
    grad_out = rng.random(17).astype(dtype)
    grad_out[[0, 5, 16]] = 0.0
    grad_out[[3, 9]] = -0.0
    d[1, 2, 5] = np.nan  # zero flow stays zero beside a NaN
    got = numba_impl.shortest_dist_vjp(_dev(d), _dev(grad_out))
    _same_bits(got, numba_impl.shortest_dist_vjp(d, grad_out))  # the CPU's full reverse pass
    assert not np.any(_host(got)[:, :, [0, 5, 16]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_are_the_same_bits_every_run(block, dtype, rng):
    x = rng.standard_normal((5, 3, 4)).astype(dtype)
    y = rng.standard_normal((6, 2, 4)).astype(dtype)
    grad_out = rng.random((5, 6)).astype(dtype)
    feat = rng.standard_normal((6, 3, 4)).astype(dtype)
    tri, labels = numba_impl.TripletLoss(0.3), np.array([0, 0, 1, 1, 2, 2])
    p_inds, n_inds = np.array([1, 0, 3, 2, 3, 2]), np.array([2, 2, 0, 0, 0, 0])  # repeated
    runs = {  # each gathers gradients from many pairs into shared rows
        "local_dist_vjp": lambda: numba_impl.local_dist_vjp(_dev(x), _dev(y), _dev(grad_out)),
        "local_loss_vjp mined": lambda: numba_impl.local_loss_vjp(tri, _dev(feat), labels=labels),
        "local_loss_vjp indices": lambda: numba_impl.local_loss_vjp(tri, _dev(feat), p_inds, n_inds),
        "global_loss_vjp": lambda: numba_impl.global_loss_vjp(tri, _dev(feat.reshape(6, -1)), labels),
    }
    for name, run in runs.items():
        first, second = run(), run()
        for a, b in (zip(first, second) if isinstance(first, tuple) else [(first, second)]):
            _same_bits(a, _host(b))


def test_non_contiguous_device_input_is_refused():
    x = _dev(np.zeros((2, 3, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="local_dist: y must be C-contiguous on the GPU"):
        numba_impl.local_dist(x, x[:, :, ::2])
    with pytest.raises(ValueError, match="shortest_dist: dist_mat must be C-contiguous"):
        numba_impl.shortest_dist(x[:, 1:])


def test_mixed_host_and_device_is_refused():
    x = np.zeros((2, 3, 4), dtype=np.float32)
    with pytest.raises(TypeError, match="local_dist: y must be on the same device as x"):
        numba_impl.local_dist(_dev(x), x)


def _check_local_distances(dtype, rng):
    x = rng.standard_normal((4, 3, 5)).astype(dtype)
    y = rng.standard_normal((5, 4, 5)).astype(dtype)  # 20 pairs
    out = numba_impl.local_dist(_dev(x), _dev(y))
    assert _host(out).dtype == dtype
    _within(out, reference.local_dist(x, y),
            _hardware_tolerance(error_model.local_dist_tolerance(x, y, dtype), dtype, 3, 4))
    y4 = np.ascontiguousarray(y[:4, :2])
    _within(numba_impl.batch_local_dist(_dev(x), _dev(y4)), reference.batch_local_dist(x, y4),
            _hardware_tolerance(error_model.batch_local_dist_tolerance(x, y4, dtype), dtype, 3, 2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_local_distances(block, dtype, rng):
    _check_local_distances(dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tolerance_covers_a_tanh_two_ulp_off(dtype, rng, monkeypatch):
    """Formula 1 made 2.5 ulp too large in every cell (worse than libdevice's 2 ulp, all
    errors of one sign) still passes: the tolerances hold on hardware, not only here."""
    from numba_impl import _scalar

    def stripe_off(sq, half, clamp):
        t = type(half)(_scalar.stripe_of_sq(sq, half, clamp))  # the simulator's, within 0.5 ulp
        return np.nextafter(np.nextafter(t, type(half)(2)), type(half)(2))

    monkeypatch.setattr(launch.scalar, "stripe_of_sq", stripe_off)
    _check_local_distances(dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
def test_local_distance_vjps(block, dtype, rng):
    x = rng.standard_normal((3, 3, 4)).astype(dtype)
    y = rng.standard_normal((4, 2, 4)).astype(dtype)
    grad_out = rng.random((3, 4)).astype(dtype)
    rtol = _rtol(dtype, 4, 3, 2, factor=16)
    for got, want in zip(numba_impl.local_dist_vjp(_dev(x), _dev(y), _dev(grad_out)),
                         reference.local_dist_vjp(x, y, grad_out)):
        _close(got, want, rtol)
    y3, g3 = y[:3], grad_out[:, 0].copy()
    for got, want in zip(numba_impl.batch_local_dist_vjp(_dev(x), _dev(y3), _dev(g3)),
                         reference.batch_local_dist_vjp(x, y3, g3)):
        _close(got, want, rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_distances_and_normalize(block, dtype, rng):
    x = rng.standard_normal((3, 5, 4)).astype(dtype)
    y = rng.standard_normal((3, 6, 4)).astype(dtype)
    rtol = _rtol(dtype, 4, 0, 0, factor=16)
    _close(numba_impl.euclidean_dist(_dev(x[0]), _dev(y[0])), reference.euclidean_dist(x[0], y[0]), rtol)
    _close(numba_impl.batch_euclidean_dist(_dev(x), _dev(y)), reference.batch_euclidean_dist(x, y), rtol)
    grad_out = rng.random((3, 5, 6)).astype(dtype)
    for got, want in zip(numba_impl.batch_euclidean_dist_vjp(_dev(x), _dev(y), _dev(grad_out)),
                         reference.batch_euclidean_dist_vjp(x, y, grad_out)):
        _close(got, want, rtol)
    for got, want in zip(numba_impl.euclidean_dist_vjp(_dev(x[0]), _dev(y[0]), _dev(grad_out[0])),
                         reference.euclidean_dist_vjp(x[0], y[0], grad_out[0])):
        _close(got, want, rtol)
    for axis in range(3):
        _close(numba_impl.normalize(_dev(x), axis), reference.normalize(x, axis), rtol)
        g = rng.standard_normal(x.shape).astype(dtype)
        _close(numba_impl.normalize_vjp(_dev(x), _dev(g), axis), reference.normalize_vjp(x, g, axis), rtol)
    e = np.abs(x).reshape(-1) * 60  # up to ~200: the literal formula 1 would overflow
    _close(numba_impl.stripe_dist(_dev(e)), reference.stripe_dist(e), rtol)
    _close(numba_impl.stripe_dist_vjp(_dev(e), _dev(e)), reference.stripe_dist_vjp(e, e), rtol)


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e30), (np.float64, 1e200)])
def test_extreme_features(block, dtype, scale, rng):
    # |x|^2 overflows: normalize rescales (values and gradient, as the oracle); the GPU's
    # distances use explicit differences, so they are the oracle's (inf -> formula 1 is 1;
    # the same infinite feature on both sides: inf - inf, NaN). Rounding as above.
    x = (rng.standard_normal((3, 4, 5)) * scale).astype(dtype)
    y = rng.standard_normal((3, 2, 5)).astype(dtype)
    x[1, 2, 3], y[2, 0, 1], x[2, 1, 1] = np.inf, -np.inf, -np.inf
    rtol = _rtol(dtype, 5, 4, 2, factor=16)
    finite = np.isfinite(x).all(axis=-1)
    x64 = x[finite].astype(np.float64)
    top = np.abs(x64).max(axis=-1, keepdims=True)
    unit = x64 / (top * np.linalg.norm(x64 / top, axis=-1, keepdims=True))  # in float64
    np.testing.assert_allclose(_host(numba_impl.normalize(_dev(x)))[finite], unit, rtol=rtol)
    with np.errstate(over="ignore", invalid="ignore"):
        for axis in range(3):
            want = reference.normalize(x, axis)
            np.testing.assert_allclose(_host(numba_impl.normalize(_dev(x), axis)), want, rtol=rtol)
            g = rng.standard_normal(x.shape).astype(dtype)
            want = reference.normalize_vjp(x, g, axis)
            np.testing.assert_allclose(_host(numba_impl.normalize_vjp(_dev(x), _dev(g), axis)),
                                       want, rtol=rtol, atol=rtol * np.nanmax(np.abs(want)))
        assert np.isnan(reference.local_dist(x, y)).any()  # the inf - inf pair is there
        np.testing.assert_allclose(_host(numba_impl.local_dist(_dev(x), _dev(y))),
                                   reference.local_dist(x, y), rtol=rtol)
        np.testing.assert_allclose(_host(numba_impl.batch_local_dist(_dev(x), _dev(y))),
                                   reference.batch_local_dist(x, y), rtol=rtol)


@pytest.mark.parametrize("margin", [None, 0.3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_mining_and_losses(block, dtype, margin, rng):
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3])  # 9 anchors, uneven identities
    feat = rng.standard_normal((9, 3, 4)).astype(dtype)
    dist = reference.local_dist(feat, feat)
    for got, want in zip(numba_impl.hard_example_mining(_dev(dist), labels, return_inds=True),
                         reference.hard_example_mining(dist, labels, return_inds=True)):
        np.testing.assert_array_equal(_host(got), want)  # a selection: exact
    tri, ref_tri = numba_impl.TripletLoss(margin), reference.TripletLoss(margin)
    rtol = _rtol(dtype, 4, 3, 3, factor=16)
    flat = np.ascontiguousarray(feat.reshape(9, -1))
    _close(numba_impl.global_loss(tri, _dev(flat), labels)[0], reference.global_loss(ref_tri, flat, labels)[0], rtol)
    _close(numba_impl.global_loss_vjp(tri, _dev(flat), labels),
           reference.global_loss_vjp(ref_tri, flat, labels), rtol)
    _close(numba_impl.local_loss(tri, _dev(feat), labels=labels)[0],
           reference.local_loss(ref_tri, feat, labels=labels)[0], rtol)
    _close(numba_impl.local_loss_vjp(tri, _dev(feat), labels=_dev(labels)),
           reference.local_loss_vjp(ref_tri, feat, labels=labels), rtol)
    p_inds, n_inds = np.array([1, 1, 4, 2, 2, 6, 5, 8, 7]), np.array([2, 5, 0, 0, 7, 0, 1, 0, 0])
    _close(numba_impl.local_loss(tri, _dev(feat), p_inds, n_inds)[0],
           reference.local_loss(ref_tri, feat, p_inds, n_inds)[0], rtol)
    _close(numba_impl.local_loss_vjp(tri, _dev(feat), p_inds, n_inds),
           reference.local_loss_vjp(ref_tri, feat, p_inds, n_inds), rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mining_with_nan_and_infinities(block, dtype, rng):
    # NaN is the extreme for both hard examples (first NaN wins), as in the oracle.
    labels = np.array([0, 0, 0, 1, 1, 2, 0, 2, 1])
    dist = rng.random((9, 9)).astype(dtype)
    dist[0, 1] = np.nan  # a NaN positive that is not the first candidate
    dist[1, [3, 4, 7]] = [0.5, np.nan, np.nan]  # NaN negatives: the first one wins
    dist[2, 6], dist[5, [0, 2]] = np.inf, -np.inf
    dist[3, [0, 2]] = 0.0  # a tie
    for got, want in zip(numba_impl.hard_example_mining(_dev(dist), labels, return_inds=True),
                         reference.hard_example_mining(dist, labels, return_inds=True)):
        np.testing.assert_array_equal(_host(got), want)  # a selection: exact, NaN included


def test_no_negative_is_refused():
    with pytest.raises(ValueError, match="hard_example_mining: anchor 0 has no negative"):
        numba_impl.hard_example_mining(_dev(np.zeros((3, 3))), np.zeros(3, dtype=np.int64))


def test_local_dist_reports_progress_as_on_the_cpu(capfd, rng):
    x, y = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 3, 4))
    quiet = _host(numba_impl.local_dist(_dev(x), _dev(y)))
    assert capfd.readouterr().err == ""
    loud = _host(numba_impl.local_dist(_dev(x), _dev(y), progress=True))
    np.testing.assert_array_equal(loud, quiet)
    err = capfd.readouterr().err
    assert "\r" not in err and err.splitlines()[-1] == "local_dist: 15/15 pairs (100%)", err


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_pairs_get_nan_gradients_as_on_the_cpu(block, dtype, rng):
    # A NaN feature makes its pairs' values NaN; the flow of formula 2 avoids the NaN cells,
    # and the kernels must still give those pairs' images NaN gradients, where the CPU does
    # (tests/test_gradient_setups.py::test_nan_value_never_has_an_all_finite_gradient).
    x = rng.standard_normal((5, 3, 4)).astype(dtype)
    y = rng.standard_normal((5, 2, 4)).astype(dtype)
    x[1, 2, 0], y[3, 0, 1] = np.nan, np.nan
    grad_out = rng.random((5, 5)).astype(dtype)
    grad_out[1, 0] = 0  # a NaN pair with grad_out 0: no table built, formula 1 holds the NaN
    for func, args in (("batch_local_dist_vjp", (x, y, grad_out[:, 0].copy())),
                       ("local_dist_vjp", (x, y, grad_out))):
        cpu = getattr(numba_impl, func)(*args)
        gpu = getattr(numba_impl, func)(*(_dev(a) for a in args))
        for name, got, want in zip(("grad_x", "grad_y"), gpu, cpu):
            np.testing.assert_array_equal(np.isnan(_host(got)), np.isnan(want),
                                          err_msg=f"{func} {name}: NaN where the CPU has none")
            assert np.isnan(want).any(), f"{func} {name}: the test plants no NaN pair"
