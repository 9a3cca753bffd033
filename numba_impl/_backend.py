"""The backend protocol: the names and signatures that ``numba_impl.cpu`` and
``numba_impl.gpu`` both provide (``tests/test_numba_backends.py`` holds both to it).

The public functions check their arguments (``_checks``), take the backend of the
input's target (``_dispatch.backend``) and call these with validated arrays of that
target: NumPy arrays on the CPU, C-contiguous Numba device arrays on the GPU, of one
float dtype. Results are new arrays of the same target and dtype. Written as a
``typing.Protocol``, so that a type checker can hold a module to it too.
"""
from typing import Protocol


class Backend(Protocol):
    """What a target provides: the contract's functions and VJPs, and the array steps
    that the losses compose."""

    # --- distance: normalisation, Euclidean distances, formula 1
    def normalize(self, x, axis):
        """``x / (||x|| + 1e-12)`` along ``axis`` (a non-negative int)."""

    def normalize_vjp(self, x, grad_out, axis):
        """The gradient of ``normalize`` pulled back from ``grad_out``."""

    def euclidean_dist(self, x, y):
        """``[m, d] x [n, d] -> [m, n]``, clamped at 1e-12 before the root."""

    def euclidean_dist_vjp(self, x, y, grad_out):
        """``(grad_x, grad_y)`` of ``euclidean_dist``."""

    def batch_euclidean_dist(self, x, y):
        """``[N, m, d] x [N, n, d] -> [N, m, n]``."""

    def batch_euclidean_dist_vjp(self, x, y, grad_out):
        """``(grad_x, grad_y)`` of ``batch_euclidean_dist``."""

    def stripe_dist(self, euclid):
        """Formula 1, element by element."""

    def stripe_dist_vjp(self, euclid, grad_out):
        """The gradient of formula 1."""

    # --- path: formula 2
    def shortest_dist(self, dist_mat):
        """Formula 2 of ``[m, n, *]``: shape ``(*)`` (on the CPU a NumPy scalar for a matrix)."""

    def shortest_dist_vjp(self, dist_mat, grad_out):
        """The gradient of formula 2; ``grad_out`` has shape ``(*)``, 0-d for a matrix."""

    # --- local: formula 1 then formula 2
    def local_dist(self, x, y, chunk_size=None, progress=False):
        """``[M, m, d] x [N, n, d] -> [M, N]``, every query against every gallery image."""

    def local_dist_vjp(self, x, y, grad_out):
        """``(grad_x, grad_y)`` of ``local_dist``."""

    def batch_local_dist(self, x, y):
        """``[N, m, d] x [N, n, d] -> [N]``, pair ``k`` of ``x`` with pair ``k`` of ``y``."""

    def batch_local_dist_vjp(self, x, y, grad_out):
        """``(grad_x, grad_y)`` of ``batch_local_dist``."""

    # --- mining and loss
    def hard_example_mining(self, dist_mat, labels):
        """``(dist_ap, dist_an, p_inds, n_inds)``; ``n_inds`` is -1 for an anchor without
        negative."""

    def triplet_terms(self, dist_ap, dist_an, margin):
        """Per-anchor losses and slopes ``d loss_k / d ap_k``; ``margin=None`` is the soft
        margin."""

    def mined_grad(self, shape, dtype, p_inds, n_inds, grad_ap, grad_an):
        """The mined loss's gradient on the whole distance matrix: only the chosen entries."""

    # --- arrays
    def zeros(self, shape, dtype):
        """A new array of zeros."""

    def add(self, a, b):
        """``a + b``, a new array."""

    def take_rows(self, x, inds):
        """``x[inds]`` along the first axis."""

    def add_rows_at(self, target, inds, rows):
        """``np.add.at(target, inds, rows)`` in place (an index may repeat)."""

    def mean(self, values):
        """The mean of a 1-D array, 0-d."""

    def scale(self, values, factor):
        """``values * factor`` with ``factor`` a host scalar, in the values' dtype."""

    def negate(self, values):
        """``-values``."""

    def to_host(self, array):
        """The array as a NumPy array (the CPU's own arrays as they are)."""

    def from_host(self, array):
        """A NumPy array as an array of this target (the CPU's as it is)."""
