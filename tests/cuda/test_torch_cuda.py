"""On a GPU only (``benchmarks/gpu_check.sh``): numba_impl and its torch bridge on torch
CUDA tensors, at the sizes and in the situations the simulator cannot show.

Skipped under the simulator (marker ``cuda``). Tolerances: formula 2 is bitwise; local
distances use ``reference.error_model`` plus libdevice's tanh (``_hardware_tolerance``,
see ``test_numba_kernels.py``). The large runs compare with numba_impl's CPU path in full
(both within that model of the oracle, so twice it) and with the oracle itself on a
sample of the pairs (the oracle needs seconds per thousand pairs at 32 x 32 stripes).
Their gradients are sums of at most ``K = pairs x (m + n - 1)`` terms, each at most
``|w| / 2`` (``w`` the output gradient; ``|(1 - t^2)/2 (x - y)/e| <= 1/2``) and within
``16 eps`` of exact; summation adds ``gamma_K``: ``|error| <= (K + 16) eps K max|w| / 2``,
doubled for the two implementations compared.
"""
import numpy as np
import pytest
import torch

import numba_impl
import numba_impl.autograd as nba
import reference
from reference import error_model

from .test_numba_kernels import _hardware_tolerance, _same_bits, _within

pytestmark = pytest.mark.cuda
EPS64 = np.finfo(np.float64).eps


def _gpu(array, grad=False):
    return torch.tensor(array, device="cuda", requires_grad=grad)


def _stripes(count, m, dim, seed):
    x = np.random.default_rng(seed).standard_normal((count, m, dim))
    return x / np.linalg.norm(x, axis=-1, keepdims=True)  # unit stripes, as in training


