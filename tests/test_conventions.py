"""The contract's two conventions, each function on its own (``reference.gate.conventions``).

Squared distances are clamped at ``1e-12`` (identical vectors are ``1e-6`` apart) and
``normalize`` divides by ``||x|| + 1e-12``. A module that follows other conventions (a
clamp at 0, float32's eps) differs from the oracle by ``1e-6`` or about ``1e-7``
relative: a convention, not a defect. It is reported here, once per function; under
``--impl`` every other test compares the module with the oracle under the module's own
conventions, so the difference is not counted again as a wrong value.
"""
import math

import numpy as np
import pytest

from reference.gate import conventions


def _each(functions):
    return pytest.mark.parametrize(
        "func", [pytest.param(f, marks=pytest.mark.uses(f)) for f in functions])


@_each(conventions.CLAMP_FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identical_vectors_are_1e_6_apart(impl, func, dtype):
    clamp = conventions.measure_clamp(impl, func, dtype)
    assert clamp == conventions.CONTRACT_CLAMP, (
        f"{impl.name}.{func}: identical {np.dtype(dtype)} vectors are {math.sqrt(clamp)!r} "
        f"apart, not 1e-06: squared distances clamped at {conventions.named(clamp)}, not 1e-12")


@_each(conventions.EPS_FUNCTIONS)
def test_normalize_adds_1e_12_to_the_norm(impl, func):
    eps = conventions.measure_eps(impl, func)
    assert eps == conventions.CONTRACT_EPS, (
        f"{impl.name}.{func}: normalises by ||x|| + {conventions.named(eps)}, not ||x|| + 1e-12")
