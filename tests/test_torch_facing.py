"""What only torch-facing implementations face: second derivatives and mixed precision.

Run through the ``impl`` fixture, so the bridge and users' torch modules are held to the
same clauses as ``torch_impl``; NumPy implementations have neither autograd nor autocast
and are skipped here (their gradients are the ``*_vjp`` functions, tested elsewhere).

- Double backward (a gradient penalty): either correct (``gradgradcheck``) or refused
  with an error. A gradient that silently carries no graph is a wrong answer.
- ``torch.autocast``: inside an autocast region every function computes in float32
  whatever half-precision inputs it gets, so it gives bitwise the float32 result on the
  inputs converted to float32 (exact: float16 and bfloat16 values are float32 values),
  returns float32, and passes back the float32 gradient rounded to the input's dtype.
"""
import re

import numpy as np
import pytest
import torch
from torch.autograd import gradgradcheck

import reference
from reference import error_model


@pytest.fixture
def torch_impl_under_test(impl):
    if impl.array != "torch":
        pytest.skip(f"{impl.name} takes NumPy arrays: no autograd, no autocast")
    return impl


def _features(rng, *shape):
    # Scale 1.5 spreads the stripe distances over tanh's slope, away from ties.
    return 1.5 * rng.standard_normal(shape)


def _tie_free(d):
    """Every pair's optimal path wins by far more than a finite-difference step moves it."""
    d = np.asarray(d).reshape(d.shape[0], d.shape[1], -1)
    return all(error_model.path_margin(d[:, :, k]) > 1e-3 for k in range(d.shape[2]))


def _second_order_inputs(func, rng):
    """Float64 inputs of ``func`` on which its derivatives are smooth (no ties nearby)."""
    if func == "shortest_dist":
        d = rng.random((4, 5, 2))
        assert _tie_free(d)
        return (d,)
    x, y = _features(rng, 3, 4, 3), _features(rng, 3 if func == "batch_local_dist" else 2, 3, 3)
    xx, yy = ((x, y) if func == "batch_local_dist" else
              (np.repeat(x, len(y), axis=0), np.tile(y, (len(x), 1, 1))))
    assert _tie_free(np.moveaxis(reference.stripe_dist(reference.batch_euclidean_dist(xx, yy)),
                                 0, -1))
    return x, y


SECOND_ORDER = ["shortest_dist", "batch_local_dist", "local_dist"]
REFUSAL = re.compile(r"twice|second derivative|double backward", re.IGNORECASE)


@pytest.mark.parametrize("func", SECOND_ORDER)
def test_double_backward_is_right_or_refused(torch_impl_under_test, func):
    impl = torch_impl_under_test
    fn = impl.function(func)
    arrays = _second_order_inputs(func, np.random.default_rng(5))
    inputs = [impl.to_native(a, requires_grad=True) for a in arrays]
    # A gradient penalty beside an ordinary loss term: either refused, with an error that
    # says so (``once_differentiable`` says "differentiate twice"), or the exact second
    # derivative; never a gradient without a graph, which counts the penalty as a constant.
    try:
        (grad,) = torch.autograd.grad(fn(*inputs).sum(), inputs[:1], create_graph=True)
        ((grad * grad).sum() + inputs[0].sum()).backward()
    except RuntimeError as error:
        if REFUSAL.search(str(error)):
            return
        raise
    assert gradgradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4), \
        f"{impl.name}.{func}: wrong second derivative"
