"""numba_impl's CPU kernels at their internal edges: tiles, pair blocks, chunk sizes, tanh.

The CPU ``local_dist`` works in tiles (``chunk_size`` queries x a gallery slice sized by
``_consts.TILE_BYTES``) and ``shortest_dist`` in blocks of ``_consts.PAIR_BLOCK`` pairs. Formula 2
and the VJPs do the same arithmetic whatever tile or block holds a pair, so those tests
demand bitwise equality (and with the oracle for formula 2, the contract's exactness
rule); ``local_dist``'s dot products come from BLAS, whose rounding may depend on the
product's shape, so chunk sizes are held to the error model. Sizes are chosen around the edges: 1, a size that does not divide the
count, the block size and its neighbours.
"""
import math

import numpy as np
import pytest
from numba import njit

import numba_impl
import reference
from numba_impl import _consts, cpu
from numba_impl.cpu import tanh as _tanh


def _features(rng, count, stripes, dim, dtype=np.float32):
    """Stripe features normalised per stripe, as the model gives them."""
    f = rng.standard_normal((count, stripes, dim))
    return (f / np.linalg.norm(f, axis=-1, keepdims=True)).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of 3 queries x 5 gallery images (8x8 stripes, float32), so that small
    problems cross many tile edges."""
    monkeypatch.setattr(_consts, "TILE_QUERIES", 3)
    monkeypatch.setattr(_consts, "TILE_BYTES", 3 * 8 * 8 * 4 * 5)


def _assert_chunk_sizes_agree(x, y, chunk_sizes):
    # Any two correct tilings differ by at most twice the oracle's error model
    # (reference.error_model: norm expansion, tanh and square root, m+n-1 additions).
    from reference import error_model

    tol = error_model.local_dist_tolerance(x, y, x.dtype)
    want = reference.local_dist(x, y)
    for chunk_size in chunk_sizes:
        got = numba_impl.local_dist(x, y, chunk_size=chunk_size)
        assert got.dtype == x.dtype, f"chunk_size={chunk_size}: dtype {got.dtype}"
        err = np.abs(got.astype(np.float64) - want)
        assert np.all(err <= tol), f"chunk_size={chunk_size}: error {err.max():.3e} > tolerance"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunk_sizes_agree_with_the_oracle(rng, dtype):
    x, y = _features(rng, 23, 8, 16, dtype), _features(rng, 301, 8, 16, dtype)
    _assert_chunk_sizes_agree(x, y, (None, 1, 2, 5, 7, 22, 23, 24, 1000))  # 5, 7, 22 don't divide 23


@pytest.mark.parametrize("dim", [16, 128])
def test_chunk_sizes_across_gallery_slices(rng, small_tiles, dim):
    # 67 queries x 37 gallery images in gallery slices of 5: partial tiles on both sides,
    # and chunk sizes below, at and above the default query count.
    x, y = _features(rng, 67, 8, dim), _features(rng, 37, 8, dim)
    _assert_chunk_sizes_agree(x, y, (None, 1, 2, 3, 4, 64, 100))


def test_chunk_size_sets_the_tile(rng):
    x, y = _features(rng, 10, 8, 16), _features(rng, 7, 8, 16)
    assert cpu._tile_sizes(x, y, 4)[0] == 4 and cpu._tile_sizes(x, y, None)[0] == 10


def test_local_dist_matches_the_oracle_across_tiles(rng, small_tiles):
    # Error model: reference.error_model.local_dist_tolerance (norm expansion of the
    # squared distance, tanh and square-root roundings, m+n-1 additions along the path).
    from reference import error_model

    x, y = _features(rng, 9, 8, 16), _features(rng, 14, 6, 16)
    want = reference.local_dist(x, y)
    for chunk_size in (None, 1, 4):
        got = numba_impl.local_dist(x, y, chunk_size=chunk_size)
        assert got.dtype == np.float32
        np.testing.assert_array_less(np.abs(got.astype(np.float64) - want),
                                     error_model.local_dist_tolerance(x, y, np.float32))


def test_progress_goes_to_stderr_and_changes_nothing(rng, capsys, small_tiles):
    x, y = _features(rng, 7, 8, 16), _features(rng, 12, 8, 16)
    quiet = numba_impl.local_dist(x, y, chunk_size=3)
    assert capsys.readouterr().err == ""
    loud = numba_impl.local_dist(x, y, chunk_size=3, progress=True)
    captured = capsys.readouterr()
    np.testing.assert_array_equal(loud, quiet)
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) > 1 and all(line.startswith("local_dist: ") for line in lines)
    assert f"{7 * 12}/{7 * 12} pairs" in lines[-1]


@pytest.mark.parametrize("pairs", [1, _consts.PAIR_BLOCK - 1, _consts.PAIR_BLOCK, _consts.PAIR_BLOCK + 1,
                                   2 * _consts.PAIR_BLOCK + 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shortest_dist_around_pair_blocks_is_bitwise_the_oracle(rng, pairs, dtype):
    d = rng.random((5, 7, pairs)).astype(dtype)
    d[rng.random(d.shape) < 0.2] = 0.5  # ties
    d[2, 3, pairs - 1] = np.nan  # the last pair of the last block
    np.testing.assert_array_equal(numba_impl.shortest_dist(d), reference.shortest_dist(d))
    grad_out = rng.random(pairs).astype(dtype)
    np.testing.assert_array_equal(numba_impl.shortest_dist_vjp(d, grad_out),
                                  reference.shortest_dist_vjp(d, grad_out))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_local_dist_vjp_is_the_same_for_every_query_tile(rng, monkeypatch, dtype):
    # Query tiles only split the work: each gradient entry sums the same terms in the
    # same order (queries ascending), so any tiling is bitwise the untiled result.
    x, y = _features(rng, 10, 4, 8, dtype), _features(rng, 6, 5, 8, dtype)
    grad_out = rng.random((10, 6)).astype(dtype)
    per_query = 6 * 4 * 5 * np.dtype(dtype).itemsize
    monkeypatch.setattr(_consts, "TILE_BYTES", per_query * 10)
    untiled = numba_impl.local_dist_vjp(x, y, grad_out)
    for queries in (1, 3, 4, 9):
        monkeypatch.setattr(_consts, "TILE_BYTES", per_query * queries)
        for got, want in zip(numba_impl.local_dist_vjp(x, y, grad_out), untiled):
            np.testing.assert_array_equal(got, want, err_msg=f"{queries} queries per tile")


@njit(error_model="numpy")
def _tanh_all(t, out):
    for k in range(t.size):
        out[k] = _tanh.tanh(t[k])


def _tanh_arguments(rng, dtype):
    return np.concatenate([
        np.linspace(-12, 12, 200_001), np.exp(rng.uniform(-40, 4, 200_000)),
        [0.0, -0.0, 5e-7, 9.0, 9.01, 10.0, 88.0, 1e30, np.inf, -np.inf]]).astype(dtype)


def test_compiled_tanh_is_accurate_in_float32(rng):
    # Error model: float32 is evaluated in float64 (relative error ~1e-14, see _tanh) and
    # rounded once: within 0.5 ulp plus a hair, held to 1 ulp of the exact value
    # (np.longdouble). Signs, -0.0, infinities and NaN behave as tanh's.
    t = _tanh_arguments(rng, np.float32)
    got = np.empty_like(t)
    _tanh_all(t, got)
    exact = np.tanh(t.astype(np.longdouble))
    ulp = np.spacing(np.abs(exact.astype(np.float32))).astype(np.longdouble)
    assert np.all(np.abs(got.astype(np.longdouble) - exact) <= ulp)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(t))
    nan = np.empty(1, np.float32)
    _tanh_all(np.array([np.nan], np.float32), nan)
    assert np.isnan(nan[0])


def test_compiled_tanh_is_libm_in_float64(rng):
    t = _tanh_arguments(rng, np.float64)
    got = np.empty_like(t)
    _tanh_all(t, got)
    np.testing.assert_array_equal(got, [math.tanh(v) for v in t])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_local_dist_is_the_same_for_every_pair_block(rng, monkeypatch, dtype):
    # Blocks of PAIR_BLOCK pairs only split the work (formula 2 and its reverse pass
    # vectorise over a block's pairs; several blocks run in parallel): every pair gets the
    # same operations whatever block holds it, so any block size is bitwise the same.
    x, y = _features(rng, 11, 4, 8, dtype), _features(rng, 11, 5, 8, dtype)
    grad_out = rng.random(11).astype(dtype)
    whole = numba_impl.batch_local_dist(x, y), *numba_impl.batch_local_dist_vjp(x, y, grad_out)
    for block in (1, 3, 10, 11):
        monkeypatch.setattr(_consts, "PAIR_BLOCK", block)
        got = numba_impl.batch_local_dist(x, y), *numba_impl.batch_local_dist_vjp(x, y, grad_out)
        for g, w in zip(got, whole):
            np.testing.assert_array_equal(g, w, err_msg=f"{block} pairs per block")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_local_gradients_start_on_cache_lines(rng, dtype):
    # The VJP writes gradient rows with 64-byte vectors; both gradients share one buffer,
    # so y's must be rounded up to a boundary after x's (3 * 5 * 7 elements is not a whole
    # number of lines), and neither may overlap the other. Values as the pair by pair VJP.
    x, y = _features(rng, 3, 5, 7, dtype), _features(rng, 3, 4, 7, dtype)
    grad_out = rng.random(3).astype(dtype)
    _, saved = cpu.batch_local_forward(x, y)
    grad_x, grad_y = cpu.batch_local_backward(x, y, saved, grad_out)
    for g, like in ((grad_x, x), (grad_y, y)):
        assert g.shape == like.shape and g.dtype == like.dtype and g.flags.c_contiguous
        assert g.ctypes.data % 64 == 0
    assert grad_x.ctypes.data + grad_x.nbytes <= grad_y.ctypes.data
    for k in range(3):
        one_x, one_y = cpu.batch_local_backward(x[k:k + 1], y[k:k + 1],
                                                cpu.batch_local_forward(x[k:k + 1], y[k:k + 1])[1],
                                                grad_out[k:k + 1])
        np.testing.assert_array_equal(grad_x[k], one_x[0])
        np.testing.assert_array_equal(grad_y[k], one_y[0])
