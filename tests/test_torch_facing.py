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
import importlib
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # a NumPy-only installation has nothing to check here
from torch.autograd import gradgradcheck  # noqa: E402

import reference  # noqa: E402
from reference import error_model  # noqa: E402

from .assertions import baseline  # noqa: E402


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


@pytest.mark.parametrize("func", [pytest.param(f, marks=pytest.mark.uses(f)) for f in SECOND_ORDER])
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


# --- torch.autocast ------------------------------------------------------------------
def _autocast_calls():
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((4, 3, 5)), rng.standard_normal((4, 2, 5))
    x, y = x.astype(np.float32), y.astype(np.float32)
    dist = rng.random((4, 4)).astype(np.float32)
    ids = np.array([0, 0, 1, 1])
    tri = reference.TripletLoss(0.3)
    calls = [
        ("normalize", (x,), {}),
        ("euclidean_dist", (x[0], y[0]), {}),
        ("batch_euclidean_dist", (x, y), {}),
        ("stripe_dist", (np.abs(x),), {}),
        ("shortest_dist", (rng.random((3, 4, 2)).astype(np.float32),), {}),
        ("local_dist", (x, y), {}),
        ("batch_local_dist", (x, y), {}),
        ("hard_example_mining", (dist, ids), {}),
        ("TripletLoss", (dist[0], dist[1]), {}),
        ("global_loss", (tri, x[:, 0], ids), {}),
        ("local_loss", (tri, x), {"labels": ids}),
        ("local_loss", (tri, x, np.array([1, 0, 3, 2]), np.array([2, 3, 0, 1])), {}),
    ]
    return [pytest.param(f, a, k, id=f"{f}-{i}", marks=pytest.mark.uses(f))
            for i, (f, a, k) in enumerate(calls)]


def _target(impl, func):
    return impl.function("TripletLoss")(0.3) if func == "TripletLoss" else impl.function(func)


def _leaves(impl, args, dtype):
    """Float arrays as leaf tensors of ``dtype`` (as a network under autocast hands them
    over), everything else converted as usual."""
    return [impl.to_native(a).to(dtype).requires_grad_()
            if isinstance(a, np.ndarray) and a.dtype.kind == "f" else impl.to_native(a)
            for a in args]


def _outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


@pytest.mark.parametrize("autocast_dtype, input_dtype", [
    (torch.bfloat16, torch.float32), (torch.bfloat16, torch.bfloat16),
    (torch.float16, torch.float16)], ids=["bf16 region, float32 in", "bf16", "float16"])
@pytest.mark.parametrize("func, args, kwargs", _autocast_calls())
def test_autocast_computes_in_float32(torch_impl_under_test, func, args, kwargs, autocast_dtype,
                                      input_dtype):
    impl = torch_impl_under_test
    native_kw = {k: impl.to_native(v) for k, v in kwargs.items()}
    inputs = _leaves(impl, args, input_dtype)
    # float32 outside the region first: a module failing there fails for another clause
    plain = [t.detach().float().requires_grad_() if getattr(t, "requires_grad", False) else t
             for t in inputs]

    def plain_run():
        out = _outputs(_target(impl, func)(*plain, **native_kw))
        out[0].sum().backward()
        return out

    want = baseline(plain_run)
    with torch.autocast("cpu", dtype=autocast_dtype):
        got = _outputs(_target(impl, func)(*inputs, **native_kw))
    got[0].sum().backward()  # after the region, as torch recommends
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype, f"{impl.name}.{func} output {k}: {g.dtype} under autocast"
        np.testing.assert_array_equal(g.detach().cpu().numpy(), w.detach().cpu().numpy(),
                                      err_msg=f"{impl.name}.{func} output {k} under autocast")
    for k, (t, p) in enumerate(zip(inputs, plain)):
        if getattr(t, "requires_grad", False):
            assert t.grad.dtype == t.dtype, f"{impl.name}.{func}: gradient {k} {t.grad.dtype}"
            np.testing.assert_array_equal(t.grad.float().cpu().numpy(),
                                          p.grad.to(t.dtype).float().cpu().numpy(),
                                          err_msg=f"{impl.name}.{func}: gradient {k}")


@pytest.mark.parametrize("module", ["torch_impl", "numba_impl.autograd"])
@pytest.mark.parametrize("func", ["shortest_dist", "batch_local_dist"])
def test_backward_inside_autocast_stays_float32(module, func):
    # torch advises against it, but a backward pass called inside the region must not
    # drop the one-node functions to half precision: their backward runs with autocast
    # off, as their forward did (custom_bwd's convention).
    fn = getattr(importlib.import_module(module), func)
    rng = np.random.default_rng(3)
    shapes = [(4, 5, 3)] if func == "shortest_dist" else [(3, 4, 6), (3, 5, 6)]
    arrays = [torch.tensor(rng.random(s), dtype=torch.float32) for s in shapes]
    inside = [a.clone().requires_grad_() for a in arrays]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fn(*inside).sum().backward()
    plain = [a.clone().requires_grad_() for a in arrays]
    fn(*plain).sum().backward()
    for a, b in zip(inside, plain):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)


@pytest.mark.parametrize("module", ["torch_impl", "numba_impl.autograd"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_outside_autocast_is_refused(module, dtype):
    # No silent casting: dtype in = dtype out is for float32 and float64; half precision
    # is computed in float32 only where the caller asked for it, inside torch.autocast.
    fn = importlib.import_module(module).batch_local_dist
    x = torch.zeros(2, 3, 4, dtype=dtype)
    with pytest.raises(TypeError, match=r"\bx\b.*" + str(dtype) + r".*\.float\(\).*autocast"):
        fn(x, x.float())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch.cuda.is_available() is False")
@pytest.mark.parametrize("module", ["torch_impl", "numba_impl.autograd"])
@pytest.mark.parametrize("func", ["shortest_dist", "batch_local_dist", "local_dist"])
def test_cuda_float16_autocast_computes_in_float32(module, func):
    fn = getattr(importlib.import_module(module), func)
    rng = np.random.default_rng(4)
    shapes = [(4, 5, 3)] if func == "shortest_dist" else [(3, 4, 6), (3, 5, 6)]
    half = [torch.tensor(rng.random(s), device="cuda").half().requires_grad_() for s in shapes]
    with torch.autocast("cuda", dtype=torch.float16):
        got = fn(*half)
    got.sum().backward()
    plain = [h.detach().float().requires_grad_() for h in half]
    want = fn(*plain)
    want.sum().backward()
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    for h, p in zip(half, plain):
        torch.testing.assert_close(h.grad, p.grad.half(), rtol=0, atol=0)
