"""Where the GPU work of a call goes: the stream of every launch and the allocator of every
array, held per thread.

By default kernels run on the default stream and arrays come from Numba's allocator. A
caller that hands in torch CUDA tensors gets ``torch_launches``: every launch on torch's
current stream of that device and every array from torch's caching allocator, so the
work is ordered with the caller's torch work (also under ``torch.cuda.stream(s)``),
``torch.cuda.max_memory_allocated`` sees it, and no Numba deferred free synchronises the
device. The setting is per thread: autograd runs a backward pass on a thread of its own,
which sets its own.

Host transfers (``to_device``, ``to_host``) go through the same stream; ``to_host``
waits for that stream only.
"""
import contextlib
import threading

import numpy as np
from numba import cuda


class _Launches:
    """One thread's setting: ``stream`` for launches, ``allocate(shape, dtype)`` for arrays,
    and ``torch_stream``, the same stream as torch sees it (for torch's cuBLAS), if any."""

    def __init__(self, stream=0, allocate=None, torch_stream=None):
        self.stream = stream
        self.allocate = allocate or self._numba_array
        self.torch_stream = torch_stream

    def _numba_array(self, shape, dtype):
        return cuda.device_array(shape, dtype=dtype, stream=self.stream)


_DEFAULT = _Launches()
_local = threading.local()


def current():
    """This thread's setting (the default stream and Numba's allocator unless set)."""
    return getattr(_local, "launches", _DEFAULT)


@contextlib.contextmanager
def launches(stream=0, allocate=None, torch_stream=None):
    """Inside the block, this thread launches on ``stream`` and allocates with ``allocate``."""
    previous = current()
    _local.launches = _Launches(stream, allocate, torch_stream)
    try:
        yield _local.launches
    finally:
        _local.launches = previous


def torch_launches(device):
    """``launches`` on torch's current stream of ``device``, arrays from torch's allocator."""
    import torch  # only callers that hold torch CUDA tensors come here

    on = torch.cuda.current_stream(device)
    stream = cuda.external_stream(on.cuda_stream)

    def allocate(shape, dtype):
        # the Numba view keeps the tensor (its owner) alive; the memory returns to torch's
        # cache on torch's stream, the one every kernel of this block runs on
        return cuda.as_cuda_array(torch.empty(shape, dtype=getattr(torch, np.dtype(dtype).name),
                                              device=device))

    return launches(stream, allocate, on)


def empty(shape, dtype):
    """An uninitialised device array of ``shape`` (a tuple) from this thread's allocator."""
    return current().allocate(tuple(int(s) for s in shape), dtype)


def to_device(host):
    """Copy a host array to a new device array, on this thread's stream."""
    host = np.ascontiguousarray(host)
    out = empty(host.shape, host.dtype)
    out.copy_to_device(host, stream=current().stream)
    return out


def synchronize():
    """Wait for the work queued on this thread's stream."""
    stream = current().stream
    if stream:
        stream.synchronize()
    else:
        cuda.synchronize()


def to_host(array):
    """Copy a device array to the host after the work queued on this thread's stream."""
    stream = current().stream
    host = array.copy_to_host(stream=stream)
    if stream:
        stream.synchronize()
    return host
