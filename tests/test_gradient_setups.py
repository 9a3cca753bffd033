"""Gradients in the setups that training meets beyond the property tests' usual draw.

- Only one input requires a gradient (a frozen gallery, a detached target): the other
  input's gradient must still be right, not lost or swapped (torch modules; a NumPy
  module's VJPs always return both).
- Tied paths between two distinct images (repeated stripes): the gradient splits in half
  at each tie, as ``torch.minimum`` does (the contract), on features, not only on cost
  matrices.
- Stripes that coincide: the clamp makes the distance's gradient zero there, not NaN.
- Losses far from the margin: ``ap - an`` past 709 under the soft margin (``e^z``
  overflows float64 there), margins of ``+-1e6``; the backward pass stays finite and
  right (softplus' slope, the hinge's 0 or 1).
"""
import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

import reference
from reference import error_model

from .assertions import assert_within

U64 = error_model.unit_roundoff(np.float64)
# (function, x shape, y shape, output shape from (len(x), len(y)))
PAIR_FUNCTIONS = [
    ("euclidean_dist", (4, 3), (5, 3)),
    ("batch_euclidean_dist", (3, 4, 3), (3, 5, 3)),
    ("local_dist", (3, 4, 3), (2, 5, 3)),
    ("batch_local_dist", (3, 4, 3), (3, 5, 3)),
    ("pair_local_dist", (4, 3), (5, 3)),
]


def _each_pair_function():
    return pytest.mark.parametrize("func, x_shape, y_shape", [
        pytest.param(f, xs, ys, marks=pytest.mark.uses(f, f"{f}_vjp"), id=f)
        for f, xs, ys in PAIR_FUNCTIONS])


def _oracle_gradients(func, x, y, grad_out):
    return getattr(reference, f"{func}_vjp")(x, y, grad_out)


def _tolerance(func, x, y, grad_out):
    """The error model of the feature gradient of ``func``: the local distances' for the
    local functions, the Euclidean distances' (as in test_gradients) for the others."""
    if "local" in func:
        xx, yy = ((x[None], y[None]) if func == "pair_local_dist" else
                  (np.repeat(x, len(y), axis=0), np.tile(y, (len(x), 1, 1)))
                  if func == "local_dist" else (x, y))
        return error_model.local_grad_tolerance(xx, yy, np.ravel(grad_out), np.float64)
    rel = 2 * error_model.euclid_bound(x, y, U64) / reference.distance._euclidean(x, y)
    return float(np.sum(np.abs(grad_out) * (rel + 8 * U64)))


def _far_from_ties(func, x, y):
    if "local" not in func:
        return True
    xx, yy = ((x[None], y[None]) if func == "pair_local_dist" else
              (np.repeat(x, len(y), axis=0), np.tile(y, (len(x), 1, 1)))
              if func == "local_dist" else (x, y))
    stripes = reference.stripe_dist(reference.batch_euclidean_dist(xx, yy))
    tol = error_model.batch_local_dist_tolerance(xx, yy, np.float64)
    return all(error_model.path_margin(s) > 2 * t for s, t in zip(stripes, tol))


# --- only one input requires a gradient ----------------------------------------------------
@_each_pair_function()
@pytest.mark.parametrize("only", ["x", "y"])
def test_only_one_input_requires_grad(impl, func, x_shape, y_shape, only):
    if impl.array != "torch":
        pytest.skip(f"{impl.name} takes NumPy arrays: its VJPs always give both gradients")
    rng = np.random.default_rng(4)
    x, y = 1.5 * rng.standard_normal(x_shape), 1.5 * rng.standard_normal(y_shape)
    assert _far_from_ties(func, x, y), "test data has near-tied paths; reseed"
    grad_out = rng.uniform(0.5, 1.5, size=np.shape(getattr(reference, func)(x, y)))
    tx = impl.to_native(x, requires_grad=only == "x")
    ty = impl.to_native(y, requires_grad=only == "y")
    out = impl.function(func)(tx, ty)
    out.backward(impl.to_native(grad_out))
    want = _oracle_gradients(func, x, y, grad_out)[0 if only == "x" else 1]
    leaf = tx if only == "x" else ty
    assert leaf.grad is not None, f"{impl.name}.{func}: no gradient for {only} when only it requires one"
    assert_within(impl.to_numpy(leaf.grad), want, _tolerance(func, x, y, grad_out), impl,
                  f"{func} gradient of {only} alone", [x, y, grad_out])


