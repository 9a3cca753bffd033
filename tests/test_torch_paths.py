"""torch_impl's internal routes agree with each other.

``shortest_dist`` and ``batch_local_dist`` run the DP on one of two layouts:
the value path (no gradient: two diagonals, ``d`` read in place) and the table
path (gradient: a skewed ``+inf`` buffer, the whole table kept).  Both follow
the recurrence cell by cell, so they must agree bitwise, ties, NaN and +inf
included.  ``local_dist`` reuses one work buffer across blocks, so any block
split must give bitwise the same result too.
"""

import numpy as np
import pytest
import torch

import torch_impl

from . import naive

SHAPES = [(1, 1), (1, 5), (5, 1), (2, 9), (6, 6), (8, 8, 3), (3, 7, 2, 2)]


def _cost(shape, seed, dtype):
    """Costs on a coarse grid (many exact ties), with a NaN and a +inf."""
    gen = torch.Generator().manual_seed(seed)
    d = (torch.rand(shape, generator=gen, dtype=dtype) * 4).round() / 4
    flat = d.view(-1)
    if flat.numel() > 4:
        flat[1], flat[-2] = float("nan"), float("inf")
    return d


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_shortest_dist_value_path_equals_table_path(shape, dtype):
    d = _cost(shape, sum(shape), dtype)
    with torch.no_grad():
        value = torch_impl.shortest_dist(d)
    table = torch_impl.shortest_dist(d.clone().requires_grad_())
    # assert_array_equal counts NaN == NaN in the same place as equal.
    np.testing.assert_array_equal(table.detach().numpy(), value.numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batch_local_dist_value_path_equals_table_path(dtype):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(6, 5, 4, generator=gen, dtype=dtype)
    y = torch.randn(6, 3, 4, generator=gen, dtype=dtype)
    y[2] = x[2, :3]                 # identical stripes: clamp active, ties
    with torch.no_grad():
        value = torch_impl.batch_local_dist(x, y)
    table = torch_impl.batch_local_dist(x.requires_grad_(), y)
    np.testing.assert_array_equal(table.detach().numpy(), value.numpy())


def _plain_batch_local_dist(x, y):
    """The same maths as plain autograd ops: torch.minimum splits ties."""
    stripe = torch_impl.stripe_dist(torch_impl.batch_euclidean_dist(x, y))
    return naive.shortest_dist(stripe.permute(1, 2, 0))


def test_batch_local_dist_gradient_matches_plain_autograd_with_ties():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 4, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(5, 4, 6, generator=gen, dtype=torch.float64)
    y[1] = x[1]                     # identical stripes: zero gradient there
    x[3], y[3] = x[3, :1], y[3, :1]  # all stripe distances equal: every
                                     # DP cell is a tie, the flow halves
    grad_out = torch.rand(5, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(torch_impl.batch_local_dist(
        x.requires_grad_(), y.requires_grad_()), (x, y), grad_out)
    want = torch.autograd.grad(_plain_batch_local_dist(x, y), (x, y),
                               grad_out)
    # Same formulas, different association: float64 rounding of sums of at
    # most (m + n - 1) * d = 42 terms of size O(1) stays far below 1e-12.
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=0, atol=1e-12)


def test_backward_scratch_reuse_leaves_no_trace():
    # batch_local_dist's backward keeps its flow buffers for the next call of
    # the same shape.  Interleave calls of two shapes and two gradients, keep
    # a shortest_dist gradient (which must not share the scratch) across them,
    # and compare each against plain autograd.
    gen = torch.Generator().manual_seed(5)
    f64 = torch.float64
    d = torch.rand(4, 3, 6, generator=gen, dtype=f64, requires_grad=True)
    kept = torch.autograd.grad(torch_impl.shortest_dist(d).sum(), d)[0]
    kept_copy = kept.clone()
    cases = [(torch.randn(5, 4, 6, generator=gen, dtype=f64),
              torch.randn(5, 3, 6, generator=gen, dtype=f64)),
             (torch.randn(2, 2, 6, generator=gen, dtype=f64),
              torch.randn(2, 5, 6, generator=gen, dtype=f64))]
    for x, y in cases * 2:
        grad_out = torch.rand(x.shape[0], generator=gen, dtype=f64)
        x, y = x.requires_grad_(), y.requires_grad_()
        got = torch.autograd.grad(torch_impl.batch_local_dist(x, y), (x, y),
                                  grad_out)
        want = torch.autograd.grad(_plain_batch_local_dist(x, y), (x, y),
                                   grad_out)
        for g, w in zip(got, want):  # error model: see the test above
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=0,
                                       atol=1e-12)
    np.testing.assert_array_equal(kept.numpy(), kept_copy.numpy())


def test_backward_under_inference_mode_does_not_spoil_the_scratch():
    # Buffers made under inference_mode cannot be written outside it; a
    # backward there must not leave them for the next ordinary backward.
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(3, 4, 5, generator=gen, requires_grad=True)
    y = torch.randn(3, 4, 5, generator=gen)
    out = torch_impl.batch_local_dist(x, y).sum()
    with torch.inference_mode():
        inside = torch.autograd.grad(out, x, retain_graph=True)[0].clone()
    outside = torch.autograd.grad(out, x)[0]
    np.testing.assert_array_equal(outside.numpy(), inside.numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_local_dist_any_block_split_is_bitwise_the_same(dtype):
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(23, 4, 8, generator=gen, dtype=dtype)
    y = torch.randn(9, 5, 8, generator=gen, dtype=dtype)
    whole = torch_impl.local_dist(x, y, chunk_size=23)
    for chunk_size in (1, 2, 5, 7, 22):   # 5, 7 and 22 leave a short block
        np.testing.assert_array_equal(
            torch_impl.local_dist(x, y, chunk_size=chunk_size).numpy(),
            whole.numpy(), err_msg=f"chunk_size={chunk_size}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gpu_branches_of_the_reverse_pass_give_the_cpu_bits(monkeypatch, dtype):
    # On a GPU the reverse pass always takes its NaN-proof shares and corrects for
    # non-finite seeds (a test would cost a synchronisation); on the CPU only when needed.
    # Taken on finite data, both must give the bits of the fast path.
    import reference
    import torch_impl.path as path

    rng = np.random.default_rng(11)
    d = rng.random((7, 9, 33))
    d[:, :, :5] = d[:, :, :1]  # a few pairs with ties
    d[2:4, 3:5, 3] = 0.5
    cells = torch.tensor(d, dtype=dtype)
    seed = torch.tensor(rng.uniform(0.5, 1.5, 33), dtype=dtype)

    def gradient():
        leaf = cells.clone().requires_grad_(True)
        torch_impl.shortest_dist(leaf).backward(seed)
        return leaf.grad.numpy()

    fast = gradient()
    monkeypatch.setattr(path, "_nan_free_on_cpu", lambda values: False)
    monkeypatch.setattr(path, "_all_finite_on_cpu", lambda seed: False)
    np.testing.assert_array_equal(gradient(), fast)
    np.testing.assert_array_equal(fast, reference.shortest_dist_vjp(
        d.astype(np.float32 if dtype == torch.float32 else np.float64), seed.numpy()))
