"""torch.autograd bridge: the Numba kernels as differentiable torch operations.

``shortest_dist``, ``batch_local_dist`` and ``local_dist`` take torch tensors (CPU or
CUDA) and return tensors; forward and backward both run numba_impl's kernels. No copies
where avoidable: CPU tensors are viewed with ``.numpy()``; CUDA tensors are wrapped
through ``__cuda_array_interface__``, the kernels are launched on torch's current stream
(so they order correctly with surrounding torch work, on whichever thread autograd runs
the backward pass) and their results live in torch's caching allocator.

First order only: autograd cannot record the Numba kernels of the backward passes, so a
backward pass asked to build a graph (``create_graph=True``, as a gradient penalty needs)
raises a ``RuntimeError`` rather than return a gradient without one. ``torch_impl``
supports double backward.

Example
-------
>>> import torch, numba_impl.autograd as nba
>>> d = torch.tensor([[0.1, 0.9], [0.2, 0.1]], dtype=torch.float64, requires_grad=True)
>>> nba.shortest_dist(d).backward()
>>> d.grad
tensor([[1., 0.],
        [1., 1.]], dtype=torch.float64)
"""
import contextlib
import functools

import numpy as np
import torch

from . import _checks, cpu
from . import local as _local
from . import path as _path


_FLOAT_DTYPES = (torch.float32, torch.float64)
_HALF_DTYPES = (torch.float16, torch.bfloat16)
# The device types whose autocast the bridge meets: CPU and CUDA tensors.
_AUTOCAST_DEVICES = ("cpu", "cuda")


def _check_tensor(func, name, value):
    """A dense float32/float64 tensor with data; half precision only inside autocast,
    where the Functions cast it to float32 (``_float32_forward``)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{func}: {name} must be a torch.Tensor; got {type(value).__name__}")
    if value.is_meta or value.layout != torch.strided:
        kind = "meta" if value.is_meta else str(value.layout)
        raise TypeError(f"{func}: {name} must be a dense tensor with data, on the CPU or a "
                        f"CUDA device; got a {kind} tensor")
    autocast = value.dtype in _HALF_DTYPES and torch.is_autocast_enabled(value.device.type)
    if value.dtype not in _FLOAT_DTYPES and not autocast:
        hint = ("; compute in float32: call .float() on it, or call inside torch.autocast"
                if value.dtype in _HALF_DTYPES else "")
        raise TypeError(f"{func}: {name} must have dtype torch.float32 or torch.float64; "
                        f"got {value.dtype}{hint}")
    return value


def _float32_forward(forward):
    """``torch.amp.custom_fwd(cast_inputs=torch.float32)`` for every device type: inside
    autocast, float16 and bfloat16 inputs are computed in float32 (and give float32)."""
    for device in _AUTOCAST_DEVICES:
        forward = torch.amp.custom_fwd(forward, device_type=device, cast_inputs=torch.float32)
    return forward


def _to_numba(tensor):
    """Zero-copy view: ``ndarray`` for a CPU tensor, Numba device array for a CUDA tensor."""
    tensor = tensor.detach().contiguous()
    if tensor.is_cuda:
        from numba import cuda

        return cuda.as_cuda_array(tensor)
    return tensor.numpy()


def _to_torch(array, like):
    """Back to torch on the device of ``like``; device memory is shared, not copied."""
    if like.is_cuda:
        return torch.as_tensor(array, device=like.device)
    return torch.from_numpy(np.asarray(array))  # np.asarray: a 0-d result may be a scalar


def _stream_of(tensor):
    """GPU work on torch's current stream and allocator (``gpu.context``), for this thread."""
    if not tensor.is_cuda:
        return contextlib.nullcontext()
    from .gpu import context as _gpu_context

    return _gpu_context.torch_launches(tensor.device)


def _first_order(func):
    """Decorate a ``backward`` to refuse building a graph for a second derivative.

    Without this the gradient would carry no graph, and a gradient penalty would silently
    count as a constant. ``once_differentiable`` refuses only when the incoming gradient
    needs a graph, not for ``autograd.grad(out.sum(), x, create_graph=True)``.
    """
    def decorate(backward):
        @functools.wraps(backward)
        def first_order_backward(ctx, *grads):
            if torch.is_grad_enabled():  # the engine enables it for create_graph=True only
                raise RuntimeError(
                    f"{func}: numba_impl.autograd has no second derivative (autograd cannot "
                    "record its Numba kernels); got a backward pass with create_graph=True. "
                    "Use torch_impl for double backward (gradient penalties).")
            return backward(ctx, *grads)
        return first_order_backward
    return decorate


def _run(func, like, *tensors):
    with _stream_of(like):
        return func(*(_to_numba(t) for t in tensors))


