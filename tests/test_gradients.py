"""Gradients: the oracle against finite differences, every implementation against the oracle.

Formula 2's gradient is a flow of dyadic numbers (1, 1/2, 1/4, ...) decided by exact
comparisons of bitwise-equal tables, so for ``grad_out = 1`` every implementation must
match the oracle bit for bit, ties included. Smooth parts are compared in float64 within
``reference.error_model.local_grad_tolerance``, on inputs whose optimal paths are
unique by a margin larger than the value error (else two correct codes may differ).
"""
import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference
from reference import error_model
from . import naive
from .assertions import assert_bitwise, assert_within
from .strategies import (cost_matrices, cost_matrices_with_extremes, extreme_stripe_features,
                              labels, stripe_features)

U64 = error_model.unit_roundoff(np.float64)


# --- the oracle against central differences ----------------------------------------
def directional_check(f, vjp_dot_v, x, v, h=1e-4, magnitude=1.0):
    """Compare ``<vjp(g), v>`` with the derivative of ``phi(t) = <f(x + t v), g>`` at 0.

    Central differences with steps ``h`` and ``h/2`` have truncation errors ``c h^2`` and
    ``c h^2 / 4``; their difference, divided by 3, estimates the error of the finer one
    (Richardson). Rounding: every entry of ``f`` here carries at most about
    ``(d + m + n + 4) u <= 64 u`` relative error (a d-term sum, a square root, a tanh, a
    path of m+n-1 additions, with d, m, n <= 16), so ``phi`` is off by at most
    ``64 u magnitude`` with ``magnitude = sum |f| |g|``, and the difference quotient by
    ``2 * 64 u magnitude / h``.
    """
    __tracebackhide__ = True
    phi = lambda t: float(f(x + t * v))  # noqa: E731
    fd_h = (phi(h) - phi(-h)) / (2 * h)
    fd_h2 = (phi(h / 2) - phi(-h / 2)) / h
    tol = 2 * abs(fd_h - fd_h2) / 3 + 2 * 2 * 64 * U64 * max(magnitude, abs(phi(0)), 1.0) / h
    assert abs(fd_h2 - vjp_dot_v) <= tol, (
        f"VJP gives {vjp_dot_v!r}, central differences {fd_h2!r} (tolerance {tol:.2e})")


@given(cost_matrices(dtype=np.float64, ties=False, max_side=8), st.integers(0, 2**32 - 1))
def test_oracle_shortest_dist_vjp_matches_finite_differences(d, seed):
    v = np.random.default_rng(seed).normal(size=d.shape)
    h = 1e-4
    # phi is linear between ties; a step of h moves any path sum by at most (m+n-1) h |v|.
    assume(error_model.path_margin(d) > 4 * h * (sum(d.shape) - 1) * np.abs(v).max())
    g = reference.shortest_dist_vjp(d, 1.0)
    directional_check(reference.shortest_dist, float(np.sum(g * v)), d, v, h)


FEATURE_FUNCS = [
    ("euclidean_dist", lambda x, y: (x[0], y[0])),
    ("batch_euclidean_dist", lambda x, y: (x, y)),
    ("local_dist", lambda x, y: (x, y)),
    ("batch_local_dist", lambda x, y: (x, y)),
]


def _pairs_far_from_ties(x, y, func, h):
    """True when every pair's optimal path wins by a margin no step of size h can close."""
    if "local" not in func:
        return True
    if func == "local_dist":
        x, y = np.repeat(x, len(y), axis=0), np.tile(y, (len(x), 1, 1))
    return naive.paths_clear_of_ties(x, y, 100 * h)


