"""torch_impl gradients: ``gradcheck``/``gradgradcheck`` in float64, and CUDA.

Finite differences (step 1e-6) are only meaningful where every function is
smooth around the input: no DP ties (``min(up, left)`` switching side), no
squared distance near the ``1e-12`` clamp, no mining decision or hinge near
its switch.  Each test builds seeded inputs with such margins and asserts the
margin first, so a test can only pass for the right reason.
"""

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import torch_impl as T

from . import naive

F64 = torch.float64
# A DP cell moves by at most ~(m + n) * 1e-6 under a 1e-6 perturbation of a
# feature (each stripe distance has slope <= 1/2 per unit of feature); a gap
# of 1e-4 between min's arguments keeps every min on the same side.
TIE_GAP = 1e-4


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _assert_tie_free(d):
    __tracebackhide__ = True
    assert naive.tie_gap(d) > TIE_GAP, "test input has a near-tie"


def _features(shape, seed, scale=1.0):
    return (scale * torch.randn(shape, generator=_gen(seed), dtype=F64)
            ).requires_grad_()


def _check(fn, inputs, double=True):
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
    if double:
        assert gradgradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_normalize():
    x = _features((3, 5), 0)
    _check(lambda t: T.normalize(t, axis=-1), (x,))
    _check(lambda t: T.normalize(t, axis=0), (x,))


def test_euclidean_dist():
    x, y = _features((4, 6), 1), _features((5, 6), 2)
    # Far from the clamp: the smallest squared distance is O(1).
    assert float(T.euclidean_dist(x, y).detach().min()) > 0.1
    _check(T.euclidean_dist, (x, y))


def test_batch_euclidean_dist():
    x, y = _features((3, 4, 6), 3), _features((3, 5, 6), 4)
    assert float(T.batch_euclidean_dist(x, y).detach().min()) > 0.1
    _check(T.batch_euclidean_dist, (x, y))


def test_stripe_dist():
    e = (torch.rand(4, 5, generator=_gen(5), dtype=F64) * 6).requires_grad_()
    _check(T.stripe_dist, (e,))


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (4, 1), (3, 5), (4, 4, 3)])
def test_shortest_dist(shape):
    d = torch.rand(shape, generator=_gen(6), dtype=F64).requires_grad_()
    if shape[0] > 1 and shape[1] > 1:
        _assert_tie_free(d)
    _check(T.shortest_dist, (d,))


def test_shortest_dist_tie_splits_gradient_in_half():
    # All-equal matrix: every interior cell is a tie; the flow through the
    # 2x2 cells is (1, 1/2; 1/2, 1), exactly, by the torch.minimum rule.
    d = torch.ones(2, 2, dtype=F64, requires_grad=True)
    T.shortest_dist(d).backward()
    torch.testing.assert_close(
        d.grad, torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=F64),
        rtol=0, atol=0)


def _stripes(n_img, stripes, seed):
    # Scale 1.5 spreads stripe distances over tanh's slope, away from ties.
    return _features((n_img, stripes, 4), seed, scale=1.5)


def test_local_dist():
    x, y = _stripes(3, 4, 7), _stripes(2, 3, 8)
    d = T.stripe_dist(torch.cdist(x.reshape(-1, 4), y.reshape(-1, 4)))
    _assert_tie_free(d.reshape(3, 4, 2, 3).permute(1, 3, 0, 2))
    _check(T.local_dist, (x, y))
    _check(lambda a, b: T.local_dist(a, b, chunk_size=1), (x, y), double=False)


def test_batch_local_dist():
    x, y = _stripes(4, 4, 9), _stripes(4, 3, 10)
    d = T.stripe_dist(T.batch_euclidean_dist(x, y)).permute(1, 2, 0)
    _assert_tie_free(d)
    _check(T.batch_local_dist, (x, y))
    # Gradient to one input only (the other is a constant).
    _check(lambda a: T.batch_local_dist(a, y.detach()), (x,))


@pytest.mark.parametrize("margin", [None, 0.3])
def test_triplet_loss(margin):
    ap = torch.tensor([1.0, 0.2, 0.9, 0.4], dtype=F64, requires_grad=True)
    an = torch.tensor([0.5, 1.1, 0.3, 0.95], dtype=F64, requires_grad=True)
    if margin is not None:
        # ap - an + margin = 0.8, -0.6, 0.9, -0.25: no hinge at its kink.
        assert float((ap - an + margin).detach().abs().min()) > 0.1
    _check(T.TripletLoss(margin), (ap, an))


def _labelled_global(seed):
    """Two samples for each of 3 identities, clustered by identity so that
    mining is decided by margins much larger than the finite-difference step."""
    centres = torch.tensor([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0]],
                           dtype=F64)
    noise = torch.randn(6, 4, generator=_gen(seed), dtype=F64)
    feat = (centres.repeat_interleave(2, 0) + noise).requires_grad_()
    return feat, torch.tensor([0, 0, 1, 1, 2, 2])