@pytest.fixture
def torch_holds_memory():
    """Half of the free device memory held by torch's allocator while the test runs."""
    free, _ = torch.cuda.mem_get_info()
    hog = torch.empty(free // 2 // 8, dtype=torch.float64, device="cuda")
    yield
    del hog
    torch.cuda.empty_cache()


def _unit_stripes_tolerance(dim, m, n):
    """``reference.error_model``'s bound for any pair of unit stripes (``|x| = |y| = 1``, so
    ``e <= 2``) in float64, plus libdevice's tanh: what a pair may differ from the oracle,
    or from another implementation within the same model."""
    u = error_model.unit_roundoff(np.float64)
    delta_sq = 2 * error_model.gamma(dim + 2, u) * 2
    cell = (np.sqrt(delta_sq) + 2 * u * 2 + 3 * u * 2) / 2 + 2 * u  # worst case over e
    model = 2 * error_model.path_bound(np.full((m, n), cell), m, n, u)
    return _hardware_tolerance(model, np.float64, m, n)


def _grad_tolerance(pairs_per_row, m, n, weights):
    terms = pairs_per_row * (m + n - 1)
    return 2 * (terms + 16) * EPS64 * terms * float(np.max(np.abs(weights))) / 2


def test_query_gallery_at_scale(torch_holds_memory):
    """m = n = 32 stripes, 316 x 316 = 99856 pairs, float64: forward and backward."""
    x, y = _stripes(316, 32, 16, 1), _stripes(316, 32, 16, 2)
    weights = np.random.default_rng(3).random((316, 316))
    xg, yg = _gpu(x, True), _gpu(y, True)
    out = nba.local_dist(xg, yg)
    (out * _gpu(weights)).sum().backward()
    got = out.detach().cpu().numpy()
    tolerance = _unit_stripes_tolerance(16, 32, 32)
    _within(got[:8, :40], reference.local_dist(x[:8], y[:40]), tolerance)
    _within(got, numba_impl.local_dist(x, y), tolerance)
    for got_grad, want in zip((xg.grad, yg.grad), numba_impl.local_dist_vjp(x, y, weights)):
        np.testing.assert_allclose(got_grad.cpu().numpy(), want, rtol=0,
                                   atol=_grad_tolerance(316, 32, 32, weights))
    # the gradient against the oracle itself, on a problem it can do in a second
    xs, ys, ws = x[:6], y[:20], weights[:6, :20]
    for got_grad, want in zip(numba_impl.local_dist_vjp(_gpu(xs), _gpu(ys), _gpu(ws)),
                              reference.local_dist_vjp(xs, ys, ws)):
        np.testing.assert_allclose(got_grad.copy_to_host(), want, rtol=0,
                                   atol=_grad_tolerance(20, 32, 32, ws))


def test_aligned_pairs_at_scale(torch_holds_memory):
    """m = n = 32 stripes, 100000 aligned pairs, float64: forward and backward."""
    x, y = _stripes(100_000, 32, 16, 4), _stripes(100_000, 32, 16, 5)
    weights = np.random.default_rng(6).random(100_000)
    xg, yg = _gpu(x, True), _gpu(y, True)
    out = nba.batch_local_dist(xg, yg)
    (out * _gpu(weights)).sum().backward()
    got = out.detach().cpu().numpy()
    tolerance = _unit_stripes_tolerance(16, 32, 32)
    _within(got[:300], reference.batch_local_dist(x[:300], y[:300]), tolerance)
    _within(got, numba_impl.batch_local_dist(x, y), tolerance)
    for got_grad, want in zip((xg.grad, yg.grad), numba_impl.batch_local_dist_vjp(x, y, weights)):
        np.testing.assert_allclose(got_grad.cpu().numpy(), want, rtol=0,
                                   atol=_grad_tolerance(1, 32, 32, weights))
    few = slice(0, 40)  # each pair's gradient is its own: a sample is exact
    for got_grad, want in zip((xg.grad[few], yg.grad[few]),
                              reference.batch_local_dist_vjp(x[few], y[few], weights[few])):
        np.testing.assert_allclose(got_grad.cpu().numpy(), want, rtol=0,
                                   atol=_grad_tolerance(1, 32, 32, weights[few]))


@pytest.mark.parametrize("shape", [(32, 32), (32, 32, 100_000)])
def test_shortest_dist_2d_and_3d(shape, torch_holds_memory):
    d = np.random.default_rng(7).random(shape)
    dg = _gpu(d, True)
    out = nba.shortest_dist(dg)
    weights = np.random.default_rng(8).random(shape[2:])
    (out * _gpu(weights)).sum().backward()
    _same_bits(out.detach().cpu().numpy(), np.asarray(reference.shortest_dist(d)))
    _same_bits(dg.grad.cpu().numpy(), numba_impl.shortest_dist_vjp(d, weights))


def _bits(tensor):
    return tensor.detach().contiguous().view(torch.int64).cpu()


def test_gradients_twice_are_the_same_bits():
    x, y = _gpu(_stripes(300, 8, 128, 9), True), _gpu(_stripes(300, 8, 128, 10), True)
    runs = []
    for _ in range(2):
        x.grad = y.grad = None
        (nba.local_dist(x, y).sum() + nba.batch_local_dist(x, y).sum()).backward()
        runs.append((_bits(x.grad), _bits(y.grad)))
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_side_stream_after_sleep():
    """Work queued on a side stream behind a long sleep: the kernels must wait for it."""
    d = np.random.default_rng(11).random((8, 8, 4096))
    x, y = _stripes(64, 8, 32, 12), _stripes(64, 8, 32, 13)
    source = [_gpu(a) for a in (d, x, y)]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        dg, xg, yg = (torch.zeros_like(a) for a in source)
        torch.cuda._sleep(500_000_000)  # some 0.25 s of cycles before the copies
        for target, a in zip((dg, xg, yg), source):
            target.copy_(a)
        bridge = nba.shortest_dist(dg)
        public = numba_impl.shortest_dist(dg)  # a torch tensor in, the public function
        xg.requires_grad_()
        loss = nba.local_dist(xg, yg).sum()
        loss.backward()  # autograd's thread, the forward's stream
        grad = xg.grad
    torch.cuda.synchronize()
    _same_bits(bridge.cpu().numpy(), reference.shortest_dist(d))
    _same_bits(public.copy_to_host(), reference.shortest_dist(d))
    want, _ = numba_impl.local_dist_vjp(x, y, np.ones((64, 64)))
    np.testing.assert_allclose(grad.cpu().numpy(), want, rtol=0,
                               atol=_grad_tolerance(64, 8, 8, np.ones(1)))


def test_non_contiguous_inputs():
    d = np.random.default_rng(14).random((6, 7, 50))
    dg = _gpu(d).transpose(0, 1)  # a view with swapped strides
    want = reference.shortest_dist(d.transpose(1, 0, 2))
    _same_bits(nba.shortest_dist(dg).cpu().numpy(), want)
    _same_bits(numba_impl.shortest_dist(dg).copy_to_host(), want)  # copied, not refused
    x = _stripes(5, 6, 16, 15)
    xg = _gpu(x)[:, ::2]  # every other stripe
    got = numba_impl.local_dist(xg, xg).copy_to_host()
    xs = np.ascontiguousarray(x[:, ::2])
    _within(got, reference.local_dist(xs, xs), _hardware_tolerance(
        error_model.local_dist_tolerance(xs, xs, np.float64), np.float64, 3, 3))
    cupy = pytest.importorskip("cupy")  # other arrays are refused, with the reason
    with pytest.raises(ValueError, match="x must be C-contiguous on the GPU"):
        numba_impl.local_dist(cupy.asarray(x)[:, ::2], cupy.asarray(xs))


def test_results_come_from_torch_allocator():
    x, y = _gpu(_stripes(50, 8, 64, 16)), _gpu(_stripes(60, 8, 64, 17))
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = numba_impl.local_dist(x, y)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() - before >= out.nbytes
    assert torch.cuda.max_memory_allocated() - before >= out.nbytes + 50 * 60 * 64 * 8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_batch(dtype):
    d = np.random.default_rng(7).random((8, 8, 65536)).astype(dtype)
    _same_bits(nba.shortest_dist(torch.from_numpy(d).cuda()).cpu().numpy(), reference.shortest_dist(d))
