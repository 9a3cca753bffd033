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

Table layout: ``T[k, r]`` holds ``S[r - 1, k - r + 1]``; row ``r = 0`` is the
``+inf`` padding that the first row reads as its "up" neighbour, and the cell
``(k, 0)`` of diagonal ``k`` reads its "left" neighbour from row ``k + 1`` of
diagonal ``k - 1``, which is set to ``+inf`` when that diagonal is computed.
"""

import torch

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


def _forward(d, keep_table, work=None):
    """Run the recurrence on ``d`` of shape ``(m, n, *batch)``, any strides.

    Returns ``(S[m-1, n-1], table)``: the result with shape ``batch`` and,
    when ``keep_table``, the whole skewed table of shape
    ``(m + n - 1, m + 1, *batch)`` that the backward pass needs (else
    ``None``).  Without the table only two diagonals are kept, in ``work``
    (shape ``(2, m + 1, *batch)``) when the caller reuses a buffer.
    """
    m, n, batch = d.shape[0], d.shape[1], tuple(d.shape[2:])
    steps = m + n - 1
    shape = ((steps if keep_table else 2), m + 1) + batch
    if work is None:
        work = torch.empty(shape, dtype=d.dtype, device=d.device)
    work[:, 0] = float("inf")
    for k in range(steps):
        prev = work[(k - 1) if keep_table else (k + 1) % 2]
        cur = work[k if keep_table else k % 2]
        lo, count = _rows(k, m, n)
        diag = _diagonal(d, k, lo, count)
        out = cur[lo + 1:lo + 1 + count]
        if k == 0:
            out.copy_(diag)
        else:
            # up = S[i-1, j] is row r = i of prev, left = S[i, j-1] row i + 1.
            torch.minimum(prev[lo:lo + count], prev[lo + 1:lo + 1 + count],
                          out=out)
            out.add_(diag)
        if k + 2 <= m:
            # Row i = k + 1 is the missing left neighbour of cell (k + 1, 0).
            cur[k + 2] = float("inf")
    last = work[(steps - 1) if keep_table else (steps - 1) % 2, m]
    return last.clone(), (work if keep_table else None)


def _unit_flow(table, m, n):
    """Gradient of ``S[m-1, n-1]`` with respect to every ``d[i, j]``.

    The reverse recurrence: each cell sends its gradient to the neighbour that
    won the ``min``, half to each on an exact tie (the ``torch.minimum`` rule),
    so the result is a unit flow.  A NaN comparison sends nothing to "up" and
    everything to "left" (neither ``<`` nor ``==`` holds); the forward value is
    NaN there anyway.  Returns shape ``(m, n, *batch)``.
    """
    steps = m + n - 1
    batch = tuple(table.shape[2:])
    flow = torch.zeros((steps, m + 1) + batch, dtype=table.dtype,
                       device=table.device)
    flow[steps - 1, m] = 1
    if steps > 1:
        up, left = table[:-1, :m], table[:-1, 1:]
        # Weight of the "up" neighbour for the cell in row i of diagonal k:
        # w_up[k - 1, i].  Padding cells are +inf, so edges get 0 or 1.
        w_up = (up < left).to(table.dtype)
        w_up.add_((up == left).to(table.dtype), alpha=0.5)
        w_left = 1 - w_up
        for k in range(steps - 1, 0, -1):
            g = flow[k, 1:]
            flow[k - 1, :m].addcmul_(g, w_up[k - 1])
            flow[k - 1, 1:].addcmul_(g, w_left[k - 1])
    # Un-skew: d[i, j] sits at T[i + j, i + 1].
    s_k, s_r = flow.stride(0), flow.stride(1)
    return flow.as_strided(
        (m, n) + batch, (s_k + s_r, s_k) + flow.stride()[2:], s_r)


class _ShortestDist(torch.autograd.Function):
    """Formula 2 with an explicit backward pass (fewer, larger operations
    than recording every anti-diagonal step in the autograd graph)."""

    @staticmethod
    def forward(ctx, d):
        need_grad = ctx.needs_input_grad[0]
        out, table = _forward(d, keep_table=need_grad)
        if need_grad:
            ctx.save_for_backward(table)
            ctx.dims = d.shape[0], d.shape[1]
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (table,) = ctx.saved_tensors
        flow = _unit_flow(table, *ctx.dims)
        # The flow does not depend on d almost everywhere (piecewise linear), so
        # this product is also the exact graph for double backward.
        return flow * grad_out


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
    >>> import torch
    >>> d = torch.tensor([[0.1, 0.9], [0.2, 0.3]])
    >>> float(shortest_dist(d))  # 0.1 -> 0.2 -> 0.3
    0.6000000238418579
    """
    check_min_dims("shortest_dist", "dist_mat", dist_mat, 2, "(m, n, *)")
    return _ShortestDist.apply(dist_mat)
