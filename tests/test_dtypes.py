"""Every output keeps the input's float dtype: float32 in, float32 out, float64 alike.

The contract has no silent up- or down-casting of results: not for distances, not for
the losses and what they return beside the loss (a float64 loss from float32 features
makes a training step silently mix precisions), not for gradients. Indices are of an
integer dtype. Every function of the contract is called once per dtype, on ordinary input.
"""
import numpy as np
import pytest

import reference

DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64])
IDS = np.array([0, 0, 1, 1, 2, 2], dtype=np.int64)
P_INDS = np.array([1, 0, 3, 2, 5, 4])
N_INDS = np.array([2, 3, 4, 5, 0, 1])


def _features(dtype, *shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def _calls(dtype):
    """``(function, args, kwargs, names of the outputs, which outputs are indices)``."""
    x, y = _features(dtype, 6, 3, 4), _features(dtype, 5, 4, 4, seed=1)
    dist = np.abs(_features(dtype, 6, 6, seed=2))
    loss = reference.TripletLoss(0.3)
    return [
        ("normalize", (x,), {}, ("out",)),
        ("euclidean_dist", (x[0], y[0]), {}, ("out",)),
        ("batch_euclidean_dist", (x[:5], y), {}, ("out",)),
        ("stripe_dist", (np.abs(x),), {}, ("out",)),
        ("shortest_dist", (np.abs(x[0]),), {}, ("out",)),
        ("local_dist", (x, y), {}, ("out",)),
        ("batch_local_dist", (x[:5], y), {}, ("out",)),
        ("pair_local_dist", (x[0], y[0]), {}, ("out",)),
        ("hard_example_mining", (dist, IDS), {"return_inds": True},
         ("dist_ap", "dist_an", "p_inds", "n_inds")),
        ("global_loss", (loss, x[:, 0], IDS), {},
         ("loss", "p_inds", "n_inds", "dist_ap", "dist_an", "dist_mat")),
        ("local_loss", (loss, x), {"labels": IDS}, ("loss", "dist_ap", "dist_an", "dist_mat")),
        ("local_loss", (loss, x, P_INDS, N_INDS), {}, ("loss", "dist_ap", "dist_an")),
    ]


def _each_call():
    names = [c[0] for c in _calls(np.float64)]
    return pytest.mark.parametrize(
        "k", [pytest.param(k, marks=pytest.mark.uses(name), id=f"{name}-{k}")
              for k, name in enumerate(names)])


def _assert_dtypes(impl, func, outputs, names, dtype):
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    assert len(outputs) == len(names), \
        f"{impl.name}.{func}: {len(outputs)} outputs, the contract has {len(names)} ({names})"
    for name, out in zip(names, outputs):
        got = np.asarray(out).dtype
        if name.endswith("_inds"):
            assert got.kind in "iu", f"{impl.name}.{func}: {name} has dtype {got}, not integer"
        else:
            assert got == dtype, \
                f"{impl.name}.{func}: {name} has dtype {got} for {np.dtype(dtype)} input"


@_each_call()
@DTYPES
def test_outputs_keep_the_dtype(impl, k, dtype):
    func, args, kwargs, names = _calls(dtype)[k]
    _assert_dtypes(impl, func, impl(func, *args, **kwargs), names, dtype)


@pytest.mark.uses("TripletLoss")
@pytest.mark.parametrize("margin", [0.3, None])
@DTYPES
def test_triplet_loss_keeps_the_dtype(impl, margin, dtype):
    ap, an = np.abs(_features(dtype, 6)), np.abs(_features(dtype, 6, seed=1))
    got = impl.to_numpy(impl("TripletLoss", margin)(impl.to_native(ap), impl.to_native(an)))
    _assert_dtypes(impl, f"TripletLoss({margin})", got, ("loss",), dtype)


_DIFFERENTIABLE = ["normalize", "euclidean_dist", "batch_euclidean_dist", "stripe_dist",
                   "shortest_dist", "local_dist", "batch_local_dist", "pair_local_dist",
                   "global_loss", "local_loss"]


@pytest.mark.parametrize("k", [
    pytest.param(k, marks=pytest.mark.uses(name, f"{name}_vjp"), id=f"{name}-{k}")
    for k, name in enumerate(c[0] for c in _calls(np.float64)) if name in _DIFFERENTIABLE])
@DTYPES
def test_gradients_keep_the_dtype(impl, k, dtype):
    func, args, kwargs, _ = _calls(dtype)[k]
    kwargs = {key: v for key, v in kwargs.items() if key != "return_inds"}
    wrt = [a for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    scalar_loss = func in ("global_loss", "local_loss")  # gradient of the loss, output 0
    grad_out = None if scalar_loss else np.ones(np.shape(getattr(reference, func)(*args)), dtype)
    grads = impl.vjp(func, *args, grad_out=grad_out, **kwargs)
    grads = grads if isinstance(grads, tuple) else (grads,)
    _assert_dtypes(impl, f"{func} gradient", grads, [f"grad {j}" for j in range(len(wrt))], dtype)
