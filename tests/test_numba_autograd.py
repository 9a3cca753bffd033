"""The torch bridge ``numba_impl.autograd`` against torch autograd of a plain torch formula.

The plain version below is the contract written in torch ops (explicit differences,
``torch.minimum`` in formula 2), so its autograd gradient is the contract's gradient.
Error model: both sides compute the same float64 operations up to summation order and
the bridge's norm expansion in ``local_dist`` and ``batch_local_dist`` (cancellation ``~ eps (|x|^2 + |y|^2)`` on a
squared distance, divided by the distance in the gradient), hence rtol 1e-9 / atol 1e-9
for distances of order 1 built from unit-scale features.
"""
import numpy as np
import pytest
import torch  # a dependency of the bridge: a missing or broken install must fail, not skip

import numba_impl
import numba_impl.autograd as nba

from . import naive


def _leaf(array):
    return torch.tensor(array, dtype=torch.float64, requires_grad=True)


@pytest.fixture
def rng():
    return np.random.default_rng(99)


def _compare(fn_bridge, fn_plain, inputs, rng):
    ours = [_leaf(a) for a in inputs]
    plain = [_leaf(a) for a in inputs]
    out_ours, out_plain = fn_bridge(*ours), fn_plain(*plain)
    np.testing.assert_allclose(out_ours.detach().numpy(), out_plain.detach().numpy(),
                               rtol=1e-9, atol=1e-9)
    weight = torch.tensor(rng.random(tuple(out_plain.shape)), dtype=torch.float64)
    (out_ours * weight).sum().backward()
    (out_plain * weight).sum().backward()
    for a, b in zip(ours, plain):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-9)


def test_shortest_dist_matches_torch_autograd(rng):
    _compare(nba.shortest_dist, naive.shortest_dist, [rng.random((4, 6, 3, 5))], rng)


def test_shortest_dist_tie_gradient_is_half(rng):
    d = _leaf(np.zeros((2, 2)))  # both paths tie: each gets half, like torch.minimum
    nba.shortest_dist(d).backward()
    np.testing.assert_array_equal(d.grad.numpy(), [[1.0, 0.5], [0.5, 1.0]])


def test_batch_local_dist_matches_torch_autograd(rng):
    x, y = rng.standard_normal((5, 4, 6)), rng.standard_normal((5, 3, 6))
    _compare(nba.batch_local_dist, lambda a, b: naive.shortest_dist(naive.batch_stripes(a, b)),
             [x, y], rng)


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_local_dist_matches_torch_autograd(rng, chunk_size):
    x, y = rng.standard_normal((5, 4, 6)), rng.standard_normal((7, 3, 6))
    _compare(lambda a, b: nba.local_dist(a, b, chunk_size=chunk_size), naive.local_dist, [x, y], rng)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batch_local_dist_backward_is_the_numpy_vjp(rng, dtype):
    # The CPU bridge keeps formula 1 and the table of formula 2 from the forward pass; the
    # NumPy VJP recomputes them with the same kernels, so both are bitwise equal. The
    # retained graph is backpropagated twice: the kept state must survive the first pass.
    x = torch.tensor(rng.standard_normal((9, 4, 6)), dtype=dtype, requires_grad=True)
    y = torch.tensor(rng.standard_normal((9, 5, 6)), dtype=dtype, requires_grad=True)
    weight = torch.tensor(rng.random(9), dtype=dtype)
    loss = (nba.batch_local_dist(x, y) * weight).sum()
    loss.backward(retain_graph=True)
    want = numba_impl.batch_local_dist_vjp(x.detach().numpy(), y.detach().numpy(), weight.numpy())
    for got, w in zip((x.grad, y.grad), want):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got.numpy(), w)
    loss.backward()
    for got, w in zip((x.grad, y.grad), want):
        np.testing.assert_array_equal(got.numpy(), 2 * w)


def test_gradcheck_float64(rng):
    x = _leaf(rng.standard_normal((3, 3, 4)))
    y = _leaf(rng.standard_normal((4, 2, 4)))
    assert torch.autograd.gradcheck(lambda a, b: nba.local_dist(a, b), (x, y))
    assert torch.autograd.gradcheck(nba.batch_local_dist, (x, y[:3, :, :]))


def test_float32_stays_float32(rng):
    x = torch.tensor(rng.standard_normal((3, 4, 5)), dtype=torch.float32, requires_grad=True)
    out = nba.local_dist(x, x.detach())
    out.sum().backward()
    assert out.dtype == torch.float32 and x.grad.dtype == torch.float32


def test_refuses_arrays():
    with pytest.raises(TypeError, match="local_dist: x must be a torch.Tensor"):
        nba.local_dist(np.zeros((2, 3, 4)), torch.zeros(2, 3, 4))


def test_training_loop_reduces_the_loss():
    """A linear stripe embedding trained with the bridge: the triplet loss must go down."""
    gen = torch.Generator().manual_seed(0)
    ids, per_id, stripes, dim = 4, 4, 6, 8
    centers = torch.randn(ids, stripes, dim, generator=gen)
    feats = (centers.repeat_interleave(per_id, 0) + 1.5 * torch.randn(ids * per_id, stripes, dim,
                                                                       generator=gen)).double()
    labels = torch.arange(ids).repeat_interleave(per_id)
    same = labels[:, None] == labels[None, :]
    model = torch.nn.Linear(dim, 4).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(30):
        emb = model(feats)
        dist = nba.local_dist(emb, emb)
        dist_ap = dist.masked_fill(~same, -1.0).max(1).values
        dist_an = dist.masked_fill(same, float("inf")).min(1).values
        loss = torch.relu(dist_ap - dist_an + 0.5).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("func", ["shortest_dist", "batch_local_dist", "local_dist"])
def test_double_backward_is_refused_at_once(rng, func):
    # The gradient penalty: the first-order gradient asked with create_graph=True
    # used to come back without a graph. Now the backward pass raises, naming the function.
    args = ([rng.random((3, 4))] if func == "shortest_dist"
            else [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))])
    inputs = [_leaf(a) for a in args]
    out = getattr(nba, func)(*inputs).sum()
    with pytest.raises(RuntimeError, match=f"{func}: numba_impl.autograd has no second derivative"):
        torch.autograd.grad(out, inputs, create_graph=True)
    out = getattr(nba, func)(*inputs).sum()
    assert all(g.grad_fn is None for g in torch.autograd.grad(out, inputs))  # first order works
