"""Formula 2, the shortest monotone path, vectorised over anti-diagonals.

Cell ``(i, j)`` depends only on ``(i-1, j)`` and ``(i, j-1)``, which both lie
on the previous anti-diagonal ``i + j = k - 1``.  So the ``m + n - 1``
anti-diagonals are computed one after the other, each in a couple of tensor
operations over all its cells and over every trailing (batch) index at once.

Every cell still gets exactly the oracle's arithmetic, ``min(up, left)`` with
IEEE NaN propagation (``torch.minimum``) followed by one addition of
``d[i, j]``, so results are bitwise equal to the cell-by-cell recurrence.  The
missing neighbours of the first row and column are read from cells that hold
``+inf``; ``minimum(+inf, v)`` is ``v`` exactly (NaN included), so the first row
and column get the oracle's plain sums.

Two layouts, both indexed ``[k, r]`` with row ``r`` of diagonal ``k`` holding
cell ``(r - 1, k - r + 1)`` and row ``r = 0`` the ``+inf`` padding:

* value only (``_value``): two diagonals, only the matrix's cells, ``d`` read
  in place; the least memory traffic, for large batches.
* with gradient (``_table_forward``/``_table_flow``): ``d`` is first copied
  into a skewed ``+inf`` buffer, then every diagonal is computed over all
  ``m`` rows with fixed views, and the whole table is kept for the backward
  pass, which reuses its ``min`` decisions.
"""

import math
import threading

import torch

from ._autocast import float32_under_autocast
from ._checks import check_min_dims


def _diagonal(d, k, lo, count):
    """View of ``d[lo + t, k - lo - t, ...]`` for ``t < count``, no copy.

    Along an anti-diagonal ``i`` grows by one and ``j`` shrinks by one, so the
    cells are equally spaced in memory: stride ``s_i - s_j``.
    """
    s_i, s_j = d.stride(0), d.stride(1)
    return d.as_strided(
        (count,) + tuple(d.shape[2:]),
        (s_i - s_j,) + tuple(d.stride()[2:]),
        d.storage_offset() + lo * s_i + (k - lo) * s_j)


def _rows(k, m, n):
    """First row and number of cells of anti-diagonal ``k``."""
    lo = max(0, k - n + 1)
    return lo, min(k, m - 1) - lo + 1


def _value(d, work=None):
    """``S[m-1, n-1]`` of ``d`` with shape ``(m, n, *batch)``, strides with
    ``s_i >= s_j``.

    The value path (no gradient): only the cells of the matrix are computed,
    reading ``d`` in place through strided diagonal views, and only two
    diagonals are kept, in ``work`` (shape ``(2, m + 1, *batch)``, reusable
    by a caller that runs many blocks).  Diagonal ``k`` goes to buffer
    ``k % 2``; row ``r`` holds cell ``(r - 1, k - r + 1)``.
    """
    m, n, batch = d.shape[0], d.shape[1], tuple(d.shape[2:])
    steps = m + n - 1
    if work is None:
        work = torch.empty((2, m + 1) + batch, dtype=d.dtype, device=d.device)
    # The +inf neighbours: row 0 ("up" of the first row) and, for the cell
    # (k + 1, 0) of diagonal k + 1, row k + 2 of diagonal k, which no earlier
    # diagonal of the same parity has written.
    work[:, 0] = float("inf")
    work[0, 2::2] = float("inf")
    work[1, 3::2] = float("inf")
    result = torch.empty(batch, dtype=d.dtype, device=d.device)
    for k in range(steps):
        lo, count = _rows(k, m, n)
        prev = work[(k + 1) % 2]
        out = (result.unsqueeze(0) if k == steps - 1
               else work[k % 2, lo + 1:lo + 1 + count])
        diag = _diagonal(d, k, lo, count)
        if k == 0:
            out.copy_(diag)
        else:
            # up = S[i-1, j] is row r = i of prev, left = S[i, j-1] row i + 1.
            torch.minimum(prev[lo:lo + count], prev[lo + 1:lo + 1 + count],
                          out=out)
            out.add_(diag)
    return result


def _skewed_buffer(m, n, batch, like):
    """A ``(m + n - 1, m + 1, *batch)`` buffer of ``+inf`` and its
    ``[m, n, *batch]`` view: cell ``(i, j)`` sits at ``[i + j, i + 1]``.

    Writing ``d`` through the view lays it out by anti-diagonals; every cell
    the view does not reach stays ``+inf``, which is what the DP must read
    outside the matrix.
    """
    buf = torch.full((m + n - 1, m + 1) + tuple(batch), float("inf"),
                     dtype=like.dtype, device=like.device)
    return buf, _unskew(buf, m, n)


def _unskew(buf, m, n):
    """The ``[m, n, *batch]`` view of a skewed buffer (no copy)."""
    s_k, s_r = buf.stride(0), buf.stride(1)
    return buf.as_strided((m, n) + tuple(buf.shape[2:]),
                          (s_k + s_r, s_k) + buf.stride()[2:],
                          buf.storage_offset() + s_r)


