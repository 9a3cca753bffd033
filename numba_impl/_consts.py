"""The constants of ``numba_impl``: the contract's two clamps, and how the work is split.

The split constants are read when a call starts (tests shrink them to cross many tile
and block edges on small inputs); a kernel that uses ``PAIR_BLOCK`` has it compiled in.
"""
import numpy as np

#: Added to the norm in ``normalize`` (the contract's 1e-12).
NORM_EPS = 1e-12
#: Lower bound of a squared Euclidean distance (the contract's 1e-12).
SQ_DIST_CLAMP = 1e-12
#: Pairs handled together by one call of the dynamic programme (the vectorised loop) on the
#: CPU; in ``batch_local_dist`` also the work item of the parallel kernels.
PAIR_BLOCK = 256
#: Memory for the stripe dot products (CPU) or formula-1 buffer (GPU) of one tile.
TILE_BYTES = 256 * 2**20
#: Query images per tile of the CPU's ``local_dist``.
TILE_QUERIES = 64


def _make(dtype):
    t = np.dtype(dtype).type
    return t(0.5), t(SQ_DIST_CLAMP), t(NORM_EPS)


#: Built once: converting them on every call cost ~1 us a call in a training step.
_OF_DTYPE = {np.dtype(t): _make(t) for t in (np.float32, np.float64)}


def of_dtype(dtype):
    """``(half, clamp, eps)``: 0.5, ``SQ_DIST_CLAMP`` and ``NORM_EPS`` in ``dtype``, to pass
    to kernels (a Python float constant would make float32 arithmetic float64)."""
    found = _OF_DTYPE.get(dtype)
    return found if found is not None else _make(dtype)