@pytest.mark.parametrize("func, arrange", FEATURE_FUNCS, ids=[f for f, _ in FEATURE_FUNCS])
@given(data=stripe_features(pairs=True, dtype=np.float64), seed=st.integers(0, 2**32 - 1))
def test_oracle_feature_vjps_match_finite_differences(func, arrange, data, seed):
    x, y = arrange(*data)
    h = 1e-5
    assume(_pairs_far_from_ties(x, y, func, h))
    rng = np.random.default_rng(seed)
    f = getattr(reference, func)
    g = rng.normal(size=np.shape(f(x, y)))
    gx, gy = getattr(reference, f"{func}_vjp")(x, y, g)
    vx, vy = rng.normal(size=x.shape), rng.normal(size=y.shape)
    both = lambda t_vec: np.sum(f(x + t_vec[0] * vx, y + t_vec[0] * vy) * g)  # noqa: E731
    directional_check(both, float(np.sum(gx * vx) + np.sum(gy * vy)), np.zeros(1), np.ones(1), h,
                      magnitude=float(np.sum(np.abs(f(x, y) * g))))


@given(st.integers(1, 4), st.integers(1, 6), st.integers(0, 2**32 - 1), st.booleans())
def test_oracle_normalize_and_stripe_vjps_match_finite_differences(rows, dim, seed, zero_row):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, dim))
    if zero_row:
        x[0] = 0.0  # normalize maps the zero vector to zero; its gradient is g / 1e-12
    g, v = rng.normal(size=x.shape), rng.normal(size=x.shape)
    if not zero_row:
        directional_check(lambda t: np.sum(reference.normalize(x + t[0] * v) * g),
                          float(np.sum(reference.normalize_vjp(x, g) * v)), np.zeros(1), np.ones(1))
    e = np.abs(x) + 0.1
    directional_check(lambda t: np.sum(reference.stripe_dist(e + t[0] * v) * g),
                      float(np.sum(reference.stripe_dist_vjp(e, g) * v)), np.zeros(1), np.ones(1))


@pytest.mark.parametrize("margin", [0.3, None])
@given(data=stripe_features(pairs=True, dtype=np.float64, max_images=1), ids=labels(max_ids=4, max_per_id=3),
       seed=st.integers(0, 2**32 - 1), normalize=st.booleans(), mined=st.booleans())
def test_oracle_loss_vjps_match_finite_differences(margin, data, ids, seed, normalize, mined):
    rng = np.random.default_rng(seed)
    n = len(ids)
    local_feat = rng.normal(size=(n, data[0].shape[1], data[0].shape[2]))
    global_feat = local_feat.mean(axis=1)
    loss = reference.TripletLoss(margin)
    h = 1e-5
    v_l, v_g = rng.normal(size=local_feat.shape), rng.normal(size=global_feat.shape)
    # A step of h |v| moves distances by O(h |v|); mining and the margin's kink must not flip.
    reach = 100 * h * max(np.abs(v_l).max(), np.abs(v_g).max())
    _, p_inds, n_inds, ap, an, gdist = reference.global_loss(loss, global_feat, ids, normalize)
    assume(error_model.mining_margin(gdist, ids) > reach)
    # |f - g| has a kink at 0 (the clamp): keep distinct images and stripes apart.
    off_diagonal = ~np.eye(n, dtype=bool)
    assume(np.min(gdist[off_diagonal], initial=np.inf) > reach)
    assume(margin is None or np.min(np.abs(ap - an + margin)) > reach)
    directional_check(lambda t: reference.global_loss(loss, global_feat + t[0] * v_g, ids, normalize)[0],
                      float(np.sum(reference.global_loss_vjp(loss, global_feat, ids, normalize) * v_g)),
                      np.zeros(1), np.ones(1), h)
    kwargs = dict(labels=ids) if mined else dict(p_inds=p_inds, n_inds=n_inds)
    out = reference.local_loss(loss, local_feat, normalize_feature=normalize, **kwargs)
    if mined:
        assume(error_model.mining_margin(out[3], ids) > reach)
    assume(margin is None or np.min(np.abs(out[1] - out[2] + margin)) > reach)
    # An image against itself always ties (a path and its mirror image), but both paths
    # cost the same function of the features, so the half-split is the exact derivative.
    feat = reference.normalize(local_feat) if normalize else local_feat
    a, k = np.nonzero(~np.eye(n, dtype=bool))
    assume(_pairs_far_from_ties(feat[a], feat[k], "batch_local_dist", reach / 100))
    stripes = reference.batch_euclidean_dist(np.repeat(feat, n, axis=0), np.tile(feat, (n, 1, 1)))
    same_cell = np.eye(n, dtype=bool).ravel()[:, None, None] & np.eye(feat.shape[1], dtype=bool)
    assume(np.min(stripes[~same_cell]) > reach)  # only a stripe against itself sits at 0
    directional_check(
        lambda t: reference.local_loss(loss, local_feat + t[0] * v_l, normalize_feature=normalize,
                                       **kwargs)[0],
        float(np.sum(reference.local_loss_vjp(loss, local_feat, normalize_feature=normalize,
                                              **kwargs) * v_l)),
        np.zeros(1), np.ones(1), h)


