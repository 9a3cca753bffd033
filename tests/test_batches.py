"""Batches: large cases where implementations split their work, and one pair's NaN.

The property tests draw small sizes (at most 16 x 16 stripes, a few images), where
a batch is one block of work. Implementations split larger work into blocks: of 64 or
256 pairs, of a power of two, of 16 columns. A bug in the last, partial block (a tail
left uncomputed, a buffer that wraps) is invisible below the block size; these few
deterministic cases sit on both sides of such sizes.

A NaN in one pair of a batch makes that pair's result NaN, and no other: a shortcut that
answers NaN for the whole batch, or a reduction across pairs, would spread it.
"""
import numpy as np
import pytest

import reference
from reference import error_model

from .assertions import assert_bitwise, assert_within

# Pair counts around the block sizes of implementations, and matrices past 16 x 16.
PAIRS = [63, 64, 65, 255, 256, 257, 1025]
SIDES = [(17, 17), (16, 33), (40, 9), (64, 65)]


def _costs(shape, dtype, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, size=shape).astype(dtype)


def _features(shape, dtype, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


@pytest.mark.uses("shortest_dist")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 6, k) for k in PAIRS] + SIDES + [(19, 21, 65)],
                         ids=lambda s: "x".join(map(str, s)))
def test_large_shortest_dist(impl, shape, dtype):
    d = _costs(shape, dtype)
    assert_bitwise(impl("shortest_dist", d), reference.shortest_dist(d), impl, "shortest_dist", [d])


@pytest.mark.uses("batch_local_dist", "local_dist", "pair_local_dist")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pairs", PAIRS)
def test_large_local_distances(impl, pairs, dtype):
    # batch_local_dist on `pairs` pairs; local_dist on a query x gallery grid of about as
    # many pairs (and in chunks of 7 queries); pair_local_dist on matrices past 16 x 16.
    x, y = _features((pairs, 3, 8), dtype), _features((pairs, 4, 8), dtype, seed=1)
    tol = error_model.batch_local_dist_tolerance(x, y, dtype)
    assert_within(impl("batch_local_dist", x, y), reference.batch_local_dist(x, y), tol, impl,
                  "batch_local_dist", [x, y])
    queries = max(1, pairs // 13)
    q, g = x[:queries], y[:-(-pairs // queries)]
    tol = error_model.local_dist_tolerance(q, g, dtype)
    want = reference.local_dist(q, g)
    assert_within(impl("local_dist", q, g), want, tol, impl, "local_dist", [q, g])
    assert_within(impl("local_dist", q, g, chunk_size=7), want, tol, impl,
                  "local_dist(chunk_size=7)", [q, g])
    a, b = _features((17 + pairs % 7, 8), dtype, seed=2), _features((33, 8), dtype, seed=3)
    tol = error_model.batch_local_dist_tolerance(a[None], b[None], dtype)[0]
    assert_within(impl("pair_local_dist", a, b), reference.pair_local_dist(a, b), tol, impl,
                  "pair_local_dist", [a, b])


@pytest.mark.uses("hard_example_mining")
@pytest.mark.parametrize("n", [65, 257])
def test_large_mining(impl, n):
    # Unbalanced identities (1 to 7 images), shuffled, with ties: an exact selection.
    rng = np.random.default_rng(n)
    ids = rng.permutation(np.repeat(np.arange(n), rng.integers(1, 8, size=n))[:n])
    dist = rng.choice([0.25, 0.5, 0.75, 1.0], size=(n, n))
    got = impl("hard_example_mining", dist, ids, return_inds=True)
    want = reference.hard_example_mining(dist, ids, return_inds=True)
    for k, name in enumerate(("dist_ap", "dist_an", "p_inds", "n_inds")):
        assert_bitwise(np.asarray(got[k]).astype(want[k].dtype) if k > 1 else got[k], want[k],
                       impl, f"hard_example_mining {name}", [dist, ids])


@pytest.mark.uses("shortest_dist", "shortest_dist_vjp", "batch_local_dist", "batch_local_dist_vjp")
@pytest.mark.parametrize("pairs", [65, 257])
def test_large_local_gradients(impl, pairs):
    d = _costs((6, 5, pairs), np.float64)
    ones = np.ones(pairs)
    assert_bitwise(impl.vjp("shortest_dist", d, grad_out=ones), reference.shortest_dist_vjp(d, ones),
                   impl, "shortest_dist_vjp", [d])
    x, y = _features((pairs, 3, 5), np.float64), _features((pairs, 4, 5), np.float64, seed=1)
    stripes = reference.stripe_dist(reference.batch_euclidean_dist(x, y))
    tol_value = error_model.batch_local_dist_tolerance(x, y, np.float64)
    assert all(error_model.path_margin(s) > 2 * t for s, t in zip(stripes, tol_value)), "reseed"
    g = np.linspace(0.5, 1.5, pairs)
    tol = error_model.local_grad_tolerance(x, y, g, np.float64)
    got, want = impl.vjp("batch_local_dist", x, y, grad_out=g), reference.batch_local_dist_vjp(x, y, g)
    for k, name in enumerate(("grad_x", "grad_y")):
        assert_within(got[k], want[k], tol, impl, f"batch_local_dist_vjp {name}", [x, y])


# --- one pair's NaN -------------------------------------------------------------------------
def _with_nan(dtype, pairs, where):
    """Features of ``pairs`` images each, with one NaN entry in image 2 of ``where``."""
    x, y = _features((pairs, 3, 4), dtype), _features((pairs, 5, 4), dtype, seed=1)
    (x if where == "x" else y)[2, 1, 3] = np.nan
    return x, y


@pytest.mark.uses("batch_local_dist", "local_dist", "pair_local_dist")
@pytest.mark.parametrize("where", ["x", "y"])
@pytest.mark.parametrize("pairs", [5, 65])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_in_one_pair_stays_in_its_pair(impl, dtype, pairs, where):
    # NaN exactly where the oracle has it (assert_within checks the pattern first): pair 2
    # of batch_local_dist, row or column 2 of local_dist; every other value as usual.
    x, y = _with_nan(dtype, pairs, where)
    assert_within(impl("batch_local_dist", x, y), reference.batch_local_dist(x, y),
                  error_model.batch_local_dist_tolerance(x, y, dtype), impl, "batch_local_dist",
                  [x, y])
    q = x[:4]
    assert_within(impl("local_dist", q, y), reference.local_dist(q, y),
                  error_model.local_dist_tolerance(q, y, dtype), impl, "local_dist", [q, y])
    for k in (1, 2):
        got = impl("pair_local_dist", x[k], y[k])
        assert np.isnan(got) == (k == 2), f"{impl.name}.pair_local_dist: {got!r} for pair {k}"


@pytest.mark.uses("batch_local_dist", "batch_local_dist_vjp")
@pytest.mark.parametrize("where", ["x", "y"])
def test_nan_in_one_pair_leaves_other_gradients(impl, where):
    # The NaN pair's gradient is NaN (as the oracle's); every other pair's is the usual one.
    x, y = _with_nan(np.float64, 5, where)
    g = np.linspace(0.5, 1.5, 5)
    got = impl.vjp("batch_local_dist", x, y, grad_out=g)
    want = reference.batch_local_dist_vjp(x, y, g)
    keep = np.arange(5) != 2
    tol = error_model.local_grad_tolerance(x[keep], y[keep], g[keep], np.float64)
    for k, name in enumerate(("grad_x", "grad_y")):
        assert_within(got[k][keep], want[k][keep], tol, impl, f"batch_local_dist_vjp {name}",
                      [x, y])
