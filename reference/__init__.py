"""The NumPy oracle of alignedreid-dp: every function of the contract, written to be read.

Import it to debug: ``reference.shortest_path`` returns the table of formula 2 and the
alignment path, ``reference.plot.plot_alignment`` draws them, and ``python -m reference``
prints a worked example and cross-checks every installed implementation against this one.
"""
from . import example
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
from .path import monotone_paths, shortest_dist, shortest_dist_vjp, shortest_path

__all__ = [
    "normalize", "euclidean_dist", "batch_euclidean_dist", "stripe_dist", "shortest_dist",
    "local_dist", "batch_local_dist", "hard_example_mining", "TripletLoss", "global_loss",
    "local_loss", "pair_local_dist",
    "normalize_vjp", "euclidean_dist_vjp", "batch_euclidean_dist_vjp", "stripe_dist_vjp",
    "shortest_dist_vjp", "local_dist_vjp", "batch_local_dist_vjp", "global_loss_vjp",
    "local_loss_vjp",
    "pair_local_dist_vjp",
    "shortest_path", "monotone_paths", "example",
]