# --- every implementation against the oracle -----------------------------------------
@pytest.mark.uses("shortest_dist", "shortest_dist_vjp")
@given(cost_matrices(batch=True))
@example(np.full((3, 3, 1), 0.5, np.float32))
def test_shortest_dist_gradient_bitwise_with_ties(impl, d):
    ones = np.ones(d.shape[2:], d.dtype)
    got = impl.vjp("shortest_dist", d, grad_out=ones)
    assert_bitwise(got, reference.shortest_dist_vjp(d, ones), impl, "shortest_dist_vjp", [d])


@pytest.mark.uses("shortest_dist", "shortest_dist_vjp")
# Path sums overflow to +inf on purpose: NumPy warns, the oracle is right.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@given(cost_matrices_with_extremes(batch=True))
@example(np.array([[np.inf, 1], [1, 1]])[:, :, None])  # ties with the padding outside
@example(np.array([[1, 1], [np.inf, 1]], np.float32)[:, :, None])
@example(np.full((3, 4, 1), np.finfo(np.float32).max, np.float32))  # sums overflow to +inf
def test_shortest_dist_gradient_bitwise_with_infinite_cells(impl, d):
    ones = np.ones(d.shape[2:], d.dtype)
    got = impl.vjp("shortest_dist", d, grad_out=ones)
    assert_bitwise(got, reference.shortest_dist_vjp(d, ones), impl, "shortest_dist_vjp", [d])


@pytest.mark.uses("shortest_dist", "shortest_dist_vjp")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy on inf - inf: expected
@given(cost_matrices_with_extremes(batch=True, non_finite=True))
@example(np.where(np.arange(20).reshape(4, 5) // 5 == 1, np.inf,
                  np.where(np.arange(20).reshape(4, 5) == 13, -np.inf, 0.5))[:, :, None])
def test_shortest_dist_gradient_bitwise_where_the_table_holds_nan(impl, d):
    # NaN cells, or +inf and -inf on one path (inf - inf), put NaN into the table of
    # formula 2: a comparison with NaN is false both ways, and the oracle's reverse pass
    # then sends that cell's gradient nowhere. Every implementation must do the same.
    ones = np.ones(d.shape[2:], d.dtype)
    got = impl.vjp("shortest_dist", d, grad_out=ones)
    assert_bitwise(got, reference.shortest_dist_vjp(d, ones), impl, "shortest_dist_vjp", [d])


@st.composite
def _matrices_and_any_grad_out(draw):
    """Cost matrices ``[m, n, k]`` and a ``grad_out`` of any value of their dtype whose
    shares stay normal: halving ``m + n`` times is then exact, so any order of the sums
    (or a fused multiply-add) gives the same bits. Smaller ones may round in their last
    bit (see the contract)."""
    d = draw(cost_matrices(batch=True))
    exact_below = np.finfo(d.dtype).tiny * 2.0 ** (d.shape[0] + d.shape[1])
    elements = hnp.from_dtype(d.dtype).filter(lambda v: not 0 < abs(v) < exact_below)
    grad_out = draw(hnp.arrays(d.dtype, d.shape[2:], elements=elements))
    return d, grad_out


