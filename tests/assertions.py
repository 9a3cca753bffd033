"""Assertions whose failure messages say what broke and how to rerun it.

Where formula 2 or a local distance's gradient disagrees with the oracle, the message also
says where (``reference.gate.diagnose``): for ``shortest_dist`` both tables of formula 2
and the first cell where they part, for ``shortest_dist_vjp`` the cells where the flows
differ, for a gradient named ``"batch_local_dist... grad_x"`` (or ``pair_local_dist``,
``grad_y``) of inputs ``[x, y, ...]`` the stripes that differ and the path cells through them.
"""
import re

import numpy as np
import pytest
from hypothesis import currently_in_test_context, reject

import reference
from reference.gate import diagnose

_FEATURE_GRADIENT = re.compile(r"^(batch_local_dist|pair_local_dist)\b.*\b(grad_[xy])\b")


def _context(impl, func, inputs):
    shapes = ", ".join(f"{np.shape(a)} {getattr(a, 'dtype', type(a).__name__)}" for a in inputs)
    return f"{impl.name}.{func}({shapes})"


def _inputs_repr(inputs):
    with np.printoptions(precision=17, threshold=400, floatmode="unique"):
        return "\n".join(f"  input {k}: {np.array2string(np.asarray(a), separator=', ')}"
                         for k, a in enumerate(inputs) if isinstance(a, np.ndarray))


def assert_bitwise(got, want, impl, func, inputs):
    """Exact equality, NaN equal to NaN, same dtype and shape.

    The sign of a zero is not compared: where a -0 and a +0 tie in formula 2, the oracle's
    ``np.minimum`` keeps the second, the implementations keep the first (see the contract).
    """
    __tracebackhide__ = True
    got, want = np.asarray(got), np.asarray(want)
    where = f"{_context(impl, func, inputs)}"
    if got.dtype != want.dtype:
        raise AssertionError(f"{where}: dtype {got.dtype}, but the oracle gives {want.dtype}")
    if got.shape != want.shape:
        raise AssertionError(f"{where}: shape {got.shape}, but the oracle gives {want.shape}")
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    if not np.all(same):
        k = tuple(int(i) for i in np.unravel_index(np.argmin(same), same.shape))
        raise AssertionError(
            f"{where}: not bitwise equal to the oracle; {np.size(same) - np.count_nonzero(same)} "
            f"entries differ, first at {k}: got {got[k].item()!r}, oracle {want[k].item()!r}\n"
            f"{_inputs_repr(inputs)}{_formula2_diagnosis(impl, func, got, want, inputs)}"
        )


def assert_within(got, want, tol, impl, func, inputs, model="see reference.error_model"):
    """``|got - want| <= tol`` elementwise (``tol`` broadcast), NaN only where the oracle has NaN."""
    __tracebackhide__ = True
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    where = _context(impl, func, inputs)
    if got.shape != want.shape:
        raise AssertionError(f"{where}: shape {got.shape}, but the oracle gives {want.shape}")
    nan_mismatch = np.isnan(got) != np.isnan(want)
    if np.any(nan_mismatch):
        raise AssertionError(f"{where}: NaN where the oracle has none (or the reverse) at "
                             f"{np.argwhere(nan_mismatch)[:5].tolist()}\n{_inputs_repr(inputs)}")
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf: NaN, never > tol
        err = np.where(np.isnan(want), 0.0, np.abs(got - want))
        excess = err - np.broadcast_to(tol, err.shape)
    if np.any(excess > 0):
        worst = np.where(np.isnan(excess), -np.inf, excess)
        k = tuple(int(i) for i in np.unravel_index(np.argmax(worst), err.shape))
        raise AssertionError(
            f"{where}: differs from the oracle by {err[k]:.3e} at {k} (got {got[k].item()!r}, oracle "
            f"{want[k].item()!r}); tolerance there {np.broadcast_to(tol, err.shape)[k]:.3e} ({model})\n"
            f"{_inputs_repr(inputs)}{_gradient_diagnosis(func, got, want, tol, inputs)}"
        )


def baseline(compute):
    """``compute()``: what a test of input forms compares with, the same module on plain input.

    If it raises, the module fails on plain input too, for a reason that belongs to
    another clause of the contract (and is reported there): this example is set aside
    (``hypothesis.reject``), or the test skipped outside Hypothesis, so that the failure
    is not reported again as one of input forms.
    """
    __tracebackhide__ = True
    try:
        return compute()
    except Exception as error:  # noqa: BLE001 - any failure on plain input is another clause's
        if currently_in_test_context():
            reject()
        pytest.skip(f"fails on plain input too ({type(error).__name__}: {error}): "
                    "judged by the other clauses")


def _formula2_diagnosis(impl, func, got, want, inputs):
    """Both tables of formula 2, or both flows of its gradient, when ``want`` is the oracle's."""
    name = func.split()[0]
    if not inputs or np.ndim(inputs[0]) < 2 or name not in ("shortest_dist", "shortest_dist_vjp"):
        return ""
    d = np.asarray(inputs[0])
    if name == "shortest_dist":
        if not np.array_equal(want, reference.shortest_dist(d), equal_nan=True):
            return ""  # compared with something else than the oracle on this matrix
        return "\n" + diagnose.formula2(lambda sub: impl("shortest_dist", sub), d)
    return "\n" + diagnose.flows(got, want)


def _gradient_diagnosis(func, got, want, tol, inputs):
    match = _FEATURE_GRADIENT.match(func)
    if not match or len(inputs) < 2 or np.shape(got) != np.shape(inputs[match[2] == "grad_y"]):
        return ""
    return "\n" + diagnose.feature_gradient(inputs[0], inputs[1], got, want, tol, match[2])
