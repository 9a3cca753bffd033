"""Scalar arguments that are no array, checked the same way in every package.

A margin or a weight is a real number the user types: Python's, NumPy's or a
``Fraction``. One beyond the float range (``10**400``) must get a message that names the
argument, not an ``OverflowError``; a bool is a flag passed by mistake.
"""
import math
import numbers


def finite_float(func, name, value, expected="a finite real number"):
    """``value`` as a finite ``float``; a ``TypeError`` (not a real number, or a bool) or a
    ``ValueError`` (infinite, NaN, beyond the float range) that names ``name`` otherwise.
    ``expected`` says what ``name`` must be, in both messages."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{func}: {name} must be {expected}; got {type(value).__name__}")
    try:
        as_float = float(value)
    except OverflowError:  # an int or a Fraction beyond the float range
        raise ValueError(f"{func}: {name} must be {expected}; got a "
                         f"{type(value).__name__} beyond the float range") from None
    if not math.isfinite(as_float):
        raise ValueError(f"{func}: {name} must be {expected}; got {value!r}")
    return as_float


def is_real_number(value):
    """A Python or NumPy real number; not a bool (a flag passed by mistake: NumPy's bool
    is no ``numbers.Real``), not a string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def number_as(value, dtype):
    """A real number as a 0-d NumPy array of ``dtype``; one beyond the float range (a Python
    int or Fraction) rounds to ``±inf``, as IEEE rounding of a large float does."""
    import numpy as np  # only the NumPy packages call this

    try:
        return np.asarray(value, dtype=dtype)
    except OverflowError:
        return np.asarray(math.inf if value > 0 else -math.inf, dtype=dtype)
