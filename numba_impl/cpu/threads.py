"""Parallel kernels that several Python threads may call at once, whatever Numba's threading layer.

Numba's ``workqueue`` layer (its fallback where neither OpenMP nor TBB is installed) is
not thread-safe: two Python threads inside ``parallel=True`` code at the same time abort
the process. The ``omp`` and ``tbb`` layers are thread-safe. Which layer runs is known
only after the first parallel launch (``numba.threading_layer()``), so calls are
serialised by one lock until then, and afterwards only where the layer is not known to be
thread-safe; elsewhere they run concurrently, without the lock.
"""
import functools
import threading

import numba

#: Layers that Numba documents as safe for concurrent launches from several threads.
THREAD_SAFE_LAYERS = frozenset({"omp", "tbb"})

_lock = threading.Lock()
_concurrent = None  # None until a parallel kernel has run and the layer is known


def _chosen_layer_is_thread_safe():
    try:
        return numba.threading_layer() in THREAD_SAFE_LAYERS
    except ValueError:  # no parallel launch yet (e.g. NUMBA_DISABLE_JIT): ask again later
        return None


def serialised_when_unsafe(kernel):
    """Wrap a ``parallel=True`` dispatcher: a call takes the lock unless the layer is thread-safe.

    The wrapper keeps ``py_func`` (to compile serial twins of a kernel) and the name.
    """

    @functools.wraps(kernel)
    def call(*args):
        global _concurrent
        if _concurrent:
            return kernel(*args)
        with _lock:
            result = kernel(*args)
            _concurrent = _chosen_layer_is_thread_safe()
        return result

    call.py_func = getattr(kernel, "py_func", kernel)  # NUMBA_DISABLE_JIT: the function
    return call