# --- tied paths between distinct images -----------------------------------------------------
@st.composite
def images_with_repeated_stripes(draw, dims=(1,), repeats=(2, 9), other=True):
    """Two distinct images ``x [m, d]``, ``y [n, d]`` whose first stripes repeat one vector
    each (``a`` in x, ``b`` in y), with ``other`` sometimes followed by one other stripe; returns
    ``(x, y, p, q)`` with ``p``, ``q`` the lengths of the repeated runs.

    Every cell of the repeated block is the distance of the same two vectors, so the
    oracle's cells there are equal and the paths through the block tie exactly. With one
    feature a dot product is one rounded product in any arithmetic, so every module's cells
    there are equal too; with more, a module that takes the dot products from a matrix
    product may round them differently by position (4 features in 3 x 5 stripes, or 9 of
    16 features, do it), its cells an ulp apart: it may then route the flow along one of
    the tied paths (see the contract). (Ties of sums of different numbers: not made here.)
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dim = draw(st.sampled_from(dims))
    a, b, c, e = rng.standard_normal((4, dim)) / np.sqrt(dim)  # distances near 1, not saturated
    p, q = draw(st.integers(*repeats)), draw(st.integers(*repeats))
    x, y = np.repeat(a[None], p, axis=0), np.repeat(b[None], q, axis=0)
    if other and draw(st.booleans()):
        x = np.concatenate([x, c[None]])
    if other and draw(st.booleans()):
        y = np.concatenate([y, e[None]])
    return x, y, p, q


def _tie_gradients(impl, x, y):
    """``[(func, (grad_x, grad_y))]`` of the module's three local distances for one pair."""
    return [("pair_local_dist", impl.vjp("pair_local_dist", x, y, grad_out=np.ones(()))),
            ("batch_local_dist", [g[0] for g in impl.vjp(
                "batch_local_dist", x[None], y[None], grad_out=np.ones(1))]),
            ("local_dist", [g[0] for g in impl.vjp(
                "local_dist", x[None], y[None], grad_out=np.ones((1, 1)))])]


def _exact_tie(x, y):
    stripes = reference.stripe_dist(reference.euclidean_dist(x, y))
    return error_model.path_margin(stripes) == 0  # the optimal path ties with another


@pytest.mark.uses("pair_local_dist", "pair_local_dist_vjp", "batch_local_dist",
                  "batch_local_dist_vjp", "local_dist", "local_dist_vjp")
@given(images_with_repeated_stripes())
def test_tied_paths_between_distinct_images(impl, images):
    # One feature per stripe: the cells of the repeated block are equal in any arithmetic,
    # so the gradient splits at each tie as the oracle's.
    x, y, _, _ = images
    assume(_exact_tie(x, y))
    want = reference.pair_local_dist_vjp(x, y, 1.0)
    tol = error_model.local_grad_tolerance(x[None], y[None], np.ones(1), np.float64)
    for func, got in _tie_gradients(impl, x, y):
        for k, name in enumerate(("grad_x", "grad_y")):
            assert_within(got[k], want[k], tol, impl, f"{func} {name} at a tie (half each way)",
                          [x, y])


_U, _W = np.random.default_rng(3).standard_normal((2, 1, 16)) / 4


def _by_run(grad, run):
    """A gradient ``[stripes, d]`` with the repeated run's rows summed into one:
    ``[1 + stripes - run, d]``. Every path through the block has the same number of cells
    in it, all of the same two vectors, so this does not depend on how a tie is routed."""
    return np.concatenate([grad[:run].sum(axis=0, keepdims=True), grad[run:]])


@pytest.mark.uses("pair_local_dist", "pair_local_dist_vjp", "batch_local_dist",
                  "batch_local_dist_vjp", "local_dist", "local_dist_vjp")
