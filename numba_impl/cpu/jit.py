"""How the CPU compiles: the ``@njit`` flavours, and the bodies written once for both
targets (``_dp``, ``_scalar``) compiled for the CPU.

Kernels take arrays that ``_checks`` has already validated and keep their dtype:
constants such as 0.5 or the 1e-12 clamp come in as scalars of the data's dtype
(``_consts.of_dtype``), because a Python float constant would turn float32 arithmetic into
float64. No fast-math anywhere: formula 2 must match the oracle bit for bit.
``error_model="numpy"`` (IEEE division, no zero check) lets LLVM vectorise loops that
divide; no kernel divides by zero. ``nogil`` lets ``local_dist`` overlap a kernel with
BLAS. Parallel kernels may be called from several Python threads at once: under a
threading layer that is not thread-safe (``workqueue``) they take turns (``threads``).
"""
from numba import njit

from .. import _dp, _scalar
from .._cache import tracked
from .._compile import for_target
from . import threads
from .tanh import tanh

_serial = njit(cache=True, nogil=True, error_model="numpy")
_parallel = njit(cache=True, parallel=True, nogil=True, error_model="numpy")


def jit(func):
    """A serial kernel, cached under a key that covers the code compiled into it (``_cache``)."""
    return tracked(_serial(func))


def parallel_jit(func):
    """A parallel kernel (``prange``), serialised across Python threads where Numba's
    threading layer is not thread-safe (``threads``)."""
    return threads.serialised_when_unsafe(tracked(_parallel(func)))


# The shared bodies are not cached on their own: each kernel's cache holds them compiled in.
_inline = njit(nogil=True, error_model="numpy")
#: Formula 2 compiled for the CPU.
dp = for_target(_dp, _inline)
#: The per-element bodies compiled for the CPU, formula 1 with the vectorisable ``tanh``
#: (in float32 correctly rounded on every input tried, where libm's ``tanhf`` is one ulp
#: off on about a quarter of them).
scalar = for_target(_scalar, _inline, tanh=tanh)