def _table_forward(skewed):
    """The whole DP table, computed in place in a skewed buffer of ``d``
    (``_skewed_buffer``), which is returned: ``T[k, r] = S[r - 1, k - r + 1]``,
    row 0 ``+inf``.

    Every anti-diagonal is computed over all ``m`` rows, the cells outside
    the matrix included: they read ``+inf`` and never feed a cell inside (a
    cell reads only its up and left neighbours), so each diagonal is two
    whole-row operations on fixed views, no slicing per step.  Diagonal 0 is
    its own cell; ``d + min`` is ``min + d`` bit for bit (IEEE addition
    commutes), so overwriting ``d`` needs no copy of it.
    """
    m = skewed.shape[1] - 1
    scratch = torch.empty_like(skewed[0, 1:])
    up, left = skewed[:, :m].unbind(0), skewed[:, 1:].unbind(0)
    minimum = torch.minimum
    # Row r of diagonal k is cell (r - 1, k - r + 1): its "up" neighbour is
    # row r - 1 of diagonal k - 1, its "left" neighbour row r.
    for prev_up, prev_left, out in zip(up, left, left[1:]):
        minimum(prev_up, prev_left, out=scratch)
        out.add_(scratch)
    return skewed


class _FlowScratch(threading.local):
    """Per-thread buffers of ``_table_flow`` for the next call of the same
    shape.  Allocating them and making their per-diagonal views (about sixty
    for 8 x 8 stripes) cost about a tenth of a whole training step on the CPU."""

    key = None
    buffers = None


_flow_scratch = _FlowScratch()

# Tables up to this many elements (4 MiB of float32) use the scratch: beyond,
# allocation is small next to the arithmetic, and the scratch would hold on to
# a large buffer for good.
_SCRATCH_MAX_ELEMENTS = 1 << 20


def _flow_buffers(table, reuse):
    """``(flow, its seeded cell, w_up, w_left, views of the first row and
    column of w_up and of w_left, views of the reverse loop)``.

    ``reuse`` takes them from the per-thread scratch, for small tables on the
    CPU only (on a GPU a buffer reused across calls could race with work on
    another stream) and never under ``torch.inference_mode`` (buffers made
    there could not be written outside it).
    """
    key = (table.shape, table.dtype, table.device)
    reuse = (reuse and table.device.type == "cpu"
             and table.numel() <= _SCRATCH_MAX_ELEMENTS
             and not torch.is_inference_mode_enabled())
    if reuse and _flow_scratch.key == key:
        return _flow_scratch.buffers
    steps, m = table.shape[0], table.shape[1] - 1
    flow = torch.empty_like(table)
    w_up, w_left = table.new_empty((2, steps - 1, m) + tuple(table.shape[2:]))
    to_up, to_left = flow[:, :m].unbind(0), flow[:, 1:].unbind(0)
    # Diagonal k (``to_left[k]``, rows 1..m) feeds diagonal k - 1.
    loop = tuple(zip(to_left[:0:-1], to_up[-2::-1], to_left[-2::-1],
                     w_up.unbind(0)[::-1], w_left.unbind(0)[::-1]))
    # The shares of the first row (t = 0: no cell above) and of the first
    # column (cell (k + 1, 0) at [k, k + 1]: no cell to the left), up and left.
    edges = tuple((w[:, 0], w.diagonal(1, 0, 1)) for w in (w_up, w_left))
    buffers = flow, flow[steps - 1, m], w_up, w_left, edges, loop
    if reuse:
        _flow_scratch.key, _flow_scratch.buffers = key, buffers
    return buffers


def _table_flow(table, seed, scale=1, reuse=False):
    """Reverse pass of ``_table_forward``: the gradient of ``S[m-1, n-1]``
    times ``seed * scale`` (``seed`` a number or a tensor of shape
    ``batch``), in the skewed layout.

    Each cell sends its gradient to the neighbour that won the ``min``, half
    to each on an exact tie (the ``torch.minimum`` rule), so for ``seed = 1``
    the result is a unit flow.  A NaN comparison sends it nowhere (none of
    ``<``, ``>``, ``==`` holds), as the oracle's reverse pass does; the
    forward value is NaN there anyway.  The first row sends everything left
    and the first column everything up, whatever the values: compared with
    the ``+inf`` padding, a ``+inf`` cell would tie and leak half of the flow
    out of the matrix.  So cells outside the matrix receive nothing.

    With ``reuse`` the result lives in a per-thread scratch buffer that the
    next call overwrites: only for a caller that consumes it at once.
    """
    m = table.shape[1] - 1
    flow, seeded, w_up, w_left, edges, loop = _flow_buffers(table, reuse)
    if loop:
        up, left = table[:-1, :m], table[:-1, 1:]
        # The shares of all diagonals at once, straight into float buffers
        # (a bool operand would make an add several times slower): 1 to the
        # smaller side, 0.5 each on a tie, and 0 to both where a NaN makes
        # every comparison false (the gradient goes nowhere from there).
        (up_row, up_col), (left_row, left_col) = edges
        torch.lt(up, left, out=w_up).add_(
            torch.eq(up, left, out=w_left), alpha=0.5)
        up_row.zero_()
        up_col.fill_(1)
        if _nan_free_on_cpu(table[-1, m]):
            torch.sub(1, w_up, out=w_left)  # the same, where no NaN is compared
        else:
            greater = flow[:-1, :m]  # scratch: the flow is zeroed below
            torch.eq(up, left, out=w_left).mul_(0.5).add_(
                torch.gt(up, left, out=greater))
            left_row.fill_(1)
            left_col.zero_()
    flow.zero_()
    factor = None
    if torch.is_tensor(seed) and not _all_finite_on_cpu(seed):
        # A non-finite seed would meet the zero shares off the path (inf * 0
        # is NaN): its matrix gets a unit flow here, times the seed at the end.
        finite = torch.isfinite(seed)
        seed, factor = (torch.where(finite, seed, 1),
                        torch.where(finite, 1, seed))
    seeded.add_(seed, alpha=scale)  # sets it: 0 + scale * seed
    if loop:
        for g, up_k, left_k, w_u, w_l in loop:
            up_k.addcmul_(g, w_u)
            left_k.addcmul_(g, w_l)
    return flow if factor is None else _times_where_flowing(flow, factor)


