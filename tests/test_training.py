"""End to end: a small CNN trained with the AlignedReID loss, as users train it.

The same network, data and seeds are trained three ways: with the plain cell-by-cell
torch loss of ``tests/naive.py`` (the way widely used AlignedReID code is written), with
``torch_impl``, and with the Numba bridge for the local distances. Each step's loss is
the global triplet loss with batch-hard mining plus the local triplet loss on the same
hard examples, the AlignedReID recipe. The same training under bfloat16 autocast, as CPU
training runs it, must complete with losses close to float32's.

Error model (float64). Per step, the three losses and gradients compute the same
mathematics in a different order (norm expansions, anti-diagonal or cell-by-cell
dynamic programmes, fused backward passes): a step's gradient differs by a few hundred
units of roundoff relative to its scale (``reference.error_model``: about ``(m + n) d u``
for a local distance gradient; here ``m = n = 8``, ``d = 16``: ``256 u``), so each step
moves the weights by ``delta = 2^-42`` (about ``1000 u``) relative at most. Mining and
the optimal paths are piecewise constant: while every run makes the same choices
(asserted step by step) training is a smooth map, and an error made at some step grows
no faster than one made at the start. The test measures that growth: it trains once
more from weights perturbed by ``delta`` and takes the largest deviation ``D`` of the
losses and weights; ``STEPS`` such errors, one per step, stay within ``STEPS * D``.
"""
import numpy as np
import pytest
import torch

import numba_impl.autograd as bridge
import torch_impl

from . import naive

IDENTITIES, P, K = 8, 4, 4  # a batch: P identities x K images, drawn from IDENTITIES
STEPS, LR, MARGIN = 30, 0.3, 0.3
STRIPES, WIDTH = 8, 4


class StripeNet(torch.nn.Module):
    """Two convolutions; the global feature pools the whole map, the local features pool
    each of the ``STRIPES`` rows (the horizontal stripes of AlignedReID)."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1)

    def forward(self, images):
        fmap = self.conv2(torch.relu(self.conv1(images)))  # [N, 16, STRIPES, WIDTH]
        return fmap.mean(dim=(2, 3)), fmap.mean(dim=3).transpose(1, 2)  # [N, 16], [N, 8, 16]


def _batches(dtype):
    """``STEPS`` batches of images with identity structure: each identity is a random
    prototype image, each of its images the prototype plus noise."""
    gen = torch.Generator().manual_seed(2024)
    prototypes = torch.randn(IDENTITIES, 3, STRIPES, WIDTH, generator=gen, dtype=torch.float64)
    batches = []
    for _ in range(STEPS):
        ids = torch.randperm(IDENTITIES, generator=gen)[:P]
        labels = ids.repeat_interleave(K)
        noise = torch.randn(len(labels), 3, STRIPES, WIDTH, generator=gen, dtype=torch.float64)
        batches.append(((prototypes[labels] + 0.5 * noise).to(dtype), labels))
    return batches


def _naive_loss(global_feat, local_feat, labels):
    return naive.aligned_loss(global_feat, local_feat, labels, MARGIN)


def _torch_impl_loss(global_feat, local_feat, labels):
    tri = torch_impl.TripletLoss(MARGIN)
    global_loss, p_inds, n_inds = torch_impl.global_loss(tri, global_feat, labels)[:3]
    local_loss = torch_impl.local_loss(tri, local_feat, p_inds, n_inds)[0]
    return global_loss + local_loss, p_inds, n_inds


def _bridge_loss(global_feat, local_feat, labels):
    """Global part and mining from torch_impl; the local distances from the Numba bridge."""
    tri = torch_impl.TripletLoss(MARGIN)
    global_loss, p_inds, n_inds = torch_impl.global_loss(tri, global_feat, labels)[:3]
    local = torch_impl.normalize(local_feat)
    local_loss = tri(bridge.batch_local_dist(local, local[p_inds]),
                     bridge.batch_local_dist(local, local[n_inds]))
    return global_loss + local_loss, p_inds, n_inds


LOSSES = {"naive": _naive_loss, "torch_impl": _torch_impl_loss, "bridge": _bridge_loss}


def _train(loss_fn, dtype, autocast=False, perturb=0.0):
    """Train a fresh ``StripeNet`` (same initial weights every time, scaled by
    ``1 + perturb``); return the losses, the mined indices of every step and the final
    weights."""
    torch.manual_seed(0)
    net = StripeNet().to(dtype)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1 + perturb)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    losses, mined = [], []
    for images, labels in _batches(dtype):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss, p_inds, n_inds = loss_fn(*net(images), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        mined.append((p_inds.tolist(), n_inds.tolist()))
    return np.array(losses), mined, [p.detach().clone() for p in net.parameters()]


def _deviation(run, base):
    """The largest difference of two runs' losses (absolute: they approach 0) and of their
    weights (relative to each parameter tensor's largest entry)."""
    loss_dev = np.abs(run[0] - base[0]).max()
    weight_dev = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(run[2], base[2]))
    return loss_dev, weight_dev


