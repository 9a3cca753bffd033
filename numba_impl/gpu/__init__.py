"""The GPU backend: ``@cuda.jit`` kernels and the host functions that launch them.

Mirrors ``numba_impl.cpu`` module for module; inputs are validated, C-contiguous Numba
device arrays and results are new device arrays of the same dtype, from the allocator
of ``context`` (torch's caching allocator when the caller hands in torch tensors),
and every launch goes to that context's stream.

Layout and work split, chosen so that no kernel needs per-thread tables, atomics or
float64 arithmetic in float32:

- Formula 2 runs one thread per pair on ``[B, m, n, P]`` arrays (pairs ``(b, p)``, ``p``
  innermost, so neighbouring threads touch neighbouring addresses). Its table is a
  device array of that layout, not thread-local memory: the forward pass of the local
  distances overwrites its own formula-1 buffer in place.
- The stripe distances of the local distances come from matrix products of the stripe
  features, as on the CPU: torch's cuBLAS when torch can use the device, else
  ``_products_kernel``; formula 1 uses ``|x|^2 + |y|^2 - 2 x.y`` (the CPU's error model).
- Gradients are gathered, not scattered: after the reverse pass, each path cell's
  chain-rule coefficient is computed in place of its flow (squared distance from explicit
  differences, on path cells only), then one thread per gradient element sums over the
  cells that touch it, in a fixed order. No atomics: results are the same bits run to run.
- The reverse pass of a pair whose ``grad_out`` is 0 stops at once.

Every kernel is declared with the types of its arguments (``launch``), so that
``python -m numba_impl.gpu.compile`` compiles exactly these for the hardware checks.
Kernels are cached on disk under a key that covers every file whose code they hold
(``_cache``), as on the CPU.
"""
from .arrays import (add, add_rows_at, from_host, mean, negate, scale, take_rows, to_host,
                     zeros)
from .batch_local import batch_local_dist, batch_local_dist_vjp
from .distance import (batch_euclidean_dist, batch_euclidean_dist_vjp, euclidean_dist,
                       euclidean_dist_vjp, normalize, normalize_vjp, stripe_dist,
                       stripe_dist_vjp)
from .launch import FORMULA_2, KERNELS, argument_types
from .local import local_dist, local_dist_vjp
from .loss import mined_grad, triplet_terms
from .mining import hard_example_mining
from .path import shortest_dist, shortest_dist_vjp
