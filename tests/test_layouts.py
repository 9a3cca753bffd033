"""Every function of the contract, and its gradient, on inputs in every memory layout.

Users hand over views: ``x.t()``, rows expanded from one, permuted batches, slices with
steps, NumPy arrays with negative strides. ``reference.crosscheck.in_layout`` makes them
(``Implementation.with_layout``); the result must be what the same implementation gives on
contiguous input:

- bitwise where only comparisons and additions of the same values are involved
  (``shortest_dist`` and its gradient, mining);
- elsewhere within the error model of ``reference.error_model`` (a matrix product may
  round differently on another layout): both calls lie within one bound of the exact
  value, and the tolerances used against the oracle are already two bounds.

For the ``expanded`` layout the inputs are drawn constant along one axis (``repeated_along``),
an axis on which that does not make every path or every mining decision a tie. The
contiguous call comes first (``baseline``): where it fails too, the failure is not one of
layouts and is left to the other clauses.
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference
from reference import error_model
from . import naive
from .assertions import assert_bitwise, assert_within, baseline
from .strategies import (cost_matrices_with_extremes, distance_matrices, labels, layouts,
                              repeated_along, stripe_features)

U64 = error_model.unit_roundoff(np.float64)


def _for_layout(data, layout, array, axes=None):
    """``array`` as drawn, or made constant along an axis from ``axes`` for ``expanded``."""
    return data.draw(repeated_along(array, axes)) if layout == "expanded" else array


@pytest.mark.uses("shortest_dist", "shortest_dist_vjp")
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # sums to +inf
@given(layout=layouts(), data=st.data())
def test_shortest_dist(impl, layout, data):
    d = _for_layout(data, layout, data.draw(cost_matrices_with_extremes(batch=True)))
    laid = impl.with_layout(layout)
    want = baseline(lambda: impl("shortest_dist", d))
    assert_bitwise(laid("shortest_dist", d), want, laid, "shortest_dist", [d])
    ones = np.ones(d.shape[2:], d.dtype)
    want = baseline(lambda: impl.vjp("shortest_dist", d, grad_out=ones))
    assert_bitwise(laid.vjp("shortest_dist", d, grad_out=ones), want, laid, "shortest_dist_vjp",
                   [d])


@pytest.mark.uses("hard_example_mining")
@given(layout=layouts(), ids=labels(), data=st.data())
def test_hard_example_mining(impl, layout, ids, data):
    dist = _for_layout(data, layout, data.draw(distance_matrices(len(ids))))
    laid = impl.with_layout(layout)
    want = baseline(lambda: impl("hard_example_mining", dist, ids, return_inds=True))
    got = laid("hard_example_mining", dist, ids, return_inds=True)
    for k, name in enumerate(("dist_ap", "dist_an", "p_inds", "n_inds")):
        assert_bitwise(got[k], want[k], laid, f"hard_example_mining {name}", [dist, ids])


@pytest.mark.uses("normalize", "normalize_vjp", "stripe_dist", "stripe_dist_vjp",
                  "euclidean_dist", "euclidean_dist_vjp", "batch_euclidean_dist",
                  "batch_euclidean_dist_vjp")
@given(layout=layouts(), features=stripe_features(pairs=True), axis=st.sampled_from([-1, 0, 1]),
       seed=st.integers(0, 2**32 - 1), data=st.data())
def test_normalize_and_euclidean_distances(impl, layout, features, axis, seed, data):
    x = _for_layout(data, layout, features[0])
    y = _for_layout(data, layout, features[1])
    laid = impl.with_layout(layout)
    u = error_model.unit_roundoff(x.dtype)
    # as in test_distances: a d-term sum of squares, a square root and a division, twice
    want = baseline(lambda: impl("normalize", x, axis=axis))
    assert_within(laid("normalize", x, axis=axis), want, 2 * (x.shape[axis] + 3) * u, laid,
                  "normalize", [x])
    e = np.abs(x)
    # tanh(e/2) within 4u relative of the exact value in each call
    want = baseline(lambda: impl("stripe_dist", e))
    assert_within(laid("stripe_dist", e), want, 8 * u * np.tanh(e.astype(np.float64) / 2), laid,
                  "stripe_dist", [e])
    tol = 2 * error_model.euclid_bound(x, y, u)
    want = baseline(lambda: impl("batch_euclidean_dist", x, y))
    assert_within(laid("batch_euclidean_dist", x, y), want, tol, laid, "batch_euclidean_dist",
                  [x, y])
    want = baseline(lambda: impl("euclidean_dist", x[0], y[0]))
    assert_within(laid("euclidean_dist", x[0], y[0]), want, tol[0], laid, "euclidean_dist",
                  [x[0], y[0]])
    # Gradients in float64, with the error models of test_gradients.
    x, y = x.astype(np.float64), y.astype(np.float64)
    rng = np.random.default_rng(seed)
    g = rng.normal(size=x.shape)
    norms = np.linalg.norm(x, axis=axis)
    assume(norms.min() > 1e-3)  # a constant-zero expansion is no test of a gradient
    want = baseline(lambda: impl.vjp("normalize", x, grad_out=g, axis=axis))
    assert_within(laid.vjp("normalize", x, grad_out=g, axis=axis), want,
                  16 * U64 * np.abs(g).sum() / norms.min(), laid, "normalize_vjp", [x, g])
    # g (1 - t^2) / 2: a tanh and three roundings, a few u of |g| in each call
    e = np.abs(x)
    want = baseline(lambda: impl.vjp("stripe_dist", e, grad_out=g))
    assert_within(laid.vjp("stripe_dist", e, grad_out=g), want, 16 * U64 * np.abs(g), laid,
                  "stripe_dist_vjp", [e, g])
    euclid = reference.batch_euclidean_dist(x, y)
    assume(euclid.min() > 1e-3)  # away from the clamp, where the gradient jumps to 0
    g2 = rng.normal(size=euclid.shape)
    rel = 2 * error_model.euclid_bound(x, y, U64) / euclid
    tol = float(np.sum(np.abs(g2) * (rel + 8 * U64)))
    want = baseline(lambda: impl.vjp("batch_euclidean_dist", x, y, grad_out=g2))
    want0 = baseline(lambda: impl.vjp("euclidean_dist", x[0], y[0], grad_out=g2[0]))
    got = laid.vjp("batch_euclidean_dist", x, y, grad_out=g2)
    got0 = laid.vjp("euclidean_dist", x[0], y[0], grad_out=g2[0])
    for k in range(2):
        assert_within(got[k], want[k], tol, laid, "batch_euclidean_dist_vjp", [x, y, g2])
        assert_within(got0[k], want0[k], tol, laid, "euclidean_dist_vjp", [x[0], y[0], g2[0]])


# Features constant along the stripe axis make every path a tie: expand images or features.
_FEATURE_AXES = (0, 2)


@pytest.mark.uses("local_dist", "local_dist_vjp", "batch_local_dist", "batch_local_dist_vjp")
@given(layout=layouts(), features=stripe_features(pairs=True), seed=st.integers(0, 2**32 - 1),
       data=st.data())
def test_local_distances(impl, layout, features, seed, data):
    x = _for_layout(data, layout, features[0], _FEATURE_AXES)
    y = _for_layout(data, layout, features[1], _FEATURE_AXES)
    laid = impl.with_layout(layout)
    tol = error_model.local_dist_tolerance(x, y, x.dtype)
    want = baseline(lambda: impl("local_dist", x, y))
    assert_within(laid("local_dist", x, y), want, tol, laid, "local_dist", [x, y])
    want = baseline(lambda: impl("batch_local_dist", x, y))
    assert_within(laid("batch_local_dist", x, y), want, np.diagonal(tol), laid,
                  "batch_local_dist", [x, y])
    x, y = x.astype(np.float64), y.astype(np.float64)
    xx, yy = np.repeat(x, len(y), axis=0), np.tile(y, (len(x), 1, 1))
    assume(naive.paths_clear_of_ties(
        xx, yy, 2 * error_model.batch_local_dist_tolerance(xx, yy, np.float64)))
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(len(x), len(y)))
    tol = error_model.local_grad_tolerance(xx, yy, g.ravel(), np.float64)
    want = baseline(lambda: impl.vjp("local_dist", x, y, grad_out=g))
    got = laid.vjp("local_dist", x, y, grad_out=g)
    g1 = np.diagonal(g).copy()
    tol1 = error_model.local_grad_tolerance(x, y, g1, np.float64)
    want1 = baseline(lambda: impl.vjp("batch_local_dist", x, y, grad_out=g1))
    got1 = laid.vjp("batch_local_dist", x, y, grad_out=g1)
    for k, name in enumerate(("grad_x", "grad_y")):
        assert_within(got[k], want[k], tol, laid, f"local_dist_vjp {name}", [x, y, g])
        assert_within(got1[k], want1[k], tol1, laid, f"batch_local_dist_vjp {name}", [x, y, g1])


@pytest.mark.uses("TripletLoss", "global_loss", "global_loss_vjp", "local_loss", "local_loss_vjp")
@pytest.mark.parametrize("margin", [0.3, None])
@given(layout=layouts(), ids=labels(max_ids=4, max_per_id=3), seed=st.integers(0, 2**32 - 1),
       mined=st.booleans(), data=st.data())
def test_losses(impl, margin, layout, ids, seed, mined, data):
    rng = np.random.default_rng(seed)
    local_feat = rng.normal(size=(len(ids), 4, 6))
    # Normalised features constant along an axis are all alike: expand raw features only.
    normalize = layout != "expanded"
    local_feat = _for_layout(data, layout, local_feat, _FEATURE_AXES)
    global_feat = local_feat.mean(axis=1)
    loss = reference.TripletLoss(margin)
    laid = impl.with_layout(layout)
    n = len(ids)
    # the loss: n softplus/relu terms of |z| <= 4 and a mean, (n + 8) u * 4, twice
    tol_terms = 2 * (n + 8) * 4 * U64
    ap, an = rng.random(n) * 3, rng.random(n) * 3
    def triplet(implementation):
        native = [implementation.to_native(a) for a in (ap, an)]
        return implementation.to_numpy(implementation("TripletLoss", margin)(*native))
    want = baseline(lambda: triplet(impl))
    assert_within(triplet(laid), want, tol_terms, laid, f"TripletLoss({margin})", [ap, an])
    # Mining and the hinge must not flip between the two calls (the margins below), then
    # the selections are equal and the rest within the error models of test_mining_loss.
    _, p_inds, n_inds, g_ap, g_an, gdist = reference.global_loss(loss, global_feat, ids, normalize)
    tol_g = 2 * error_model.euclid_bound(global_feat, global_feat, U64)
    assume(error_model.mining_margin(gdist, ids) > 2 * tol_g.max())
    assume(margin is None or np.min(np.abs(g_ap - g_an + margin)) > 2 * tol_g.max())
    want = baseline(lambda: impl("global_loss", loss, global_feat, ids, normalize_feature=normalize))
    got = laid("global_loss", loss, global_feat, ids, normalize_feature=normalize)
    np.testing.assert_array_equal(got[1], want[1], err_msg=f"{laid.name}: global_loss p_inds")
    np.testing.assert_array_equal(got[2], want[2], err_msg=f"{laid.name}: global_loss n_inds")
    assert_within(got[0], want[0], 2 * tol_g.max() + tol_terms, laid, "global_loss", [global_feat])
    if normalize:  # the error model of global_loss_grad_tolerance assumes normalised features
        want = baseline(lambda: impl.vjp("global_loss", loss, global_feat, ids))
        assert_within(laid.vjp("global_loss", loss, global_feat, ids), want,
                      error_model.global_loss_grad_tolerance(global_feat, np.float64), laid,
                      "global_loss_vjp", [global_feat, ids])
    if mined:
        kwargs = dict(labels=ids)
    else:
        kwargs = dict(p_inds=_for_layout(data, layout, p_inds),
                      n_inds=_for_layout(data, layout, n_inds))
    feat = reference.normalize(local_feat) if normalize else local_feat
    a, k = np.nonzero(~np.eye(n, dtype=bool))
    tol_pairs = error_model.batch_local_dist_tolerance(feat[a], feat[k], np.float64)
    assume(naive.paths_clear_of_ties(feat[a], feat[k], 2 * tol_pairs))
    if mined:
        local = reference.local_dist(feat, feat)
        assume(error_model.mining_margin(local, ids) > 2 * tol_pairs.max())
    out = reference.local_loss(loss, local_feat, normalize_feature=normalize, **kwargs)
    assume(margin is None or np.min(np.abs(out[1] - out[2] + margin)) > 2 * tol_pairs.max())
    want = baseline(lambda: impl("local_loss", loss, local_feat, normalize_feature=normalize,
                                 **kwargs))
    got = laid("local_loss", loss, local_feat, normalize_feature=normalize, **kwargs)
    assert_within(got[0], want[0], 2 * tol_pairs.max() + tol_terms, laid, "local_loss",
                  [local_feat])
    if normalize:  # as for global_loss: the error model is for normalised stripes
        want = baseline(lambda: impl.vjp("local_loss", loss, local_feat, **kwargs))
        assert_within(laid.vjp("local_loss", loss, local_feat, **kwargs), want,
                      error_model.local_loss_grad_tolerance(local_feat, np.float64), laid,
                      "local_loss_vjp", [local_feat, ids])
