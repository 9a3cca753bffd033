"""The two conventions of the contract, measured on the module under test.

The contract clamps squared distances at ``1e-12`` (identical vectors are ``1e-6``
apart, with gradient zero there) and normalises by ``||x|| + 1e-12``. Widely used code
clamps at 0 instead, or adds float32's eps (``1.19e-7``) to the norm. Such a module
differs from the oracle by ``1e-6`` at identical vectors and by about ``1e-7`` relative
after normalising: not a defect, but a convention. The gate measures each function's
conventions on tiny exact inputs, reports a difference once (``tests/test_conventions.py``)
and runs every other test against the oracle under the module's own conventions
(``reference.distance.conventions``).
"""
import math
from dataclasses import dataclass

import numpy as np

from .. import distance
from ..loss import TripletLoss

CONTRACT_CLAMP = distance.SQ_DIST_CLAMP
CONTRACT_EPS = distance.NORM_EPS
#: Named values, to say "float32's eps" rather than 1.1920928955078125e-07.
_NAMED = {CONTRACT_EPS: "1e-12", 0.0: "0", float(np.finfo(np.float32).eps): "float32's eps",
          float(np.finfo(np.float64).eps): "float64's eps"}

# Functions through which each convention shows, in the order they are asked.
CLAMP_FUNCTIONS = ("euclidean_dist", "batch_euclidean_dist", "pair_local_dist",
                   "batch_local_dist", "local_dist", "global_loss")
EPS_FUNCTIONS = ("normalize", "global_loss", "local_loss")

_SAME = np.array([[0.0, 0.0], [1.0, 2.0]])  # |x - x|^2 is exactly 0, by any formula
_NORM = 1e-3  # normalize([1e-3, 0]) = 1e-3 / (1e-3 + eps): eps to about 1e-19


def named(value):
    """``value`` with its name when it has one: ``"1.19e-07 (float32's eps)"``."""
    name = _NAMED.get(value)
    return f"{value:.3g}" + (f" ({name})" if name and name != f"{value:.3g}" else "")


def _snap(value, contract, relative=1e-6):
    """``value``, or the contract's (or a named) value when within rounding of it."""
    for known in (contract, *_NAMED):
        if abs(value - known) <= relative * known + 1e-19:
            return known
    return value


def _atanh2(v):
    """The Euclidean distance behind a stripe distance ``v = tanh(e / 2)``."""
    return 2 * math.atanh(v)


def measure_clamp(impl, func, dtype=np.float64):
    """The squared-distance clamp of ``func``: ``e^2`` for the distance ``e`` it gives
    identical vectors of ``dtype``. Raises whatever the module raises."""
    x = _SAME.astype(dtype)
    if func == "euclidean_dist":
        e = float(impl(func, x, x)[1, 1])
    elif func == "batch_euclidean_dist":
        e = float(impl(func, x[None], x[None])[0, 1, 1])
    elif func == "pair_local_dist":
        e = _atanh2(float(impl(func, x[1:], x[1:])))
    elif func == "batch_local_dist":
        e = _atanh2(float(impl(func, x[None, 1:], x[None, 1:])[0]))
    elif func == "local_dist":
        e = _atanh2(float(impl(func, x[None, 1:], x[None, 1:])[0, 0]))
    elif func == "global_loss":
        out = impl(func, TripletLoss(0.3), x, np.array([0, 1]), normalize_feature=False)
        e = float(out[5][1, 1])
    else:
        raise ValueError(f"measure_clamp: no way to measure the clamp through {func}")
    # float32 carries 1e-6 to 6e-14, and 2 atanh(v) adds its own rounding: snap within it
    return _snap(e * e, CONTRACT_CLAMP, 1e-6 if dtype == np.float64 else 1e-5)


def measure_eps(impl, func):
    """What ``func`` adds to a norm before dividing by it. Raises whatever the module raises."""
    if func == "normalize":
        r = float(impl(func, np.array([[_NORM, 0.0]]))[0, 0])
    elif func == "global_loss":  # two orthogonal vectors of length 1e-3: sqrt(2) r apart
        feat = np.array([[_NORM, 0.0], [0.0, _NORM]])
        out = impl(func, TripletLoss(0.3), feat, np.array([0, 1]), normalize_feature=True)
        r = float(out[5][0, 1]) / math.sqrt(2)
    elif func == "local_loss":  # the same, as one stripe of two images, mined
        feat = np.array([[[_NORM, 0.0]], [[0.0, _NORM]]])
        out = impl(func, TripletLoss(0.3), feat, labels=np.array([0, 1]), normalize_feature=True)
        r = _atanh2(float(out[3][0, 1])) / math.sqrt(2)
    else:
        raise ValueError(f"measure_eps: no way to measure the eps through {func}")
    return _snap(_NORM * (1 / r - 1), CONTRACT_EPS)


@dataclass(frozen=True)
class Conventions:
    """A module's clamp of squared distances and eps of normalize (the contract's by default)."""
    sq_dist_clamp: float = CONTRACT_CLAMP
    norm_eps: float = CONTRACT_EPS

    @property
    def is_contract(self):
        return self.sq_dist_clamp == CONTRACT_CLAMP and self.norm_eps == CONTRACT_EPS

    def oracle(self):
        """A context in which the oracle follows these conventions."""
        return distance.conventions(norm_eps=self.norm_eps, sq_dist_clamp=self.sq_dist_clamp)

    def describe(self):
        """Plain lines, one per convention that differs from the contract."""
        lines = []
        if self.sq_dist_clamp != CONTRACT_CLAMP:
            lines.append(f"squared distances clamped at {named(self.sq_dist_clamp)}, not 1e-12: "
                         f"identical vectors are {math.sqrt(self.sq_dist_clamp):.3g} apart, not 1e-06")
        if self.norm_eps != CONTRACT_EPS:
            lines.append(f"normalize divides by ||x|| + {named(self.norm_eps)}, not ||x|| + 1e-12")
        return lines


def _first(impl, functions, measure, default):
    for func in functions:
        if impl.provides(func):
            try:
                value = measure(impl, func)
            except Exception:  # noqa: BLE001 - a crash here is judged by the tests, not here
                continue
            if math.isfinite(value):
                return value
    return default


def of(impl, functions=None):
    """The conventions ``impl`` follows, measured through the first of ``functions`` (a
    test's functions; by default any) that shows them; the contract's where none does."""
    clamp = [f for f in CLAMP_FUNCTIONS if functions is None or f in functions] or CLAMP_FUNCTIONS
    eps = [f for f in EPS_FUNCTIONS if functions is None or f in functions] or EPS_FUNCTIONS
    return Conventions(_first(impl, clamp, measure_clamp, CONTRACT_CLAMP),
                       _first(impl, eps, measure_eps, CONTRACT_EPS))
