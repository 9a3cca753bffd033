"""How the GPU compiles and launches: every kernel declared with its argument types, the
bodies written once for both targets (``_dp``, ``_scalar``) compiled as device functions,
and the launch on this thread's stream (``context``).

Every kernel is declared with the types of its arguments (``kernel``), so that
``python -m numba_impl.gpu.compile`` compiles exactly these for the hardware checks.
Constants of the data's dtype come in as arguments (``_consts.of_dtype``), so float32
kernels never widen to float64.
"""
import numpy as np
from numba import cuda, types

from .. import _dp, _scalar
from .._cache import tracked_kernel
from .._compile import for_target
from . import context as _gpu_context
from .context import empty, to_device, to_host

#: Threads per block of every launch (at most 1024 on current hardware).
THREADS_PER_BLOCK = 128
#: Every kernel by name: ``(dispatcher, argument codes)``; see ``kernel``.
KERNELS = {}
#: The kernels that run formula 2 (checked for fused multiply-adds: they must round as the oracle).
FORMULA_2 = ("shortest", "shortest_table", "shortest_vjp")
#: When set (the GPU tests set it), every launch checks its arguments against the kernel's
#: declared types, so that the compile-time check compiles what actually runs.
CHECK_ARGUMENTS = False

#: A device function (called from kernels).
device = cuda.jit(device=True)
#: Formula 2 compiled for the GPU.
dp = for_target(_dp, device)
#: The per-element bodies compiled for the GPU (formula 1 with ``math.tanh``).
scalar = for_target(_scalar, device)


def argument_types(codes, dtype):
    """Numba types of arguments written as codes: ``F3`` a C-contiguous 3-D array of the
    data ``dtype``, ``I1`` a 1-D int64 array, ``f`` a scalar of the data dtype, ``i`` an
    int64, ``b`` a bool."""
    data = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    out = []
    for code in codes:
        if code == "f":
            out.append(data)
        elif code == "i":
            out.append(types.int64)
        elif code == "b":
            out.append(types.boolean)
        else:
            element = data if code[0] == "F" else types.int64
            out.append(types.Array(element, int(code[1:]), "C"))
    return tuple(out)


def kernel(*codes):
    """``cuda.jit`` a kernel and declare the types of its arguments (see ``argument_types``)."""
    def wrap(pyfunc):
        kernel = tracked_kernel(cuda.jit(cache=True)(pyfunc))
        KERNELS[pyfunc.__name__.strip("_").removesuffix("_kernel")] = (kernel, codes)
        return kernel
    return wrap


def _check_arguments(kernel, args):
    from numba import typeof

    codes = next(c for k, c in KERNELS.values() if k is kernel)
    data = next((a.dtype for a in args if hasattr(a, "dtype") and a.dtype.kind == "f"), None)
    got = tuple(typeof(a) for a in args)
    if got != argument_types(codes, data):
        raise TypeError(f"{kernel.py_func.__name__}: launched with {got}; declared "
                        f"{argument_types(codes, data)}")


def launch(kernel, size, *args):
    """Run ``kernel`` on ``size`` threads (rounded up to whole blocks) on this thread's stream."""
    if CHECK_ARGUMENTS:
        _check_arguments(kernel, args)
    blocks = max(1, (size + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK)
    kernel[blocks, THREADS_PER_BLOCK, _gpu_context.current().stream](*args)


def flat(a):
    return a.reshape(a.size) if a.ndim != 1 else a


def int64(inds):
    """Indices or labels as int64 (the one integer type the kernels are built for)."""
    return inds if inds.dtype == np.int64 else to_device(to_host(inds).astype(np.int64))


@device
def unravel(k, rows, cols):
    """``(a, r, c)`` with ``k = (a * rows + r) * cols + c``: a thread's element of an array."""
    return k // (rows * cols), (k // cols) % rows, k % cols
