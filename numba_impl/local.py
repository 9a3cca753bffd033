"""The local distance (formula 1, then formula 2) and its VJPs, on the CPU or the GPU."""
from . import _checks
from ._dispatch import backend, follows_torch


@follows_torch
def local_dist(x, y, *, chunk_size=None, progress=False):
    """AlignedReID local distance between every image of ``x`` and every image of ``y``.

    On the CPU the pairs are handled in tiles of ``chunk_size`` queries and a
    gallery slice that fits ``TILE_BYTES`` (256 MiB): one BLAS product gives the
    tile's stripe dot products, then a parallel kernel applies formula 1 and formula 2
    per pair, so no more than one tile is in memory besides the ``[M, N]`` result. Squared distances use
    ``|x|^2 + |y|^2 - 2 x.y`` here (cancellation error of order ``eps (|x|^2 + |y|^2)``);
    where that overflows (huge or infinite features) the entries come from explicit
    differences, as in the oracle, so NaN appears only where the oracle has NaN.
    On the GPU the tiles are as large as ``TILE_BYTES`` allows and their products come
    from cuBLAS (through torch, when torch sees the GPU).

    Parameters
    ----------
    x : ndarray or CUDA array, shape (M, m, d), float32 or float64
    y : array, shape (N, n, d), same dtype and device as ``x``
    chunk_size : int or None
        Query images per tile on the CPU (default ``TILE_QUERIES``, 64); the gallery
        slice then fills ``TILE_BYTES``. BLAS may round a dot product differently in
        products of other shapes, so chunk sizes can change the last bits (within the
        error model of the norm expansion). Unused on the GPU.
    progress : bool
        Report the finished pairs on stderr after every tile (``alignedreid_dp.progress``).

    Returns
    -------
    array, shape (M, N)

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> x = np.zeros((2, 3, 4), dtype=np.float32)
    >>> numba_impl.local_dist(x, x + 1).round(4)
    array([[3.808, 3.808],
           [3.808, 3.808]], dtype=float32)
    """
    func = "local_dist"
    target, x, y = _checks.feature_pair(func, x, y, "(M, m, d)", "(N, n, d)", rank=3)
    chunk_size = _checks.chunk_size(func, chunk_size)
    progress = _checks.progress(func, progress)
    return backend(target).local_dist(x, y, chunk_size=chunk_size, progress=progress)


@follows_torch
def local_dist_vjp(x, y, grad_out):
    """Gradients ``(grad_x, grad_y)`` of ``local_dist`` pulled back from ``grad_out``.

    Per pair: the unit flow of formula 2, times ``(1 - t^2) / 2`` of formula 1, then the
    Euclidean distance's chain rule (zero where the 1e-12 clamp is active).

    Parameters
    ----------
    x : ndarray or CUDA array, shape (M, m, d)
    y : array, shape (N, n, d)
    grad_out : array, shape (M, N)

    Returns
    -------
    grad_x : array, shape (M, m, d)
    grad_y : array, shape (N, n, d)

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> x = np.random.default_rng(0).normal(size=(2, 3, 4))
    >>> [g.shape for g in numba_impl.local_dist_vjp(x, x[:1], np.ones((2, 1)))]
    [(2, 3, 4), (1, 3, 4)]
    """
    func = "local_dist_vjp"
    target, x, y = _checks.feature_pair(func, x, y, "(M, m, d)", "(N, n, d)", rank=3)
    grad_out = _checks.grad_like(func, grad_out, (x.shape[0], y.shape[0]), x.dtype, target)
    return backend(target).local_dist_vjp(x, y, grad_out)


@follows_torch
def batch_local_dist(x, y):
    """Local distance of each aligned pair: ``out[k]`` is the distance of ``x[k]`` and ``y[k]``.

    Parameters
    ----------
    x : ndarray or CUDA array, shape (N, m, d), float32 or float64
    y : array, shape (N, n, d)

    Returns
    -------
    array, shape (N,)

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> x = np.zeros((2, 3, 4))
    >>> numba_impl.batch_local_dist(x, x).round(7)  # 5 cells of tanh(1e-6 / 2)
    array([2.5e-06, 2.5e-06])
    """
    target, x, y = _checks.batch_pair("batch_local_dist", x, y)
    return backend(target).batch_local_dist(x, y)


@follows_torch
def batch_local_dist_vjp(x, y, grad_out):
    """Gradients ``(grad_x, grad_y)`` of ``batch_local_dist`` pulled back from ``grad_out``.

    Parameters
    ----------
    x : ndarray or CUDA array, shape (N, m, d)
    y : array, shape (N, n, d)
    grad_out : array, shape (N,)

    Returns
    -------
    grad_x : array, shape (N, m, d)
    grad_y : array, shape (N, n, d)

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> x = np.random.default_rng(0).normal(size=(2, 3, 4))
    >>> [g.shape for g in numba_impl.batch_local_dist_vjp(x, x[::-1], np.ones(2))]
    [(2, 3, 4), (2, 3, 4)]
    """
    func = "batch_local_dist_vjp"
    target, x, y = _checks.batch_pair(func, x, y)
    grad_out = _checks.grad_like(func, grad_out, (x.shape[0],), x.dtype, target)
    return backend(target).batch_local_dist_vjp(x, y, grad_out)


@follows_torch
def pair_local_dist(x, y):
    """Local distance of one pair of images (an optional extra of the contract).

    Parameters
    ----------
    x : ndarray or CUDA array, shape (m, d), float32 or float64
    y : array, shape (n, d)

    Returns
    -------
    scalar
        ``batch_local_dist(x[None], y[None])[0]``.

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> float(numba_impl.pair_local_dist(np.zeros((2, 3)), np.zeros((2, 3)))).__round__(9)
    1.5e-06
    """
    target, x, y = _checks.feature_pair("pair_local_dist", x, y, "(m, d)", "(n, d)", rank=2)
    return backend(target).batch_local_dist(_one_pair(x), _one_pair(y))[0]


@follows_torch
def pair_local_dist_vjp(x, y, grad_out):
    """Gradients ``(grad_x, grad_y)`` of ``pair_local_dist`` pulled back from the scalar ``grad_out``.

    Examples
    --------
    >>> import numpy as np, numba_impl
    >>> x = np.random.default_rng(0).normal(size=(3, 4))
    >>> [g.shape for g in numba_impl.pair_local_dist_vjp(x, x[::-1], 1.0)]
    [(3, 4), (3, 4)]
    """
    func = "pair_local_dist_vjp"
    target, x, y = _checks.feature_pair(func, x, y, "(m, d)", "(n, d)", rank=2)
    grad_out = _checks.grad_like(func, grad_out, (), x.dtype, target)
    grad_x, grad_y = backend(target).batch_local_dist_vjp(_one_pair(x), _one_pair(y),
                                                          grad_out.reshape((1,)))
    return grad_x.reshape(tuple(x.shape)), grad_y.reshape(tuple(y.shape))


def _one_pair(a):
    """``a [m, d]`` as a batch of one, ``[1, m, d]`` (``reshape``: device arrays take no ``None``)."""
    return a.reshape((1,) + tuple(a.shape))