@pytest.mark.uses("shortest_dist", "shortest_dist_vjp")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy on NaN and overflow: expected
@given(_matrices_and_any_grad_out())
@example((np.array([[.1, .9, .5], [.2, .1, .7], [.3, .3, .1]])[:, :, None], np.array([np.inf])))
def test_shortest_dist_gradient_bitwise_for_every_grad_out(impl, case):
    # The gradient is the path's indicator times grad_out, for any grad_out: +-inf and NaN
    # on the path, exactly 0 off it (not inf * 0 = NaN), huge values as the oracle scales
    # them.
    d, grad_out = case
    got = impl.vjp("shortest_dist", d, grad_out=grad_out)
    assert_bitwise(got, reference.shortest_dist_vjp(d, grad_out), impl, "shortest_dist_vjp",
                   [d, grad_out])


@pytest.mark.uses("shortest_dist", "shortest_dist_vjp")
@given(cost_matrices())
def test_shortest_dist_gradient_is_a_unit_flow(impl, d):
    grad = impl.vjp("shortest_dist", d, grad_out=np.ones((), d.dtype))
    m, n = d.shape
    # A path crosses each anti-diagonal once, so each sums to 1 and every entry lies in
    # [0, 1]. Halving is exact, but a cell adds the shares of its two successors with one
    # rounding (u of a share), so anti-diagonal k, and any entry, is off by at most
    # (m+n-2-k) u: deep ties in float32 leave 2^-30 bits.
    u = error_model.unit_roundoff(d.dtype)
    slack = (m + n - 1) * u
    assert np.all((grad >= 0) & (grad <= 1 + slack)), f"{impl.name}: entries outside [0, 1]:\n{grad}"
    for k in range(m + n - 1):
        total = float(np.sum(np.fliplr(grad).diagonal(n - 1 - k), dtype=np.float64))
        assert abs(total - 1) <= slack, f"{impl.name}: anti-diagonal {k} sums to {total!r}"
    # <G, D> is a convex combination of optimal path sums, all equal to S up to rounding.
    k = m + n - 1
    inner = float(np.sum(grad.astype(np.float64) * d))
    dist = float(impl("shortest_dist", d))
    assert abs(inner - dist) <= 2 * k * k * error_model.unit_roundoff(d.dtype) * max(dist, 1.0)


@pytest.mark.uses("shortest_dist", "shortest_dist_vjp")
def test_shortest_dist_gradient_half_split_on_a_tie(impl):
    # 2 x 2 of equal costs: both paths tie, each gets half; the corners are on both.
    grad = impl.vjp("shortest_dist", np.full((2, 2), 0.5), grad_out=np.ones(()))
    np.testing.assert_array_equal(grad, [[1.0, 0.5], [0.5, 1.0]],
                                  err_msg=f"{impl.name}: tie not split in half")


@pytest.mark.uses("batch_local_dist", "batch_local_dist_vjp")
@given(stripe_features(pairs=True, dtype=np.float64), st.integers(0, 2**32 - 1))
def test_batch_local_dist_gradient(impl, data, seed):
    x, y = data
    assume(naive.paths_clear_of_ties(x, y, 2 * error_model.batch_local_dist_tolerance(x, y, np.float64)))
    g = np.random.default_rng(seed).normal(size=x.shape[0])
    tol = error_model.local_grad_tolerance(x, y, g, np.float64)
    got = impl.vjp("batch_local_dist", x, y, grad_out=g)
    want = reference.batch_local_dist_vjp(x, y, g)
    for k, name in enumerate(("grad_x", "grad_y")):
        assert_within(got[k], want[k], tol, impl, f"batch_local_dist_vjp {name}", [x, y, g])


@pytest.mark.uses("local_dist", "local_dist_vjp")
@given(stripe_features(dtype=np.float64), st.integers(0, 2**32 - 1))
def test_local_dist_gradient(impl, data, seed):
    x, y = data
    xx, yy = np.repeat(x, len(y), axis=0), np.tile(y, (len(x), 1, 1))
    assume(naive.paths_clear_of_ties(xx, yy,
                                      2 * error_model.batch_local_dist_tolerance(xx, yy, np.float64)))
    g = np.random.default_rng(seed).normal(size=(len(x), len(y)))
    tol = error_model.local_grad_tolerance(xx, yy, g.ravel(), np.float64)
    got = impl.vjp("local_dist", x, y, grad_out=g)
    want = reference.local_dist_vjp(x, y, g)
    for k, name in enumerate(("grad_x", "grad_y")):
        assert_within(got[k], want[k], tol, impl, f"local_dist_vjp {name}", [x, y, g])


