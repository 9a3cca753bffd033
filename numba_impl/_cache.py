"""Numba's on-disk cache, keyed on every file whose code a kernel holds.

Numba keys a cached kernel on the file that defines it. A kernel also holds code from
other files, compiled in: the bodies of ``_dp.py`` and ``_scalar.py``, the constants of
``_consts.py`` (``PAIR_BLOCK``) and the helpers of its target's package (``cpu/tanh.py``,
``cpu/expansion.py``, ...). After an edit of one of those, Numba's own key would still
load the old kernel. ``tracked`` gives a kernel a cache whose key adds a digest of all of
them: its target's package and the shared files below. An edit of a public module
(``distance.py``, ...) or of ``_checks.py`` recompiles nothing; their code is not compiled.
"""
import functools
import hashlib
import os

from numba.core import caching

_HERE = os.path.dirname(os.path.abspath(__file__))
#: The files outside the targets' packages whose code kernels hold.
SHARED = tuple(os.path.join(_HERE, name)
               for name in ("_compile.py", "_consts.py", "_dp.py", "_scalar.py"))


def sources(py_file):
    """The files whose code a kernel defined in ``py_file`` holds: the ``.py`` files of
    its package (``cpu/`` or ``gpu/``) and ``SHARED``."""
    folder = os.path.dirname(os.path.abspath(py_file))
    own = sorted(os.path.join(folder, name) for name in os.listdir(folder)
                 if name.endswith(".py"))
    return tuple(own) + SHARED


@functools.lru_cache(maxsize=None)
def _digest(files_and_stats):
    hashed = hashlib.sha256()
    for path, _ in files_and_stats:
        with open(path, "rb") as f:
            hashed.update(os.path.basename(path).encode() + b"\0" + f.read() + b"\0")
    return hashed.hexdigest()


def digest(py_file):
    """A digest of the contents of ``sources(py_file)`` (re-read when one changes)."""
    stats = tuple((path, (os.stat(path).st_mtime_ns, os.stat(path).st_size))
                  for path in sources(py_file))
    return _digest(stats)


class _TrackedStamp:
    """A locator mixin: Numba's stamp of the kernel's own file, and ``digest``."""

    def get_source_stamp(self):
        return super().get_source_stamp(), digest(self._py_file)


def _tracked_locators(locators):
    return [type(f"Tracked{cls.__name__}", (_TrackedStamp, cls), {}) for cls in locators
            if issubclass(cls, caching._SourceFileBackedLocatorMixin)]


class _CpuImpl(caching.CompileResultCacheImpl):
    _locator_classes = _tracked_locators(caching.CompileResultCacheImpl._locator_classes)


class _CpuCache(caching.FunctionCache):
    _impl_class = _CpuImpl


def tracked(dispatcher):
    """Give a ``njit(cache=True)`` dispatcher the cache keyed on ``sources``; returns it
    (a plain function under ``NUMBA_DISABLE_JIT`` as it is)."""
    if isinstance(getattr(dispatcher, "_cache", None), caching.FunctionCache):
        dispatcher._cache = _CpuCache(dispatcher.py_func)
    return dispatcher


def tracked_kernel(kernel):
    """The same for a ``cuda.jit(cache=True)`` kernel (the simulator's, which caches
    nothing, as it is)."""
    try:
        from numba.cuda.dispatcher import CUDACache
    except ImportError:  # the simulator's dispatcher: nothing to cache
        return kernel
    if isinstance(getattr(kernel, "_cache", None), CUDACache):
        kernel._cache = _cuda_cache_class()(kernel.py_func)
    return kernel


@functools.lru_cache(maxsize=None)
def _cuda_cache_class():
    from numba.cuda.core import caching as cuda_caching
    from numba.cuda.dispatcher import CUDACache, CUDACacheImpl

    class _CudaImpl(CUDACacheImpl):
        _locator_classes = [type(f"Tracked{cls.__name__}", (_TrackedStamp, cls), {})
                            for cls in CUDACacheImpl._locator_classes
                            if issubclass(cls, cuda_caching._SourceFileBackedLocatorMixin)]

    class _CudaCache(CUDACache):
        _impl_class = _CudaImpl

    return _CudaCache
