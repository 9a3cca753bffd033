"""Numba implementation of alignedreid-dp: every function of the contract and its VJPs.

The target follows the input: NumPy arrays run ``@njit`` kernels on the CPU
(``numba_impl.cpu``); CUDA arrays (Numba device arrays, CuPy arrays, torch CUDA tensors,
anything with ``__cuda_array_interface__``) run ``@cuda.jit`` kernels on the GPU
(``numba_impl.gpu``) and give Numba device arrays back. Both backends provide one protocol
(``_backend.Backend``) and mirror the public modules: ``distance.normalize`` is computed by
``cpu/distance.py`` or ``gpu/distance.py``. Formula 2 (``_dp.py``) and the per-element
bodies (``_scalar.py``) are written once and compiled for both. ``numba_impl.autograd``
wraps the kernels as ``torch.autograd.Function``\\ s.
"""
from .distance import (
    batch_euclidean_dist,
    batch_euclidean_dist_vjp,
    euclidean_dist,
    euclidean_dist_vjp,
    normalize,
    normalize_vjp,
    stripe_dist,
    stripe_dist_vjp,
)
from .local import (
    batch_local_dist,
    batch_local_dist_vjp,
    local_dist,
    local_dist_vjp,
    pair_local_dist,
    pair_local_dist_vjp,
)
from .loss import TripletLoss, global_loss, global_loss_vjp, local_loss, local_loss_vjp
from .mining import hard_example_mining
from .path import shortest_dist, shortest_dist_vjp

__all__ = [
    "normalize", "euclidean_dist", "batch_euclidean_dist", "stripe_dist", "shortest_dist",
    "local_dist", "batch_local_dist", "hard_example_mining", "TripletLoss", "global_loss",
    "local_loss", "pair_local_dist",
    "normalize_vjp", "euclidean_dist_vjp", "batch_euclidean_dist_vjp", "stripe_dist_vjp",
    "shortest_dist_vjp", "local_dist_vjp", "batch_local_dist_vjp", "global_loss_vjp",
    "local_loss_vjp",
    "pair_local_dist_vjp",
]
