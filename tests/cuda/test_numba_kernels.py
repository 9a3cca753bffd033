"""The ``@cuda.jit`` kernels against the ``@njit`` path and the NumPy oracle.

Sizes are small (the simulator costs about a millisecond per thread) but always larger
than one block and not a multiple of it. Error models of the tolerances:
- formula 2 is additions and comparisons only: bitwise equality.
- explicit-difference distances differ from the oracle only in summation order:
  relative error below ``(d + 2) eps`` on a squared distance, carried through sqrt, tanh
  (each a few ulp) and a path of ``m + n - 1`` cells, so ``rtol = 4 (d + m + n) eps``.
- gradients multiply a few such factors: ``rtol = 16 (d + m + n) eps`` with an absolute
  floor of the same size times the largest gradient (cancellation in the sums).
"""
import numpy as np
import pytest

import numba_impl
import reference
from numba_impl import gpu

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


@pytest.fixture
def rng():
    return np.random.default_rng(20240521)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shortest_dist_bitwise(block, dtype, rng):
    d = rng.random((5, 4, 3, 13)).astype(dtype)  # trailing (3, 13): 39 pairs
    d[2, 1, 0, 5] = np.nan  # NaN in the middle
    d[4, 3, 2, 7] = np.nan  # NaN in the last cell
    out = numba_impl.shortest_dist(_dev(d))
    np.testing.assert_array_equal(_host(out), reference.shortest_dist(d))
    np.testing.assert_array_equal(_host(out), numba_impl.shortest_dist(d))
    assert _host(out).dtype == dtype


@pytest.mark.parametrize("shape", [(1, 1, 9), (1, 6, 9), (6, 1, 9), (32, 32, 9)])
def test_shortest_dist_edge_shapes(block, shape, rng):
    d = rng.random(shape).astype(np.float32)
    np.testing.assert_array_equal(_host(numba_impl.shortest_dist(_dev(d))), reference.shortest_dist(d))


@pytest.mark.parametrize("dtype", DTYPES)
def test_shortest_dist_vjp_ties(block, dtype, rng):
    d = rng.integers(0, 3, size=(4, 5, 11)).astype(dtype)  # small integers: many exact ties
    grad_out = rng.random(11).astype(dtype)
    grad = numba_impl.shortest_dist_vjp(_dev(d), _dev(grad_out))
    # halves of a product of the same factors: exact
    np.testing.assert_array_equal(_host(grad), numba_impl.shortest_dist_vjp(d, grad_out))
    np.testing.assert_allclose(_host(grad), reference.shortest_dist_vjp(d, grad_out),
                               rtol=4 * np.finfo(dtype).eps)


def test_too_many_stripes_is_refused():
    d = _dev(np.zeros((gpu.MAX_STRIPES + 1, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shortest_dist: the GPU kernels take at most"):
        numba_impl.shortest_dist(d)
    x = _dev(np.zeros((2, gpu.MAX_STRIPES + 1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="local_dist"):
        numba_impl.local_dist(x, x)


def test_mixed_host_and_device_is_refused():
    x = np.zeros((2, 3, 4), dtype=np.float32)
    with pytest.raises(TypeError, match="local_dist: y must be on the same device as x"):
        numba_impl.local_dist(_dev(x), x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_local_distances(block, dtype, rng):
    x = rng.standard_normal((4, 3, 5)).astype(dtype)
    y = rng.standard_normal((5, 4, 5)).astype(dtype)  # 20 pairs
    rtol = _rtol(dtype, 5, 3, 4)
    out = numba_impl.local_dist(_dev(x), _dev(y))
    assert _host(out).dtype == dtype
    _close(out, reference.local_dist(x, y), rtol)
    y4 = y[:4, :2]
    _close(numba_impl.batch_local_dist(_dev(x), _dev(y4)), reference.batch_local_dist(x, y4), rtol)


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


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_cuda_tensors_on_hardware(dtype):
    """Real GPU only: torch CUDA tensors in, the bridge on torch's stream, a large batch."""
    import torch

    import numba_impl.autograd as nba

    gen = np.random.default_rng(7)
    d = gen.random((8, 8, 65536)).astype(dtype)
    out = nba.shortest_dist(torch.from_numpy(d).cuda())
    np.testing.assert_array_equal(out.cpu().numpy(), reference.shortest_dist(d))
    x = torch.randn(64, 8, 128, dtype=getattr(torch, np.dtype(dtype).name), device="cuda",
                    requires_grad=True)
    loss = nba.local_dist(x, x.detach()).sum()
    loss.backward()
    assert x.grad.is_cuda and torch.isfinite(x.grad).all()
