"""``tanh`` for the CPU kernels: vectorisable in float32, libm's ``tanh`` in float64.

Without Intel's SVML, LLVM cannot vectorise a call of libm's ``tanhf``, and at ~20 ns a
call formula 1 cost twice as much as the BLAS dot products behind it in ``local_dist``.
For float32 the function is evaluated in float64 from arithmetic alone, so it vectorises:
``expm1(2|t| / 64)`` by its Taylor series, six doublings ``e(2a) = e(a) (e(a) + 2)`` (no
cancellation, so the relative error stays near float64 rounding), then
``tanh(|t|) = e / (e + 2)``. The float64 result is far more accurate than float32 needs,
so the rounded result is, on all we tested, the correctly rounded ``tanhf``.

Compile the callers with ``error_model="numpy"``: with Python's error model every
division checks for zero, which stops vectorisation.
"""
import math

import numpy as np
from numba import types
from numba.extending import overload

#: tanh rounds to 1.0 in float32 from about 9.01 on; clamping keeps the doublings finite.
_SATURATE = 10.0
#: |t| is scaled by 2 / 2**_DOUBLINGS before the series: at most 0.3125 for |t| <= 10.
_DOUBLINGS = 6


def tanh(t):
    """``math.tanh``; compiled code gets the dtype-specific versions below."""
    return math.tanh(t)


def _tanh32(t):
    a = abs(np.float64(t))
    a = _SATURATE if a > _SATURATE else a  # a NaN is kept: the comparison is False
    r = a * (2.0 / 2**_DOUBLINGS)
    # expm1(r), Taylor terms to r**9 / 9!: truncation below 1e-10 relative for r <= 0.3125
    e = r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (
        1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (1 / 362880)))))))))
    for _ in range(_DOUBLINGS):
        e = e * (e + 2.0)
    return np.float32(math.copysign(e / (e + 2.0), t))


def _tanh_libm(t):
    return math.tanh(t)


@overload(tanh, jit_options={"error_model": "numpy"})
def _tanh_overload(t):
    if t == types.float32:
        return _tanh32
    return _tanh_libm