def _nan_free_on_cpu(values):
    """True for a CPU tensor of formula 2's values free of NaN: then so is its
    whole table (a NaN spreads to every cell after it, the last one
    included). One sum is the cheapest test: NaN only with a NaN in it, or
    with +inf and -inf values, where the NaN-proof shares are right as well.
    On a GPU the answer would cost a synchronisation, so the NaN-proof shares
    (two more element-wise operations) are always taken there."""
    return values.device.type == "cpu" and not math.isnan(values.sum().item())


def _all_finite_on_cpu(seed):
    """True for a CPU tensor of finite values: its flow needs no correction.
    One sum is the cheapest test (one that overflows only costs the
    correction, which is right for finite seeds too). On a GPU the answer
    would cost a synchronisation, so the correction (a few element-wise
    operations, queued) always runs there."""
    return seed.device.type == "cpu" and math.isfinite(seed.sum().item())


def _times_where_flowing(flow, factor):
    """``flow * factor`` (``factor`` broadcast over the batch dimensions), but
    exactly 0 where nothing flows, also for an infinite or NaN ``factor``: the
    gradient is the path's indicator times ``grad_out``, 0 off the path."""
    return torch.where(flow != 0, flow * factor, flow)


def _unit_flow(table, m, n, seed=1, scale=1, reuse=False):
    """``_table_flow`` as the ``[m, n, *batch]`` gradient of ``d``."""
    return _unskew(_table_flow(table, seed, scale, reuse), m, n)


class _ShortestDist(torch.autograd.Function):
    """Formula 2 with an explicit backward pass (fewer, larger operations
    than recording every anti-diagonal step in the autograd graph)."""

    @staticmethod
    def forward(ctx, d):
        if not ctx.needs_input_grad[0]:
            if d.stride(0) < d.stride(1):
                # _value steps along a diagonal by s_i - s_j, and torch has no
                # negative strides (d.t(), a row-expanded d): the transpose has
                # the same paths, each summed in the same order, so the same value.
                d = d.transpose(0, 1)
            return _value(d)
        m, n = d.shape[0], d.shape[1]
        skewed, cells = _skewed_buffer(m, n, d.shape[2:], d)
        cells.copy_(d)
        table = _table_forward(skewed)
        ctx.save_for_backward(table)
        ctx.dims = m, n
        return table[-1, m].clone()

    @staticmethod
    @float32_under_autocast
    def backward(ctx, grad_out):
        (table,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            # Double backward: the flow does not depend on d almost everywhere
            # (piecewise linear), so flow * grad_out is the exact graph.
            with torch.no_grad():
                flow = _unit_flow(table, *ctx.dims)
            return _times_where_flowing(flow, grad_out)
        return _unit_flow(table, *ctx.dims, seed=grad_out)


@float32_under_autocast
def shortest_dist(dist_mat):
    """Shortest monotone path through stripe distances (formula 2).

    Parameters
    ----------
    dist_mat : Tensor, shape (m, n) or (m, n, *batch)
        Stripe distances ``d[i, j]``; float32 or float64, any device.

    Returns
    -------
    Tensor, shape () or batch
        ``S[m-1, n-1]`` for every trailing index, same dtype and device,
        differentiable through autograd (ties split the gradient in half).

    Examples
    --------
    >>> import torch, torch_impl
    >>> d = torch.tensor([[0.1, 0.9], [0.2, 0.3]])
    >>> float(torch_impl.shortest_dist(d))  # 0.1 -> 0.2 -> 0.3
    0.6000000238418579
    """
    check_min_dims("shortest_dist", "dist_mat", dist_mat, 2, "(m, n, *)")
    return _ShortestDist.apply(dist_mat)
