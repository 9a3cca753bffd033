"""The error model stays meaningful at extreme scales: finite, tight, scale-invariant.

Tolerances from ``reference.error_model`` would let anything pass if they became inf or
NaN (a NaN tolerance makes every comparison false), or grew with the features' scale
where the results do not (formula 1 saturates at 1).
"""
import numpy as np
import pytest

from reference import error_model


def _pair(rng, scale, dtype, m=4, n=3, d=6):
    x = (rng.normal(size=(1, m, d)) * scale).astype(dtype)
    y = (rng.normal(size=(1, n, d)) * scale).astype(dtype)
    return x, y


@pytest.mark.parametrize("dtype, scales", [(np.float32, [1.0, 1e19, 1e30, 1e37]),
                                           (np.float64, [1.0, 1e154, 1e200, 1e300])])
def test_local_dist_tolerance_is_finite_and_tight(dtype, scales):
    rng = np.random.default_rng(0)
    u = error_model.unit_roundoff(dtype)
    for scale in scales:
        x, y = _pair(rng, scale, dtype)
        tol = error_model.local_dist_tolerance(x, y, dtype)
        k = x.shape[1] + y.shape[1] - 1
        assert np.all(np.isfinite(tol)), f"scale {scale}: tolerance {tol}"
        if scale > 1:  # every cell rounds to 1 on both sides: only roundings remain
            assert np.all(tol <= 2 * (k * 4 * u + k * k * u)), f"scale {scale}: tolerance {tol}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_euclid_bound_scales_with_the_features(dtype):
    # A power of two scales every distance and every rounding error exactly (no overflow
    # here), so the bound scales with it (the 1e-12 clamp aside: distances are far above).
    rng = np.random.default_rng(1)
    x, y = _pair(rng, 1.0, np.float64)
    u = error_model.unit_roundoff(dtype)
    base = error_model.euclid_bound(x, y, u)
    c = 2.0 ** 40
    np.testing.assert_allclose(error_model.euclid_bound(x * c, y * c, u), base * c, rtol=1e-12)


def test_euclid_bound_at_infinities_and_at_the_overflow_threshold():
    u = error_model.unit_roundoff(np.float32)
    top = float(np.finfo(np.float32).max)
    x = np.array([[[np.inf, 0.0], [1.0, 2.0], [np.sqrt(top), 0.0], [1e30, 0.0]]])
    y = np.array([[[np.inf, 0.0], [0.0, 0.0]]])
    bound = error_model.euclid_bound(x, y, u)[0]
    # a pair holding inf has an exact result (inf, or NaN from inf - inf): bound 0
    np.testing.assert_array_equal(bound[0], [0.0, 0.0])
    np.testing.assert_array_equal(bound[:, 0], [0.0, 0.0, 0.0, 0.0])
    # |x - y|^2 = the largest float32 (up to rounding): either side may overflow
    assert bound[2, 1] == np.inf
    # far beyond it both overflow and must agree; far below it, the usual bound
    assert np.isfinite(bound[3, 1]) and np.isfinite(bound[1, 1]) and bound[1, 1] < 1e-5
    # formula 1 saturates: its bound stays a few roundings wherever the distance is huge
    stripes = error_model.stripe_bound(x, y, u)[0]
    assert np.all(stripes[2:, 1] <= 4 * u) and np.all(np.isfinite(stripes))