@given(images_with_repeated_stripes(dims=(2, 4, 16, 128), other=False))
@example((np.repeat(_U, 9, axis=0), np.repeat(_W, 9, axis=0), 9, 9))  # a BLAS tie broken
def test_repeated_stripes_of_several_features(impl, images):
    # Where a matrix product may break the tie by an ulp, the flow may take one tied path:
    # the repeated run's total gradient is the same whichever it takes. (Only repeated
    # stripes: every path ties, in exact arithmetic and in the oracle's cells.)
    x, y, p, q = images
    want = reference.pair_local_dist_vjp(x, y, 1.0)
    # each row within tol, so the run's sum of p (q) rows within p (q) times it
    tol = error_model.local_grad_tolerance(x[None], y[None], np.ones(1), np.float64)
    for func, got in _tie_gradients(impl, x, y):
        for k, (name, run) in enumerate((("grad_x", p), ("grad_y", q))):
            assert_within(_by_run(got[k], run), _by_run(want[k], run), run * tol, impl,
                          f"{func} {name} at a tie (rows of the repeated run summed)", [x, y])


# --- coinciding stripes ------------------------------------------------------------------------
@_each_pair_function()
def test_gradient_where_stripes_coincide(impl, func, x_shape, y_shape):
    # Stripe 0 of every y equals stripe 0 of every x: the distance there is the clamp's
    # 1e-6 and its gradient 0 (the oracle's, under the module's own clamp). sqrt's slope
    # at 0 is infinite: without the clamp, or with it but the wrong branch, NaN.
    rng = np.random.default_rng(5)
    x, y = 1.5 * rng.standard_normal(x_shape), 1.5 * rng.standard_normal(y_shape)
    y[..., 0, :] = x[(0,) * (x.ndim - 1)] if func in ("euclidean_dist", "pair_local_dist") \
        else x[0, 0]
    x[..., 0, :] = y[(0,) * (y.ndim - 1)]
    assert _far_from_ties(func, x, y), "test data has near-tied paths; reseed"
    grad_out = rng.uniform(0.5, 1.5, size=np.shape(getattr(reference, func)(x, y)))
    got = impl.vjp(func, x, y, grad_out=grad_out)
    want = _oracle_gradients(func, x, y, grad_out)
    for k, name in enumerate(("grad_x", "grad_y")):
        assert_within(got[k], want[k], _tolerance(func, x, y, grad_out), impl,
                      f"{func} {name} where stripes coincide", [x, y, grad_out])


# --- losses far from the margin ----------------------------------------------------------------
def _global_loss_tolerance(feat, normalize):
    """``global_loss``'s gradient error model: ``error_model.global_loss_grad_tolerance`` for
    normalised features; for raw ones its pieces without normalize's Jacobian: each of 2N
    selected distances has weight at most 1/N, a unit vector ``(x - y) / e`` moved by
    ``2 de / e``, and the slope (1/4-Lipschitz) moved by ``de / 2``; doubled."""
    if normalize:
        return error_model.global_loss_grad_tolerance(feat, np.float64)
    a, k = np.nonzero(~np.eye(len(feat), dtype=bool))
    bound = error_model.euclid_bound(feat[a][:, None], feat[k][:, None], U64)[:, 0, 0]
    euclid = reference.distance._euclidean(feat[a][:, None], feat[k][:, None])[:, 0, 0]
    return 2 * (2 * np.max(2 * bound / euclid + 4 * U64) + np.max(bound) / 2)


@pytest.mark.uses("global_loss", "global_loss_vjp")
@pytest.mark.parametrize("margin, normalize, scale", [
    (None, False, 1000.0), (0.3, False, 1000.0), (1e6, True, 1.0), (-1e6, True, 1.0)],
    ids=["soft-margin-ap-an-past-709", "margin-0.3-raw", "margin-1e6", "margin--1e6"])
