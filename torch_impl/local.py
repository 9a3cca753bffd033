"""The local distance: formula 1 on every stripe pair, then formula 2.

Two routes to the same numbers:

* ``batch_local_dist`` (training: pair ``k`` of x with pair ``k`` of y) is one
  autograd node with a hand-written backward pass, so a training step costs a
  few dozen tensor operations instead of an autograd graph per DP step.
* ``local_dist`` (query x gallery) works block by block, so memory stays
  bounded however large M and N are.  Without gradients each block is done
  in place: one matrix product of stripes, then clamp, sqrt and tanh on the
  product's buffer, then the DP reading that buffer through strided views.
  With gradients each block is an ordinary differentiable computation.

Both scale the squared distance by 1/4 before the square root (alpha=-0.5 and
norms times 0.25), which gives ``x / 2`` for ``tanh`` directly; scaling by a
power of two is exact, so this changes no bit of the result.
"""

import torch
import torch.nn.functional as F

from alignedreid_dp import progress as _progress

from . import _checks
from ._autocast import float32_under_autocast
from .distance import (SQ_DIST_CLAMP, _batch_sq_dist, _expansion_is_safe,
                       _redo_overflowed, _squared_norms)
from .path import (_value, _ShortestDist, _skewed_buffer, _table_forward,
                   _times_where_flowing, _unit_flow)

# Elements of one block of stripe distances (M_chunk * m * N_chunk * n).
# 4 Mi float32 = 16 MiB fits in a CPU's last-level cache, so the in-place
# passes after the product run from cache; a GPU wants fewer, larger blocks.
_BLOCK_ELEMENTS = {"cpu": 1 << 22, "cuda": 1 << 26}

# Per dtype, the largest number below SQ_DIST_CLAMP / 4: ``q > it`` is ``q >= SQ_DIST_CLAMP
# / 4`` in that dtype, the cells where the clamp is not active.
_BELOW_CLAMP = {
    dtype: torch.nextafter(torch.tensor(SQ_DIST_CLAMP / 4, dtype=dtype),
                           torch.tensor(0.0, dtype=dtype)).item()
    for dtype in (torch.float32, torch.float64)}


class _BatchLocalDist(torch.autograd.Function):
    """``batch_local_dist`` as one node.  Forward copies formula 1 into the
    DP's skewed layout, computes the table there in place and saves it;
    backward chains the path flow -> tanh' -> sqrt' (zero under the clamp)
    -> two batched products."""

    @staticmethod
    def forward(ctx, x, y):
        (N, m, _), n = x.shape, y.shape[1]
        # Squared distances / 4 (exact scaling), so that sqrt gives e / 2.
        # The norms by one fused reduction each: no [N, m, d] temporary.
        xx, yy = _squared_norms_fused(x), _squared_norms_fused(y)
        quarter = torch.baddbmm(yy.unsqueeze(1), x, y.transpose(1, 2),
                                beta=0.25, alpha=-0.5)
        quarter.add_(xx.unsqueeze(2), alpha=0.25)
        if not _expansion_is_safe(xx, yy):  # huge or infinite features
            quarter = _redo_overflowed(quarter, x, y, 0.25)
        skewed, cells = _skewed_buffer(m, n, (N,), x)
        # Formula 1 written straight into the DP's skewed layout: the clamp
        # writes there, sqrt and tanh follow in place (no intermediate, no
        # copy; the same operations, so the same bits).
        stripe = cells.permute(2, 0, 1)
        torch.clamp_min(quarter, SQ_DIST_CLAMP / 4, out=stripe).sqrt_().tanh_()
        if not any(ctx.needs_input_grad):
            return _value(cells)
        # d tanh(e/2)/d sq = (1 - t^2) / (4 e) = (1 - t^2) / (8 half), with
        # half = e / 2; the backward pass applies the constant, so keep
        # (1 - t^2) / half, and 0 where the clamp is active: there the divisor
        # is +inf (threshold keeps exactly the quarters >= SQ_DIST_CLAMP / 4, where
        # sqrt gives half).  ones_like(quarter) first: slope comes out
        # contiguous, the layout the products of the backward pass want.
        slope = torch.addcmul(torch.ones_like(quarter), stripe, stripe,
                              value=-1)
        slope.div_(F.threshold(quarter, _BELOW_CLAMP[quarter.dtype],
                                   float("inf")).sqrt_())
        table = _table_forward(skewed)
        ctx.save_for_backward(x, y, slope, table)
        return table[-1, m].clone()

    @staticmethod
    @float32_under_autocast
    def backward(ctx, grad_out):
        x, y, slope, table = ctx.saved_tensors
        m, n = x.shape[1], y.shape[1]
        if torch.is_grad_enabled():
            return _double_backward(ctx, x, y, table, grad_out)
        # Seeding the flow with -grad_out / 4 folds the constant and a sign
        # in: w = flow * slope = -2 d loss / d sq, shape [N, m, n].
        # The flow is consumed by the product below, so it may live in the
        # reusable scratch buffer.
        flow = _unit_flow(table, m, n, seed=grad_out, scale=-0.25, reuse=True)
        # slope first: the product takes its contiguous layout (bmm is slow
        # on other strides).
        w = torch.mul(slope, flow.permute(2, 0, 1))
        # sq = |x_i|^2 + |y_j|^2 - 2 x_i.y_j, so grad_x_i = sum_j -w_ij (x_i -
        # y_j): one product plus an in-place update per input.
        grad_x = grad_y = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(w, y).addcmul_(w.sum(2, keepdim=True), x,
                                              value=-1)
        if ctx.needs_input_grad[1]:
            grad_y = torch.bmm(w.transpose(1, 2), x).addcmul_(
                w.sum(1).unsqueeze(2), y, value=-1)
        return grad_x, grad_y


