"""The CPU backend: ``@njit`` kernels and the thin host functions that launch them.

One module per public module (``distance``, ``local``, ``mining``, ``loss``, ``path``),
``batch_local`` for the aligned pairs, and what the CPU needs of its own: ``jit`` (how it
compiles), ``expansion`` (the norm expansion and its overflow fallback), ``tanh``,
``threads`` and ``arrays``. Kernels are cached on disk under a key that covers every
file whose code they hold (``_cache``): no stale kernel after an edit.
"""
from .arrays import (add, add_rows_at, from_host, mean, negate, scale, take_rows, to_host,
                     zeros)
from .batch_local import (batch_local_backward, batch_local_dist, batch_local_dist_vjp,
                          batch_local_forward)
from .distance import (batch_euclidean_dist, batch_euclidean_dist_vjp, euclidean_dist,
                       euclidean_dist_vjp, normalize, normalize_vjp, stripe_dist,
                       stripe_dist_vjp)
from .local import _tile_sizes, local_dist, local_dist_vjp
from .loss import mined_grad, triplet_terms
from .mining import hard_example_mining
from .path import shortest_dist, shortest_dist_vjp