@pytest.fixture(scope="module")
def float64_runs():
    runs = {name: _train(fn, torch.float64) for name, fn in LOSSES.items()}
    runs["perturbed"] = _train(_naive_loss, torch.float64, perturb=2.0**-42)
    return runs


def test_training_learns(float64_runs):
    losses = float64_runs["naive"][0]
    assert losses[-5:].mean() < 0.7 * losses[:5].mean(), f"the loss did not go down: {losses}"


@pytest.mark.parametrize("name", ["torch_impl", "bridge"])
def test_training_matches_the_plain_loss(float64_runs, name):
    base = float64_runs["naive"]
    assert float64_runs["perturbed"][1] == base[1], \
        "test data too close to a tie: a perturbation of 2^-42 changes the mining; reseed"
    # See the module docstring: STEPS errors of one step's size, each growing as the
    # measured perturbation did (at least as much as the perturbation itself).
    loss_tol, weight_tol = (STEPS * max(d, 2.0**-42) for d in
                            _deviation(float64_runs["perturbed"], base))
    run = float64_runs[name]
    for step, (got, want) in enumerate(zip(run[1], base[1])):
        assert got == want, f"{name}: step {step} mined other hard examples: {got} vs {want}"
    loss_dev, weight_dev = _deviation(run, base)
    assert loss_dev <= loss_tol, \
        f"{name}: loss curve differs from the plain loss by {loss_dev:.3e} > {loss_tol:.3e}"
    assert weight_dev <= weight_tol, \
        f"{name}: weights after {STEPS} steps differ by {weight_dev:.3e} > {weight_tol:.3e}"
@pytest.mark.parametrize("name", ["torch_impl", "bridge"])
def test_training_under_autocast(name):
    """bfloat16 autocast, as CPU training runs it: the network computes in bfloat16, the
    loss in float32 (formulas 1 and 2 must not run in bfloat16).

    Error model: bfloat16 keeps 8 bits (u = 2^-8 = 0.004). Two convolutions round their
    inputs and outputs to bfloat16 (4 roundings of relative size u, accumulation in
    float32), so the features carry a relative error of about 4u = 1.6%; the loss is
    1-Lipschitz in the normalised features (tanh' <= 1/2, Euclidean distances 1-Lipschitz),
    so the first step's loss is within 2 x 4u = 3% of the float32 run's. Later steps
    follow other trajectories; they must stay finite and still learn.
    """
    loss_fn = LOSSES[name]
    want = _train(loss_fn, torch.float32)[0]
    got = _train(loss_fn, torch.float32, autocast=True)[0]
    assert np.all(np.isfinite(got)), f"{name} under autocast: non-finite loss {got}"
    np.testing.assert_allclose(got[0], want[0], rtol=8 * 2.0**-8,
                               err_msg=f"{name} under autocast: first loss")
    assert got[-5:].mean() < 0.7 * got[:5].mean(), f"{name} under autocast did not learn: {got}"
