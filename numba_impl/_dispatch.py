"""Pick the kernel module for a target: ``cpu`` (``@njit``) or ``gpu`` (``@cuda.jit``); and
``follows_torch``, which puts the GPU work of a call that gets torch CUDA tensors on
torch's stream and allocator."""
import functools
import sys

from . import cpu


def backend(target):
    if target == "gpu":
        from . import gpu  # imported on first GPU use only

        return gpu
    return cpu


def _torch_cuda_device(values):
    """The device of the first torch CUDA tensor among ``values``, else None."""
    torch = sys.modules.get("torch")  # a caller holding tensors has imported torch
    if torch is None:
        return None
    for value in values:
        if isinstance(value, torch.Tensor) and value.is_cuda:
            return value.device
    return None


def _plain(value, torch):
    if isinstance(value, torch.Tensor) and value.is_cuda:
        return value.detach().contiguous()  # a copy only where the layout needs one
    return value


def follows_torch(func):
    """Run ``func`` on torch's current CUDA stream, with torch's caching allocator, when an
    argument is a torch CUDA tensor; such tensors are passed detached and C-contiguous.

    Without it the kernels would run on the default stream, unordered with torch's work
    under ``torch.cuda.stream(s)``, and allocate through Numba. Other arguments pass as
    they are; the setting is per thread (``gpu.context``).
    """
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        device = _torch_cuda_device(args + tuple(kwargs.values()))
        if device is None:
            return func(*args, **kwargs)
        import torch

        from .gpu.context import torch_launches

        args = tuple(_plain(a, torch) for a in args)
        kwargs = {k: _plain(v, torch) for k, v in kwargs.items()}
        with torch_launches(device):
            return func(*args, **kwargs)

    return wrapper