def _assert_mining_margin(dist_mat, labels):
    __tracebackhide__ = True
    same = labels[:, None] == labels[None, :]
    for row, pos in zip(dist_mat.detach(), same):
        for group in (row[pos], row[~pos]):
            values = group.sort().values
            assert float((values[1:] - values[:-1]).min()) > TIE_GAP


@pytest.mark.parametrize("margin", [None, 0.3])
def test_global_loss(margin):
    feat, labels = _labelled_global(11)
    loss = T.TripletLoss(margin)
    out = T.global_loss(loss, feat, labels)
    _assert_mining_margin(out[5], labels)

    def fn(f):
        loss_, _, _, ap, an, dist_mat = T.global_loss(loss, f, labels)
        return loss_, ap, an, dist_mat
    _check(fn, (feat,))


@pytest.mark.parametrize("margin", [None, 0.3])
def test_local_loss_with_indices(margin):
    feat = _stripes(5, 3, 12)
    # No self-pairs: an image against itself gives a symmetric matrix, whose
    # DP is all ties (and its diagonal sits on the clamp).
    p_inds, n_inds = torch.tensor([1, 0, 3, 2, 1]), torch.tensor([2, 3, 0, 1, 0])
    d = T.stripe_dist(T.batch_euclidean_dist(feat, feat[p_inds]))
    _assert_tie_free(d.permute(1, 2, 0))
    loss = T.TripletLoss(margin)
    _check(lambda f: T.local_loss(loss, f, p_inds, n_inds), (feat,))


@pytest.mark.parametrize("margin", [None, 0.3])
def test_local_loss_mined(margin):
    feat = _stripes(6, 3, 13)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = T.TripletLoss(margin)
    dist_mat = T.local_loss(loss, feat, labels=labels)[3]
    _assert_mining_margin(dist_mat, labels)
    # dist_mat itself is left out: its diagonal (an image against itself) is
    # a symmetric matrix, all DP ties; the mined entries are never diagonal.
    _check(lambda f: T.local_loss(loss, f, labels=labels)[:3], (feat,))


# -- real GPU (benchmarks/gpu_check.sh runs these on a lent device) ----------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="torch.cuda.is_available() is False")


@pytest.mark.cuda
@needs_cuda
def test_cuda_matches_cpu_and_stays_on_device():
    g = _gen(14)
    d = torch.rand(6, 7, 300, generator=g, dtype=torch.float32)
    d[:, :, :50] = torch.randint(0, 3, (6, 7, 50), generator=g).float()  # ties
    d[2, 3, 60] = float("nan")
    dev = d.cuda().requires_grad_()
    out = T.shortest_dist(dev)
    assert out.device.type == "cuda"
    # min and + are exact IEEE operations on both devices: bitwise equal.
    torch.testing.assert_close(out.cpu(), T.shortest_dist(d), rtol=0, atol=0,
                               equal_nan=True)
    out[:60].sum().backward()
    cpu = d.clone().requires_grad_()
    T.shortest_dist(cpu)[:60].sum().backward()
    assert dev.grad.device.type == "cuda"
    torch.testing.assert_close(dev.grad.cpu(), cpu.grad, rtol=0, atol=0)


@pytest.mark.cuda
@needs_cuda
def test_cuda_local_dist_and_loss():
    x, y = _stripes(5, 4, 15).detach(), _stripes(7, 3, 16).detach()
    cpu = T.local_dist(x, y)
    gpu = T.local_dist(x.cuda(), y.cuda(), chunk_size=2)
    assert gpu.device.type == "cuda"
    # float64 products in a different summation order: a few ulp per stripe
    # distance, at most m + n - 1 = 6 of them summed.
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-12, atol=1e-12)
    feat, labels = _labelled_global(17)
    feat = feat.detach().cuda().requires_grad_()
    loss, p, n, *_ = T.global_loss(T.TripletLoss(0.3), feat, labels.cuda())
    loss.backward()
    assert feat.grad.device.type == "cuda" and p.device.type == "cuda"
    _check(T.batch_local_dist, (_stripes(3, 4, 18).detach().cuda().requires_grad_(),
                                _stripes(3, 4, 19).detach().cuda().requires_grad_()))


@pytest.mark.cuda
@needs_cuda
def test_cuda_mining_ties_to_lowest_index():
    dist = torch.tensor([[0.0, 1.0, 1.0, 2.0, 2.0],
                         [1.0, 0.0, 1.0, 2.0, 2.0],
                         [1.0, 1.0, 0.0, 2.0, 2.0],
                         [2.0, 2.0, 2.0, 0.0, 0.0],
                         [2.0, 2.0, 2.0, 0.0, 0.0]], device="cuda")
    labels = torch.tensor([0, 0, 0, 1, 1], device="cuda")
    _, _, p, n = T.hard_example_mining(dist, labels, return_inds=True)
    torch.testing.assert_close(p.cpu(), torch.tensor([1, 0, 0, 3, 3]))
    torch.testing.assert_close(n.cpu(), torch.tensor([3, 3, 3, 0, 0]))