def _squared_norms_fused(x):
    """``|x_i|^2`` along the last axis by one fused reduction (no ``x * x``
    temporary, unlike ``distance._squared_norms``), without autograd (the
    gradient of the norm is NaN at 0)."""
    return torch.linalg.vector_norm(x, dim=-1).square_()


def _double_backward(ctx, x, y, table, grad_out):
    """Backward as a graph (double backward): formula 1 rebuilt on x, y."""
    with torch.no_grad():
        flow = _unit_flow(table, x.shape[1], y.shape[1]).permute(2, 0, 1)
    grad_stripe = _times_where_flowing(flow, grad_out[:, None, None])
    wanted = [t for t, need in zip((x, y), ctx.needs_input_grad) if need]
    with torch.enable_grad():
        again = torch.tanh(_batch_sq_dist(x, y).clamp(min=SQ_DIST_CLAMP).sqrt() * 0.5)
        grads = iter(torch.autograd.grad(again, wanted, grad_stripe,
                                         create_graph=True))
    return tuple(next(grads) if need else None
                 for need in ctx.needs_input_grad)


@float32_under_autocast
def batch_local_dist(x, y):
    """Local distance of each pair ``(x[k], y[k])``.

    Parameters
    ----------
    x : Tensor, shape (N, m, d)
    y : Tensor, shape (N, n, d)
        Same dtype (float32 or float64) and device as ``x``.

    Returns
    -------
    Tensor, shape (N,)
        Formula 1 on every stripe pair, then formula 2; differentiable.

    Examples
    --------
    >>> import torch, torch_impl
    >>> x = torch.zeros(1, 2, 3)
    >>> # 3 cells on the path, each tanh(1e-6 / 2): identical stripes are 1e-6 apart
    >>> round(float(torch_impl.batch_local_dist(x, x)), 9)
    1.5e-06
    """
    fn = "batch_local_dist"
    _checks.check_batch_pair(fn, x, y)
    return _BatchLocalDist.apply(x, y)