class ShortestDist(torch.autograd.Function):
    """Formula 2 (``numba_impl.shortest_dist``) with its reverse-pass gradient."""

    @staticmethod
    @_float32_forward
    def forward(ctx, dist_mat):
        ctx.save_for_backward(dist_mat)
        return _to_torch(_run(_path.shortest_dist, dist_mat, dist_mat), dist_mat)

    @staticmethod
    @_first_order("shortest_dist")
    def backward(ctx, grad_out):
        (dist_mat,) = ctx.saved_tensors
        grad = _run(_path.shortest_dist_vjp, dist_mat, dist_mat, grad_out.to(dist_mat.dtype))
        return _to_torch(grad, dist_mat)


class BatchLocalDist(torch.autograd.Function):
    """``numba_impl.batch_local_dist`` with ``batch_local_dist_vjp`` as its backward.

    On the CPU the forward keeps formula 1 and the table of formula 2 (``cpu.batch_local_forward``),
    so the backward computes no distance again: in a training step (128 pairs, 8x8 stripes)
    the recomputation cost as much as the whole forward.
    """

    @staticmethod
    @_float32_forward
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)  # also makes autograd refuse x, y changed in place
        if x.is_cuda:
            ctx.kept = None
            return _to_torch(_run(_local.batch_local_dist, x, x, y), x)
        _, xa, ya = _checks.batch_pair("batch_local_dist", _to_numba(x), _to_numba(y))
        out, kept = cpu.batch_local_forward(xa, ya)
        ctx.kept = xa, ya, kept
        return torch.from_numpy(out)

    @staticmethod
    @_first_order("batch_local_dist")
    def backward(ctx, grad_out):
        x, y = ctx.saved_tensors  # unpacking checks that x, y were not changed in place
        if grad_out.dtype != x.dtype:  # a no-op .to() still cost microseconds a step
            grad_out = grad_out.to(x.dtype)
        if ctx.kept is None:
            grad_x, grad_y = _run(_local.batch_local_dist_vjp, x, x, y, grad_out)
            return _to_torch(grad_x, x), _to_torch(grad_y, x)
        grad_x, grad_y = cpu.batch_local_backward(*ctx.kept, grad_out.detach().numpy())
        return torch.from_numpy(grad_x), torch.from_numpy(grad_y)


class LocalDist(torch.autograd.Function):
    """``numba_impl.local_dist`` with ``local_dist_vjp`` as its backward."""

    @staticmethod
    @_float32_forward
    def forward(ctx, x, y, chunk_size, progress):
        ctx.save_for_backward(x, y)
        with _stream_of(x):
            out = _local.local_dist(_to_numba(x), _to_numba(y), chunk_size=chunk_size,
                                    progress=progress)
        return _to_torch(out, x)

    @staticmethod
    @_first_order("local_dist")
    def backward(ctx, grad_out):
        x, y = ctx.saved_tensors
        grad_x, grad_y = _run(_local.local_dist_vjp, x, x, y, grad_out.to(x.dtype))
        return _to_torch(grad_x, x), _to_torch(grad_y, x), None, None


def shortest_dist(dist_mat):
    """Formula 2 on a tensor of shape ``(m, n)`` or ``(m, n, *)``; differentiable.

    Parameters
    ----------
    dist_mat : torch.Tensor, shape (m, n) or (m, n, *), float32 or float64, CPU or CUDA

    Returns
    -------
    torch.Tensor, shape () or (*)
    """
    return ShortestDist.apply(_check_tensor("shortest_dist", "dist_mat", dist_mat))


def batch_local_dist(x, y):
    """Local distance of each aligned pair ``x[k]``, ``y[k]``; differentiable.

    Parameters
    ----------
    x : torch.Tensor, shape (N, m, d), float32 or float64, CPU or CUDA
    y : torch.Tensor, shape (N, n, d), same dtype and device

    Returns
    -------
    torch.Tensor, shape (N,)
    """
    _check_tensor("batch_local_dist", "x", x)
    return BatchLocalDist.apply(x, _check_tensor("batch_local_dist", "y", y))


def local_dist(x, y, *, chunk_size=None, progress=False):
    """Local distance of every pair of ``x`` and ``y``; differentiable.

    Parameters
    ----------
    x : torch.Tensor, shape (M, m, d), float32 or float64, CPU or CUDA
    y : torch.Tensor, shape (N, n, d), same dtype and device
    chunk_size, progress : as in ``numba_impl.local_dist``

    Returns
    -------
    torch.Tensor, shape (M, N)
    """
    _check_tensor("local_dist", "x", x)
    return LocalDist.apply(x, _check_tensor("local_dist", "y", y), chunk_size, progress)
