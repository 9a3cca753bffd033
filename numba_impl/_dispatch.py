"""The targets and their backends (``_backend.Backend``: ``numba_impl.cpu`` or
``numba_impl.gpu``), and ``follows_torch``, which puts the GPU work of a call that gets
torch CUDA tensors on torch's stream and allocator."""
import functools
import importlib
import sys

#: The targets: a NumPy array runs on the CPU, a CUDA array on the GPU (``_checks.as_target``).
CPU, GPU = "cpu", "gpu"
#: The backend module of each target; the GPU's is imported on first GPU use only.
_MODULES = {CPU: "numba_impl.cpu", GPU: "numba_impl.gpu"}
_loaded = {}


def backend(target):
    """The backend module of ``target`` (``CPU`` or ``GPU``)."""
    found = _loaded.get(target)
    if found is None:
        found = _loaded[target] = importlib.import_module(_MODULES[target])
    return found


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
