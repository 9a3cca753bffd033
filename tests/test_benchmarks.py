"""The benchmark harness measures what its rows say they measure.

Timings themselves are never asserted (they belong to ``python -m benchmarks``);
these tests check the harness: every row is timed the same number of times in
alternating blocks, a broken row is reported rather than ending the run, and
the floor rows do the work they stand for.
"""

import numpy as np
import pytest
import torch

import reference
from benchmarks import workloads


def test_median_seconds_times_every_row_alike_in_rotating_blocks():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    medians = workloads.median_seconds(fns, "cpu", repeats=6, rounds=3,
                                       warmup=1)
    assert sorted(medians) == ["a", "b", "c"]
    assert all(s >= 0 for s in medians.values())
    # Each round: per row one warm-up call then repeats / rounds timed calls,
    # the rows' order rotated by one from the round before.
    blocks = [calls[i:i + 3] for i in range(0, len(calls), 3)]
    assert [b[0] for b in blocks] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(set(b)) == 1 for b in blocks), blocks


def test_between_runs_untimed_before_every_call():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "ab"}
    workloads.median_seconds(fns, "cpu", repeats=2, rounds=2, warmup=1,
                             between=lambda: calls.append("other work"))
    # Warm-up and timed calls alike follow the other work, as in a real loop.
    assert calls[0::2] == ["other work"] * (len(calls) // 2)
    assert calls[1::2] == ["a", "a", "b", "b", "b", "b", "a", "a"]


def test_the_in_step_row_times_the_loss_of_fresh_features():
    # Each step backpropagates the previous loss into the network and makes new
    # features: the loss row must see features that change, with their gradient.
    cnn = workloads._StripeCNN("cpu", pairs=4)
    cnn.step()
    first = cnn.x.detach().clone()
    np.testing.assert_array_equal(cnn.y.detach().numpy(), first[cnn.partner].numpy())
    cnn.loss(lambda x, y: (x - y).square().sum((1, 2)))()
    assert cnn.x.grad is not None and cnn.x.shape == (4, workloads.STRIPES,
                                                      workloads.FEATURES)
    assert cnn.y.grad is not None and cnn.y.shape == cnn.x.shape
    cnn.step()
    assert not torch.equal(cnn.x, first), "the SGD step did not change the features"


def test_a_row_that_raises_is_reported_not_fatal():
    def broken():
        raise RuntimeError("no kernel for this input")

    rows = workloads._time_rows("w", {
        "fine": (lambda: None, ""),
        "broken": (broken, ""),
        "absent": (None, "ImportError: no module named x"),
    }, "cpu", repeats=3)
    by_name = {r["row"]: r for r in rows}
    assert [r["row"] for r in rows] == ["fine", "broken", "absent"]
    assert by_name["fine"]["seconds"] is not None
    assert by_name["broken"]["seconds"] is None
    assert "RuntimeError: no kernel for this input" in by_name["broken"]["note"]
    assert "ImportError" in by_name["absent"]["note"]


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (4, 1), (3, 5), (8, 8)])
def test_torch_ops_floor_is_formula_2_itself(shape):
    # The floor row must do the real dynamic programme (same operations as
    # torch_impl's value path), or it would be no floor at all; and on every
    # call, since the benchmark calls it again and again.  Signed costs, so
    # that a stale +inf neighbour would change the result.
    d = torch.randn(*shape, 7, generator=torch.Generator().manual_seed(0))
    run = workloads._diagonal_ops(d)
    want = reference.shortest_dist(d.numpy())
    for call in range(3):
        np.testing.assert_array_equal(run().numpy(), want,
                                      err_msg=f"call {call + 1}")


def test_autograd_floor_hands_out_gradients():
    # The floor must pay what every real row pays: a gradient per input.
    x = torch.zeros(2, 3, 4, requires_grad=True)
    y = torch.zeros(2, 5, 4, requires_grad=True)
    workloads._EmptyStep.apply(x, y).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert y.grad is not None and y.grad.shape == y.shape


def test_products_floor_does_the_three_stripe_products():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 4, generator=gen, dtype=torch.float64,
                    requires_grad=True)
    y = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64,
                    requires_grad=True)
    out = workloads._ProductsStep.apply(x, y)
    # Forward: the sum of every stripe dot product of each pair.  float64 sums
    # of 40 products of O(1) normals in another order: the difference is of
    # order 40 * 1e-16 * 40, far below rtol 1e-12 of a result of order 1-10.
    np.testing.assert_allclose(
        out.detach().numpy(),
        np.einsum("kid,kjd->k", x.detach().numpy(), y.detach().numpy()),
        rtol=1e-12)
    assert torch.autograd.gradcheck(workloads._ProductsStep.apply, (x, y))