def _block_sizes(M, N, m, n, chunk_size, device):
    """Queries and gallery images per block (see ``_BLOCK_ELEMENTS``)."""
    budget = _BLOCK_ELEMENTS.get(device.type, _BLOCK_ELEMENTS["cuda"])
    per_pair = m * n
    if chunk_size is None:
        # Square-ish blocks: a gallery block of at most 4096 images.
        chunk_size = max(1, budget // (per_pair * min(N, 4096)))
    rows = min(M, chunk_size)
    cols = min(N, max(1, budget // (per_pair * rows)))
    return rows, cols


def _stripe_block(xt, yt, xx, yy, differentiable, safe=True):
    """Stripe distances of one block, as a ``[m, n, Mc, Nc]`` view.

    ``xt`` is ``[m, Mc, d]`` and ``yt`` is ``[n, Nc, d]`` (stripe-major), so
    the product's ``[m*Mc, n*Nc]`` result holds cell ``(i, j)`` as a block of
    contiguous rows; the DP reads it through a permuted view, no copy.
    ``xx``/``yy`` are the squared norms already scaled by 1/4.  Unless
    ``safe``, entries where the expansion overflowed are recomputed.
    """
    m, mc, dim = xt.shape
    n, nc = yt.shape[0], yt.shape[1]
    a, b = xt.reshape(m * mc, dim), yt.reshape(n * nc, dim)
    prod = torch.addmm(yy.reshape(1, n * nc), a, b.t(), alpha=-0.5)
    if differentiable:
        quarter = prod + xx.reshape(m * mc, 1)
        if not safe:
            quarter = _redo_overflowed(quarter, a, b, 0.25)
        stripe = torch.tanh(quarter.clamp(min=SQ_DIST_CLAMP / 4).sqrt())
    else:
        quarter = prod.add_(xx.reshape(m * mc, 1))
        if not safe:
            quarter = _redo_overflowed(quarter, a, b, 0.25)
        stripe = quarter.clamp_min_(SQ_DIST_CLAMP / 4).sqrt_().tanh_()
    return stripe.view(m, mc, n, nc).permute(0, 2, 1, 3)


@float32_under_autocast
def local_dist(x, y, *, chunk_size=None, progress=False):
    """Local distance between every query ``x[a]`` and gallery image ``y[b]``.

    Parameters
    ----------
    x : Tensor, shape (M, m, d)
        Query stripe features.
    y : Tensor, shape (N, n, d)
        Gallery stripe features, same dtype and device as ``x``.
    chunk_size : int, optional
        Query images per block.  ``None`` picks blocks of about 16 MiB on CPU
        (256 MiB on GPU) of stripe distances, so peak memory is the ``[M, N]``
        result plus a few blocks, whatever M and N are.
    progress : bool, default False
        Report the finished pairs on stderr (``alignedreid_dp.progress``).

    Returns
    -------
    Tensor, shape (M, N)
        Formula 1 then formula 2 for every pair; differentiable.

    Examples
    --------
    >>> import torch, torch_impl
    >>> x = torch.zeros(2, 3, 4)
    >>> torch_impl.local_dist(x, x).shape
    torch.Size([2, 2])
    """
    fn = "local_dist"
    _checks.check_feature_pair(fn, x, y, "(M, m, d)", "(N, n, d)", 3)
    chunk_size = _checks.check_chunk_size(fn, chunk_size)
    _checks.check_progress(fn, progress)
    (M, m, _), (N, n, _) = x.shape, y.shape
    rows, cols = _block_sizes(M, N, m, n, chunk_size, x.device)
    differentiable = torch.is_grad_enabled() and (
        x.requires_grad or y.requires_grad)
    # Stripe-major copies (small next to the result) make each block's
    # operands plain slices.
    xt, yt = x.transpose(0, 1), y.transpose(0, 1).contiguous()
    xx, yy = _squared_norms(xt), _squared_norms(yt)
    safe = _expansion_is_safe(xx, yy)  # else some blocks recompute overflowed entries
    xx, yy = 0.25 * xx, 0.25 * yy
    with _progress.report(fn, M * N, progress) as shown:
        if differentiable:
            blocks = []
            for q in range(0, M, rows):
                row = []
                for g in range(0, N, cols):
                    d = _stripe_block(xt[:, q:q + rows], yt[:, g:g + cols],
                                      xx[:, q:q + rows], yy[:, g:g + cols], True,
                                      safe)
                    row.append(_ShortestDist.apply(d))
                    shown.update(d.shape[2] * d.shape[3])
                blocks.append(torch.cat(row, dim=1))
            return torch.cat(blocks, dim=0)
        out = torch.empty((M, N), dtype=x.dtype, device=x.device)
        work = torch.empty((2, m + 1, rows, cols), dtype=x.dtype,
                           device=x.device)
        with torch.no_grad():
            for q in range(0, M, rows):
                xq = xt[:, q:q + rows].contiguous()
                for g in range(0, N, cols):
                    d = _stripe_block(xq, yt[:, g:g + cols], xx[:, q:q + rows],
                                      yy[:, g:g + cols], False, safe)
                    full = d.shape[2:] == work.shape[2:]
                    res = _value(d, work if full else None)
                    out[q:q + rows, g:g + cols] = res
                    shown.update(d.shape[2] * d.shape[3])
        return out


def pair_local_dist(x, y):
    """Local distance of one pair of images (an optional extra of the contract).

    Parameters
    ----------
    x : Tensor, shape (m, d)
    y : Tensor, shape (n, d)
        Same dtype (float32 or float64) and device as ``x``.

    Returns
    -------
    Tensor, shape ()
        ``batch_local_dist(x[None], y[None])[0]``; differentiable.

    Examples
    --------
    >>> import torch, torch_impl
    >>> round(float(torch_impl.pair_local_dist(torch.zeros(2, 3), torch.zeros(2, 3))), 9)
    1.5e-06
    """
    _checks.check_feature_pair("pair_local_dist", x, y, "(m, d)", "(n, d)", 2)
    return batch_local_dist(x[None], y[None])[0]
