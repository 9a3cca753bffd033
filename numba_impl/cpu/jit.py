"""How the CPU compiles: the ``@njit`` flavours, the bodies written once for both targets
(``_dp``, ``_scalar``) compiled for the CPU, and constants of the data's dtype.

Every kernel takes arrays that ``_checks`` has already validated, and keeps
their dtype: constants such as 0.5 or the 1e-12 clamp are passed in as scalars of the
data's dtype, because a Python float constant would turn float32 arithmetic into
float64. No fast-math anywhere: formula 2 must match the oracle bit for bit.
``error_model="numpy"`` (IEEE division, no zero check) lets LLVM vectorise loops that
divide; no kernel here divides by zero. ``nogil`` lets ``local_dist`` overlap a kernel
with BLAS. Parallel kernels may be called from several Python threads at once: under a
threading layer that is not thread-safe (``workqueue``) they take turns (``threads``).
"""
import math

import numpy as np
from numba import njit

from .. import _dp, _scalar
from .._consts import NORM_EPS, SQ_DIST_CLAMP
from . import threads as _threads
from .tanh import tanh

_jit = njit(cache=True, nogil=True, error_model="numpy")
_parallel = njit(cache=True, parallel=True, nogil=True, error_model="numpy")


def _pjit(func):
    """A parallel kernel, serialised across Python threads where Numba's threading layer
    is not thread-safe (``_threads``)."""
    return _threads.serialised_when_unsafe(_parallel(func))


dp_forward = _jit(_dp.dp_forward)
dp_backward = _jit(_dp.dp_backward)
_clamped = _jit(_scalar.clamped)
_stripe_coef = _jit(_scalar.stripe_coef)
_softplus = _jit(_scalar.softplus)
_mine_anchor = _jit(_scalar.mine_anchor)
_scaled_norm = _jit(_scalar.scaled_norm)


@_jit
def _stripe(sq, half, clamp):
    """``_scalar.stripe`` (formula 1 on a squared distance) with the vectorisable ``tanh``."""
    return tanh(math.sqrt(_clamped(sq, clamp)) * half)


def _make_consts(dtype):
    t = np.dtype(dtype).type
    return t(0.5), t(SQ_DIST_CLAMP), t(NORM_EPS)


#: Built once: converting them on every call cost ~1 us a call in a training step.
_CONSTS = {np.dtype(t): _make_consts(t) for t in (np.float32, np.float64)}


def _consts(dtype):
    """0.5 and the clamps in the data's dtype (see the module docstring)."""
    found = _CONSTS.get(dtype)
    return found if found is not None else _make_consts(dtype)


@_jit
def _sq_dist(u, v):
    """Squared distance from explicit differences (no cancellation, like the oracle)."""
    diff = u[0] - v[0]
    total = diff * diff
    for f in range(1, u.shape[0]):
        diff = u[f] - v[f]
        total += diff * diff
    return total


@_jit
def _coef(sq, t, flow, half, clamp):
    """``_scalar.stripe_coef`` given ``t``, the stripe distance already computed."""
    if not (sq >= clamp) or flow == 0:
        return clamp - clamp
    return flow * ((half + half - t * t) * half) / math.sqrt(sq)
