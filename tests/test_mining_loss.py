"""Hard-example mining and the triplet, global and local losses, against the oracle."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference
from reference import error_model
from .assertions import assert_bitwise, assert_within, baseline
from .strategies import (distance_matrices, extreme_distance_matrices,
                              extreme_stripe_features, indices_in_any_integer_dtype, labels,
                              labels_in_any_integer_dtype)


@pytest.mark.uses("hard_example_mining")
@pytest.mark.parametrize("matrices", [distance_matrices, extreme_distance_matrices],
                         ids=["ordinary", "extreme"])
@given(labels(), st.data())
def test_mining_is_an_exact_selection(impl, matrices, ids, data):
    # Mining only compares and selects, so values and indices must match exactly,
    # ties (lowest index wins) and unbalanced identities included. With NaN, +-inf and
    # near-equal values: NaN is the extreme for both choices, the first one wins.
    dist = data.draw(matrices(len(ids)))
    got = impl("hard_example_mining", dist, ids, return_inds=True)
    want = reference.hard_example_mining(dist, ids, return_inds=True)
    for k, name in enumerate(("dist_ap", "dist_an", "p_inds", "n_inds")):
        assert_bitwise(np.asarray(got[k]).astype(want[k].dtype) if k > 1 else got[k], want[k],
                       impl, f"hard_example_mining {name}", [dist, ids])
    two = impl("hard_example_mining", dist, ids)
    assert len(two) == 2, f"{impl.name}: return_inds=False must return (dist_ap, dist_an)"


@pytest.mark.uses("hard_example_mining")
def test_mining_ties_go_to_the_lowest_index(impl):
    dist = np.zeros((4, 4))
    got = impl("hard_example_mining", dist, np.array([0, 1, 0, 1]), return_inds=True)
    np.testing.assert_array_equal(got[2], [0, 1, 0, 1], err_msg=f"{impl.name}: p_inds on ties")
    np.testing.assert_array_equal(got[3], [1, 0, 1, 0], err_msg=f"{impl.name}: n_inds on ties")


@pytest.mark.uses("TripletLoss")
@pytest.mark.parametrize("margin", [0.3, 0.0, None])
@given(st.integers(1, 16), st.integers(0, 2**32 - 1), st.sampled_from([np.float32, np.float64]))
def test_triplet_loss(impl, margin, n, seed, dtype):
    rng = np.random.default_rng(seed)
    ap, an = (rng.random(n) * 3).astype(dtype), (rng.random(n) * 3).astype(dtype)
    loss = reference.TripletLoss(margin)
    got = impl("TripletLoss", margin)(impl.to_native(ap), impl.to_native(an))
    got = impl.to_numpy(got)
    # n softplus/relu terms (a few u each, |term| <= 4) then a mean (n u): (n + 8) u * 4, twice.
    tol = 2 * (n + 8) * error_model.unit_roundoff(dtype) * 4
    assert_within(got, loss(ap, an), tol, impl, f"TripletLoss({margin})", [ap, an])


# inf - inf on purpose (both distances infinite): NumPy warns, the NaN is the contract's.
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.uses("TripletLoss")
@pytest.mark.parametrize("margin", [0.3, None])
@given(st.integers(2, 16).flatmap(extreme_distance_matrices))
def test_triplet_loss_with_extreme_distances(impl, margin, dist):
    # NaN, +-inf, near-1e5 and near-0 distances: NaN and inf exactly where the oracle has
    # them (inf - inf and NaN give NaN, ap = inf gives inf). Error model as in
    # test_triplet_loss, relative to the largest finite term instead of 4.
    ap, an = dist[0], dist[1]
    loss = reference.TripletLoss(margin)
    got = impl.to_numpy(impl("TripletLoss", margin)(impl.to_native(ap), impl.to_native(an)))
    with np.errstate(invalid="ignore"):
        z = np.abs(ap.astype(np.float64) - an)
    largest = max(1.0, float(np.max(z[np.isfinite(z)], initial=0.0)))
    tol = 2 * (len(ap) + 8) * error_model.unit_roundoff(dist.dtype) * 4 * largest
    with np.errstate(invalid="ignore", over="ignore"):
        want = loss(ap, an)
    assert_within(got, want, tol, impl, f"TripletLoss({margin})", [ap, an])


@pytest.mark.uses("TripletLoss")
def test_soft_margin_does_not_overflow(impl):
    ap, an = np.array([200.0], np.float32), np.array([0.0], np.float32)
    got = impl.to_numpy(impl("TripletLoss", None)(impl.to_native(ap), impl.to_native(an)))
    np.testing.assert_allclose(got, 200.0, rtol=1e-6, err_msg=f"{impl.name}: log(1 + e^200)")


@pytest.mark.uses("TripletLoss")
@pytest.mark.parametrize("margin", [float("nan"), float("inf"), -float("inf"), np.float32("nan"),
                                    10**400, -Fraction(10**400)],
                         ids=["nan", "inf", "-inf", "float32 nan", "int beyond float",
                              "Fraction beyond float"])
def test_triplet_loss_refuses_non_finite_margin(impl, margin):
    # With margin +-inf the hinge is inf - inf or 0 * inf somewhere (NaN loss or slope);
    # a NaN margin has no meaning; a Python number beyond the float range becomes +-inf.
    # The contract refuses them, in every implementation (not with an OverflowError).
    with pytest.raises(ValueError, match=r"\bmargin\b"):
        impl.function("TripletLoss")(margin)


def _triplet_loss_grad(impl, margin, ap, an):
    """``(grad_ap, grad_an)`` of the module's TripletLoss at ``(ap, an)``, as NumPy."""
    tri = impl.function("TripletLoss")(margin)
    if impl.array == "numpy":
        return tri.vjp(ap, an)
    ap_t, an_t = impl.to_native(ap, requires_grad=True), impl.to_native(an, requires_grad=True)
    tri(ap_t, an_t).backward()
    return impl.to_numpy(ap_t.grad), impl.to_numpy(an_t.grad)


