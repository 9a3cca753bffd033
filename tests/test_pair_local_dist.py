"""``pair_local_dist(x [m, d], y [n, d])``: the local distance of one pair of images.

An optional extra of the contract, for the single-pair form that test-time code often
has; a module that provides it gets these checks (and the rows of ``test_bad_input``,
``test_pitfalls``, ``test_conventions``), one that does not is not judged on it.
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference
from reference import error_model

from .assertions import assert_within
from .strategies import extreme_stripe_features, stripe_features

pytestmark = pytest.mark.uses("pair_local_dist")


@pytest.mark.parametrize("features", [
    pytest.param(stripe_features, id="ordinary"),
    pytest.param(extreme_stripe_features, id="extreme",  # the oracle's IEEE overflow is the point
                 marks=pytest.mark.filterwarnings("ignore::RuntimeWarning")),
])
@given(st.data())
def test_pair_local_dist(impl, features, data):
    # Formula 1 on every stripe pair of the two images, formula 2 on the whole matrix, in
    # the input's dtype: within the error model of batch_local_dist for a batch of one.
    x, y = (a[0] for a in data.draw(features(max_stripes=20)))
    got = impl("pair_local_dist", x, y)
    assert got.shape == () and got.dtype == x.dtype, \
        f"{impl.name}: pair_local_dist gives {got.shape} {got.dtype} for {x.dtype} input"
    tol = error_model.batch_local_dist_tolerance(x[None], y[None], x.dtype)[0]
    assert_within(got, reference.pair_local_dist(x, y), tol, impl, "pair_local_dist", [x, y])


@pytest.mark.uses("pair_local_dist", "pair_local_dist_vjp")
@given(stripe_features(pairs=True, dtype=np.float64, max_images=1, max_stripes=12))
def test_pair_local_dist_gradient(impl, data):
    x, y = data[0][0], data[1][0]
    stripes = reference.stripe_dist(reference.euclidean_dist(x, y))
    tol_value = error_model.batch_local_dist_tolerance(x[None], y[None], np.float64)[0]
    assume(error_model.path_margin(stripes) > 2 * tol_value)  # one optimal path, in both
    tol = error_model.local_grad_tolerance(x[None], y[None], np.ones(1), np.float64)
    got = impl.vjp("pair_local_dist", x, y, grad_out=np.ones(()))
    want = reference.pair_local_dist_vjp(x, y, 1.0)
    for k, name in enumerate(("grad_x", "grad_y")):
        assert_within(got[k], want[k], tol, impl, f"pair_local_dist_vjp {name}", [x, y])