@pytest.mark.parametrize("seed", [0, 2, 3])
def test_global_loss_gradient_far_from_the_margin(impl, margin, normalize, scale, seed):
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(3), 2)
    feat = scale * rng.standard_normal((6, 4))
    loss = reference.TripletLoss(margin)
    _, _, _, ap, an, dist = reference.global_loss(loss, feat, ids, normalize)
    tol = _global_loss_tolerance(feat, normalize)
    assert error_model.mining_margin(dist, ids) > 1e-6 * scale, "near-tied mining; reseed"
    if margin is None:  # e^z overflows float64 past 709
        assert np.max(ap - an) > 710 and np.min(ap - an) < 0, "the soft margin must see both sides"
    else:
        assert np.min(np.abs(ap - an + margin)) > 1e-6 * scale, "at the hinge's kink; reseed"
    got = impl.vjp("global_loss", loss, feat, ids, normalize_feature=normalize)
    want = reference.global_loss_vjp(loss, feat, ids, normalize_feature=normalize)
    assert_within(got, want, tol, impl, f"global_loss_vjp (margin {margin})", [feat, ids])


@pytest.mark.uses("local_loss", "local_loss_vjp")
@pytest.mark.parametrize("margin", [1e6, -1e6])
@pytest.mark.parametrize("mined", [False, True], ids=["given", "mined"])
def test_local_loss_gradient_far_from_the_margin(impl, margin, mined):
    rng = np.random.default_rng(8)
    ids = np.repeat(np.arange(3), 2)
    local_feat = rng.standard_normal((6, 4, 3))
    loss = reference.TripletLoss(margin)
    kwargs = dict(labels=ids) if mined else dict(p_inds=np.array([1, 0, 3, 2, 5, 4]),
                                                 n_inds=np.array([2, 4, 0, 5, 1, 3]))
    got = impl.vjp("local_loss", loss, local_feat, **kwargs)
    want = reference.local_loss_vjp(loss, local_feat, **kwargs)
    assert_within(got, want, error_model.local_loss_grad_tolerance(local_feat, np.float64), impl,
                  f"local_loss_vjp (margin {margin})", [local_feat, ids])


# --- a NaN value in the loss -------------------------------------------------------------------
def _images_of(func, index):
    """The indices into ``x`` and ``y`` of the features an output entry is computed from."""
    if func in ("euclidean_dist", "local_dist"):
        return index[:1], index[1:]
    if func == "batch_euclidean_dist":
        return index[:2], (index[0], index[2])
    return index, index  # batch_local_dist: pair k; pair_local_dist: the one pair, ()


@_each_pair_function()
@pytest.mark.parametrize("where", ["x first stripe", "x last stripe", "y first stripe",
                                   "one stripe each"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy on NaN: expected
def test_nan_value_never_has_an_all_finite_gradient(impl, func, x_shape, y_shape, where):
    # A pair whose value is NaN and whose grad_out is not 0 is in the loss: its images'
    # gradients must hold a NaN, as the loss does. An all-finite gradient there would let
    # a NaN step through unseen (AMP's GradScaler and NaN guards look at gradients).
    rng = np.random.default_rng(6)
    x_shape = (*x_shape[:-2], 1, x_shape[-1]) if where == "one stripe each" else x_shape
    x, y = rng.standard_normal(x_shape), rng.standard_normal(y_shape)
    target, stripe = (y, 0) if where.startswith("y") else (x, -1 if "last" in where else 0)
    target[(0,) * (target.ndim - 2) + (stripe, 1)] = np.nan
    if where == "one stripe each":  # the only stripe of x holds a NaN, and a stripe of y
        y[(0,) * (y.ndim - 2) + (1, 0)] = np.nan
    grad_out = rng.uniform(0.5, 1.5, size=np.shape(getattr(reference, func)(x, y)))
    value = reference.__dict__[func](x, y)
    grad_x, grad_y = impl.vjp(func, x, y, grad_out=grad_out)
    nan_entries = [tuple(int(i) for i in index) for index in np.argwhere(np.isnan(value))]
    assert nan_entries, "test data has no NaN value"
    for index in nan_entries:
        in_x, in_y = _images_of(func, index)
        assert np.isnan(grad_x[in_x]).any() and np.isnan(grad_y[in_y]).any(), (
            f"{impl.name}.{func}: the value at {index} is NaN but the gradients of its "
            f"images x{list(in_x)} and y{list(in_y)} are finite (planted: {where})")