# Differences ap - an from -1e5 to 1e5: softplus(1e5) overflows as log(1 + e^z), and the
# slope e^z / (1 + e^z) is inf / inf there, the pitfall of hand-written soft margins.
_Z = np.array([-1e5, -100.0, -20.0, -1.0, 0.0, 1.0, 20.0, 100.0, 1e5])


@pytest.mark.uses("TripletLoss")
@pytest.mark.parametrize("margin", [None, 0.3, 1e6, -1e6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_triplet_loss_extreme_differences(impl, margin, dtype):
    ap, an = _Z.astype(dtype), np.zeros(len(_Z), dtype)
    want_loss = reference.TripletLoss(margin)(ap, an)
    got = impl.to_numpy(impl("TripletLoss", margin)(impl.to_native(ap), impl.to_native(an)))
    u, n = error_model.unit_roundoff(dtype), len(_Z)
    # Each term (softplus or hinge, |term| <= |z| + |margin|) to a few u, then a mean of n
    # terms: (n + 8) u times the largest term.
    scale = np.abs(_Z).max() + (0 if margin is None else abs(margin))
    assert_within(got, want_loss, (n + 8) * u * scale, impl, f"TripletLoss({margin})", [ap, an])


@pytest.mark.uses("TripletLoss")
@pytest.mark.parametrize("margin", [None, 0.3, 1e6, -1e6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_triplet_loss_gradient_at_extreme_differences(impl, margin, dtype):
    # A NumPy module gives the gradient by its TripletLoss's vjp method, a torch one by autograd.
    if impl.array == "numpy" and not hasattr(impl.function("TripletLoss")(margin), "vjp"):
        pytest.skip(f"{impl.name} does not provide TripletLoss.vjp (not provided)")
    ap, an = _Z.astype(dtype), np.zeros(len(_Z), dtype)
    want_grads = reference.TripletLoss(margin).vjp(ap, an)
    u, n = error_model.unit_roundoff(dtype), len(_Z)
    # Slopes are 0 or 1 (hinge) or the logistic function (to a few u), scaled by 1/n.
    for name, g, w in zip(("grad_ap", "grad_an"), _triplet_loss_grad(impl, margin, ap, an),
                          want_grads):
        assert g.dtype == dtype, f"{impl.name}: TripletLoss {name} has dtype {g.dtype}"
        assert_within(g, w, 8 * u / n, impl, f"TripletLoss({margin}) -> {name}", [ap, an])


def _batch(seed, ids, dtype, stripes=4, dim=6):
    rng = np.random.default_rng(seed)
    local_feat = rng.normal(size=(len(ids), stripes, dim)).astype(dtype)
    return local_feat, local_feat.mean(axis=1)


@pytest.mark.uses("global_loss")
@pytest.mark.parametrize("margin", [0.3, None])
@given(labels(max_ids=4, max_per_id=4), st.integers(0, 2**32 - 1), st.booleans(),
       st.sampled_from([np.float32, np.float64]))
def test_global_loss(impl, margin, ids, seed, normalize, dtype):
    _, feat = _batch(seed, ids, dtype)
    want = reference.global_loss(reference.TripletLoss(margin), feat, ids, normalize)
    u = error_model.unit_roundoff(dtype)
    tol_dist = 2 * error_model.euclid_bound(feat, feat, u)
    assume(error_model.mining_margin(want[5], ids) > 2 * tol_dist.max())
    got = impl("global_loss", reference.TripletLoss(margin), feat, ids, normalize_feature=normalize)
    np.testing.assert_array_equal(got[1], want[1], err_msg=f"{impl.name}: p_inds")
    np.testing.assert_array_equal(got[2], want[2], err_msg=f"{impl.name}: n_inds")
    assert_within(got[5], want[5], tol_dist, impl, "global_loss dist_mat", [feat, ids])
    # the loss is a mean of 1-Lipschitz functions of (ap - an), plus its own rounding
    tol_loss = 2 * tol_dist.max() + 2 * (len(ids) + 8) * u * 4
    assert_within(got[0], want[0], tol_loss, impl, "global_loss loss", [feat, ids])


@pytest.mark.uses("local_loss")
@pytest.mark.parametrize("margin", [0.3, None])
@given(labels(max_ids=4, max_per_id=3), st.integers(0, 2**32 - 1), st.booleans(), st.booleans(),
       st.sampled_from([np.float32, np.float64]))
def test_local_loss(impl, margin, ids, seed, normalize, mined, dtype):
    local_feat, global_feat = _batch(seed, ids, dtype)
    loss = reference.TripletLoss(margin)
    feat = reference.normalize(local_feat) if normalize else local_feat
    tol_dist = error_model.local_dist_tolerance(feat, feat, dtype)
    if mined:
        kwargs = dict(labels=ids)
        dist = reference.local_dist(feat, feat)
        assume(error_model.mining_margin(dist, ids) > 2 * tol_dist.max())
    else:
        _, p_inds, n_inds, *_ = reference.global_loss(loss, global_feat, ids)
        kwargs = dict(p_inds=p_inds, n_inds=n_inds)
    want = reference.local_loss(loss, local_feat, normalize_feature=normalize, **kwargs)
    got = impl("local_loss", loss, local_feat, normalize_feature=normalize, **kwargs)
    assert len(got) == len(want), f"{impl.name}: local_loss returned {len(got)} values"
    for k, name in enumerate(("loss", "dist_ap", "dist_an", "dist_mat")[:len(want)]):
        tol = tol_dist if name == "dist_mat" else 2 * tol_dist.max() + 2 * (len(ids) + 8) * 4 * \
            error_model.unit_roundoff(dtype)
        assert_within(got[k], want[k], tol, impl, f"local_loss {name}", [local_feat, ids])


@pytest.mark.uses("global_loss", "local_loss")
@pytest.mark.parametrize("margin", [0.3, None])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the oracle's IEEE overflow is the point
@given(labels(max_ids=4, max_per_id=3), st.booleans(), st.data())
def test_losses_with_extreme_features(impl, margin, ids, normalize, data):
    # Features where |x|^2 overflows, beside ordinary ones, and infinite entries (tests.
    # strategies.extreme_stripe_features): every distance within the error model, NaN
    # exactly where the oracle has NaN, so mining (a max and a min, 1-Lipschitz, NaN first)
    # and the loss follow. The indices may differ on near-ties: only values are compared.
    local_feat = data.draw(extreme_stripe_features(images=len(ids)))[0]
    global_feat = local_feat[:, 0]
    loss, u = reference.TripletLoss(margin), error_model.unit_roundoff(local_feat.dtype)
    for name, feat, args in (("global_loss", global_feat, (ids, normalize)),
                             ("local_loss", local_feat, (None, None, ids, normalize))):
        want = getattr(reference, name)(loss, feat, *args)
        got = impl(name, loss, feat, *args)
        dist_ap, dist_an = (want[3], want[4]) if name == "global_loss" else (want[1], want[2])
        used = reference.normalize(feat) if normalize else feat
        tol_dist = (2 * error_model.euclid_bound(used, used, u) if name == "global_loss"
                    else error_model.local_dist_tolerance(used, used, used.dtype))
        with np.errstate(invalid="ignore"):
            terms = np.abs(dist_ap.astype(np.float64) - dist_an)
        largest = max(1.0, float(np.max(terms[np.isfinite(terms)], initial=0.0)))
        tol_loss = 2 * tol_dist.max() + 2 * (len(ids) + 8) * u * 4 * largest
        picks = (3, 4) if name == "global_loss" else (1, 2)
        for k, what in zip(picks, ("dist_ap", "dist_an")):
            assert_within(got[k], want[k], tol_dist.max(), impl, f"{name} {what}", [feat, ids])
        assert_within(got[0], want[0], tol_loss, impl, f"{name} loss", [feat, ids])


@pytest.mark.uses("global_loss", "global_loss_vjp", "local_loss", "local_loss_vjp")
@pytest.mark.parametrize("margin", [0.3, None])
@given(labels(max_ids=4, max_per_id=3), st.integers(0, 2**32 - 1), st.booleans())
def test_loss_gradients(impl, margin, ids, seed, mined):
    local_feat, global_feat = _batch(seed, ids, np.float64)
    loss = reference.TripletLoss(margin)
    _, p_inds, n_inds, ap, an, gdist = reference.global_loss(loss, global_feat, ids)
    assume(error_model.mining_margin(gdist, ids) > 1e-9)
    assume(margin is None or np.min(np.abs(ap - an + margin)) > 1e-9)
    # error models: reference.error_model.global_loss_grad_tolerance / local_loss_grad_tolerance
    assert_within(impl.vjp("global_loss", loss, global_feat, ids),
                  reference.global_loss_vjp(loss, global_feat, ids),
                  error_model.global_loss_grad_tolerance(global_feat, np.float64), impl,
                  "global_loss_vjp", [global_feat, ids])
    kwargs = dict(labels=ids) if mined else dict(p_inds=p_inds, n_inds=n_inds)
    feat = reference.normalize(local_feat)
    a, k = np.nonzero(~np.eye(len(ids), dtype=bool))
    stripes = reference.stripe_dist(reference.batch_euclidean_dist(feat[a], feat[k]))
    assume(all(error_model.path_margin(s) > 1e-9 for s in stripes))
    if mined:
        assume(error_model.mining_margin(reference.local_dist(feat, feat), ids) > 1e-9)
    out = reference.local_loss(loss, local_feat, **kwargs)
    assume(margin is None or np.min(np.abs(out[1] - out[2] + margin)) > 1e-9)
    tol = error_model.local_loss_grad_tolerance(local_feat, np.float64)
    assert_within(impl.vjp("local_loss", loss, local_feat, **kwargs),
                  reference.local_loss_vjp(loss, local_feat, **kwargs), tol, impl,
                  "local_loss_vjp", [local_feat, ids])


@pytest.mark.uses("hard_example_mining", "global_loss", "global_loss_vjp", "local_loss")
@given(labels(max_ids=4, max_per_id=3), st.integers(0, 2**32 - 1), st.data())
def test_labels_of_every_integer_dtype(impl, ids, seed, data):
    # Only equality of labels matters: renamed in any integer dtype (negative, extreme, next
    # to 2**24 or 2**53), every result is bitwise that of the labels 0, 1, ... themselves.
    renamed = data.draw(labels_in_any_integer_dtype(ids))
    dist = data.draw(distance_matrices(len(ids)))
    want = baseline(lambda: impl("hard_example_mining", dist, ids, return_inds=True))
    got = impl("hard_example_mining", dist, renamed, return_inds=True)
    for k, name in enumerate(("dist_ap", "dist_an", "p_inds", "n_inds")):
        assert_bitwise(got[k], want[k], impl, f"hard_example_mining {name}", [dist, renamed])
    local_feat, global_feat = _batch(seed, ids, np.float64)
    loss = reference.TripletLoss(0.3)
    calls = [("global_loss", loss, global_feat), ("local_loss", loss, local_feat)]
    for func, tri, feat in calls:
        want = baseline(lambda: impl(func, tri, feat, labels=ids))
        got = impl(func, tri, feat, labels=renamed)
        for k, (g, w) in enumerate(zip(got, want)):
            assert_bitwise(g, w, impl, f"{func} output {k}", [feat, renamed])
    want = baseline(lambda: impl.vjp("global_loss", loss, global_feat, ids))
    assert_bitwise(impl.vjp("global_loss", loss, global_feat, renamed), want, impl,
                   "global_loss_vjp", [global_feat, renamed])


@pytest.mark.uses("local_loss", "local_loss_vjp")
@given(labels(max_ids=4, max_per_id=3), st.integers(0, 2**32 - 1), st.data())
def test_indices_of_every_integer_dtype(impl, ids, seed, data):
    # Indices select rows: in any integer dtype the results are bitwise those of int64
    # indices (uint8 in particular is no boolean mask). Labels given along are checked only.
    local_feat, global_feat = _batch(seed, ids, np.float64)
    loss = reference.TripletLoss(0.3)
    _, p_inds, n_inds, *_ = reference.global_loss(loss, global_feat, ids)
    p_any = data.draw(indices_in_any_integer_dtype(p_inds))
    n_any = data.draw(indices_in_any_integer_dtype(n_inds))
    renamed = data.draw(labels_in_any_integer_dtype(ids))
    want = baseline(lambda: impl("local_loss", loss, local_feat, p_inds, n_inds))
    for kwargs in ({}, {"labels": renamed}):
        got = impl("local_loss", loss, local_feat, p_any, n_any, **kwargs)
        for k, name in enumerate(("loss", "dist_ap", "dist_an")):
            assert_bitwise(got[k], want[k], impl, f"local_loss {name}", [local_feat, p_any, n_any])
    want = baseline(lambda: impl.vjp("local_loss", loss, local_feat, p_inds, n_inds))
    assert_bitwise(impl.vjp("local_loss", loss, local_feat, p_any, n_any), want, impl,
                   "local_loss_vjp", [local_feat, p_any, n_any])
