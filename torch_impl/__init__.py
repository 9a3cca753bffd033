"""PyTorch implementation of the AlignedReID local distance (CPU and CUDA).

Everything is differentiable through autograd, keeps the input's dtype
(float32 or float64) and device, and follows ``docs/contract.md``.
``shortest_dist`` is bitwise equal to the cell-by-cell recurrence.
"""

from .distance import batch_euclidean_dist, euclidean_dist, normalize, stripe_dist
from .local import batch_local_dist, local_dist, pair_local_dist
from .loss import TripletLoss, global_loss, local_loss
from .mining import hard_example_mining
from .path import shortest_dist

__all__ = [
    "normalize", "euclidean_dist", "batch_euclidean_dist", "stripe_dist",
    "shortest_dist", "local_dist", "batch_local_dist", "hard_example_mining",
    "TripletLoss", "global_loss", "local_loss", "pair_local_dist",
]