@pytest.mark.uses("normalize", "normalize_vjp")
@given(extreme_stripe_features(max_images=1), st.integers(0, 2**32 - 1))
def test_normalize_gradient_at_extreme_scales(impl, data, seed):
    # Vectors whose |x|^2 overflows (float32 from ~1e19, float64 from ~1e154), beside
    # ordinary ones; a vector holding inf gives NaN throughout, as in the oracle.
    x = data[0][0]
    g = np.random.default_rng(seed).normal(size=x.shape).astype(x.dtype)
    # Each entry is g/s - (x/s)(<x, g>/|x|/s) with s ~ |x|: terms up to (|g|_inf + |g|_2)/|x|,
    # carrying a d-term sum and a few roundings ((d + 8) u), plus 2u where the vector is
    # first divided by its largest entry; twice, for the two implementations.
    u = error_model.unit_roundoff(x.dtype)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    with np.errstate(invalid="ignore"):
        top = np.max(np.abs(x64), axis=-1, keepdims=True)
        unit = x64 / top
        norm = top * np.linalg.norm(unit, axis=-1, keepdims=True)  # no overflow
        unit /= np.linalg.norm(unit, axis=-1, keepdims=True)
    size = (np.abs(g64).max(axis=-1, keepdims=True) + np.linalg.norm(g64, axis=-1, keepdims=True))
    tol = np.where(np.isfinite(norm), 2 * (x.shape[-1] + 10) * u * size / norm, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        want = reference.normalize_vjp(x, g)
    got = impl.vjp("normalize", x, grad_out=g)
    assert_within(got, want, tol, impl, "normalize_vjp", [x, g])
    # Independently of the oracle, for finite vectors, in float64 without overflow:
    # (g - x^ <x^, g> |x| / s) / s with x^ = x / |x| and s = |x| + eps (1e-12, or the
    # module's own eps, which the gate measured).
    s = norm + reference.distance.NORM_EPS
    exact = (g64 - unit * np.sum(unit * g64, axis=-1, keepdims=True) * (norm / s)) / s
    finite = np.isfinite(norm)
    assert_within(np.where(finite, got, 0), np.where(finite, exact, 0), tol, impl,
                  "normalize_vjp (float64 formula)", [x, g])


@pytest.mark.uses("normalize", "normalize_vjp", "euclidean_dist", "euclidean_dist_vjp")
@given(stripe_features(pairs=True, dtype=np.float64, max_images=1), st.integers(0, 2**32 - 1))
def test_normalize_and_euclidean_gradients(impl, data, seed):
    x, y = data[0][0], data[1][0]
    rng = np.random.default_rng(seed)
    g = rng.normal(size=x.shape)
    # normalize's VJP is a handful of float64 operations per entry on O(|g|/|x|) terms.
    tol = 16 * U64 * np.abs(g).sum() / np.linalg.norm(x, axis=-1).min()
    assert_within(impl.vjp("normalize", x, grad_out=g), reference.normalize_vjp(x, g), tol,
                  impl, "normalize_vjp", [x, g])
    g2 = rng.normal(size=(len(x), len(y)))
    euclid = reference.euclidean_dist(x, y)
    # Each entry's gradient is sum_j g_ij (x_i - y_j) / e_ij; relative error of 1/e_ij is
    # euclid_bound / e (see reference.error_model), doubled for the two implementations.
    rel = 2 * error_model.euclid_bound(x, y, U64) / euclid
    tol = float(np.sum(np.abs(g2) * (rel + 8 * U64)))
    got = impl.vjp("euclidean_dist", x, y, grad_out=g2)
    want = reference.euclidean_dist_vjp(x, y, g2)
    for k in range(2):
        assert_within(got[k], want[k], tol, impl, "euclidean_dist_vjp", [x, y, g2])
