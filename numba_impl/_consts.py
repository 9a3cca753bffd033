"""The constants of ``numba_impl``: the contract's two clamps, and how the work is split.

The split constants are read when a call starts (tests shrink them to cross many tile
and block edges on small inputs); a kernel that uses ``PAIR_BLOCK`` has it compiled in.
"""
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
