"""``topk`` (exhaustive, by the local distance) and ``rerank`` (two-stage, global then local).

Both rank by the rule of ``_rank``: ascending distance, ties to the lower gallery index,
NaN last. Both return ``min(k, candidates)`` columns: a gallery of ``N < k`` images gives
all ``N``, ranked.
"""
import numpy as np

from . import _blocks, _engine, _inputs, _rank

#: Query images per block (``chunk_size``'s default).
QUERY_BLOCK = 512
#: Query x gallery pairs per block of ``topk`` and of ``rerank``'s global stage; with the
#: default ``QUERY_BLOCK`` a block holds 512 x 7168 distances (14 MiB in float32). Each
#: block reads (and ``local_dist`` lays out anew) its gallery rows, so blocks are tall;
#: they are wide because ``numba_impl.local_dist`` is slow on narrow ones (its products
#: of stripes get small), and no wider because its working memory grows with the width.
BLOCK_PAIRS = 7 * 2**19
#: Pairs per block of ``rerank``'s local stage: each pair gathers the features of both
#: images (8 x 128 float32 stripes: 8 MiB per 1024 pairs), so its blocks are smaller.
RERANK_PAIRS = 2**13


def _block_top(engine, distance, k, query_ref, gallery_ref, start):
    """The top ``k`` of one block: ``distance`` of its query and gallery rows, reduced."""
    dist = engine(distance, _blocks.read(query_ref), _blocks.read(gallery_ref))
    return _rank.smallest(dist, np.arange(start, start + dist.shape[1]), k)


def _block_shape(chunk):
    """Query rows and gallery rows per block, from the checked ``chunk_size``."""
    rows = chunk[0] or QUERY_BLOCK
    return rows, chunk[1] or max(1, BLOCK_PAIRS // rows)


def _search(engine, distance, query, gallery, k, chunk, client, progress, desc):
    """Exhaustive top ``k`` of ``distance`` between every query and gallery row."""
    rows, cols = _block_shape(chunk)
    graph = _blocks.Graph(k)
    gallery_blocks = _blocks.row_blocks(gallery, cols, client)
    for q0, q1, query_ref in _blocks.row_blocks(query, rows, client):
        graph.add_row_block([
            ((q1 - q0) * (g1 - g0), _block_top, engine, distance, k, query_ref, gallery_ref, g0)
            for g0, g1, gallery_ref in gallery_blocks])
    return graph.compute(client, progress, desc)


def topk(query, gallery, k, *, impl="numba_impl", chunk_size=None, progress=False,
         client=None):
    """Each query's ``k`` nearest gallery images by the local distance, in bounded memory.

    The pairs are computed in blocks of ``chunk_size`` queries x ``BLOCK_PAIRS //
    chunk_size`` gallery images, each by the implementation's ``local_dist`` and reduced
    to its top ``k`` at once; the partial results merge in a tree. Without ``client`` the
    blocks run on Dask's threaded scheduler in this process; with one, on its workers.

    Parameters
    ----------
    query : ndarray, dask.array.Array or path of a .npy file, shape (M, m, d)
        Stripe features, float32 or float64. A path, or a memory map of a whole ``.npy``
        file, is read a block at a time where the block is computed (on a cluster the
        workers need the file at the same path).
    gallery : same kinds, shape (N, n, d), same dtype and ``d`` as ``query``
    k : int
        Neighbours per query; with ``k > N`` every gallery image is returned, ranked.
    impl : module, str or reference.crosscheck.Implementation
        The implementation whose ``local_dist`` computes the blocks, by module or module
        name (imported where the blocks run); an ``Implementation`` also says what arrays
        it takes (torch tensors are guessed from the name as in the test suite).
    chunk_size : int, (int, int) or None
        Query images per block (default ``QUERY_BLOCK``, 512), or query and gallery
        images per block (default: ``BLOCK_PAIRS`` pairs per block).
    progress : bool
        Show a progress bar (tqdm, on stderr).
    client : distributed.Client or None
        Run on this client's workers instead of in this process.

    Returns
    -------
    distances : ndarray, shape (M, min(k, N)), the dtype of the inputs
    indices : ndarray of int64, same shape
        Each row in ascending distance; equal distances by the lower gallery index;
        NaN distances (NaN features) last, among themselves by index.

    Examples
    --------
    >>> import numpy as np, retrieval
    >>> gallery = np.random.default_rng(0).normal(size=(6, 4, 8))
    >>> dist, index = retrieval.topk(gallery[[4, 1]], gallery, 3, impl="reference")
    >>> index                      # each query finds itself first
    array([[4, 0, 3],
           [1, 0, 2]])
    >>> dist.round(3)              # (a path through 4 x 4 stripes leaves the diagonal)
    array([[2.794, 6.142, 6.344],
           [2.773, 6.014, 6.212]])
    """
    func = "topk"
    engine = _engine.engine(func, impl, ("local_dist",))
    query = _inputs.features(func, "query", query, "(M, m, d)", 3)
    gallery = _inputs.features(func, "gallery", gallery, "(N, n, d)", 3)
    _inputs.same_dtype(func, "gallery", gallery, "query", query)
    _inputs.same_size(func, "gallery", gallery, -1, "query", query, "features per stripe")
    k = _inputs.positive_int(func, "k", k)
    chunk = _inputs.chunk_size(func, chunk_size)
    progress = _inputs.flag(func, "progress", progress)
    client = _inputs.client(func, client)
    return _search(engine, "local_dist", query, gallery, k, chunk, client, progress, "topk")


def _rerank_block(engine, k, weight, query_ref, gallery_ref, global_dist, candidates):
    """The top ``k`` of one block of candidates by ``global + weight * local``."""
    query = _blocks.read(query_ref)
    gallery = _blocks.read_gathered(gallery_ref)
    rows, cols = candidates.shape
    at = np.searchsorted(gallery_ref[1], candidates.reshape(-1))
    local = engine("batch_local_dist", query[np.repeat(np.arange(rows), cols)], gallery[at])
    combined = global_dist + global_dist.dtype.type(weight) * local.reshape(rows, cols)
    return _rank.smallest(combined, candidates, k)


def rerank(query_global, gallery_global, query_local, gallery_local, k, *, shortlist=100,
           weight=1.0, impl="numba_impl", chunk_size=None, progress=False, client=None):
    """Two-stage search: a shortlist by the global distance, then ranked with the local one.

    Stage 1 takes each query's ``shortlist`` nearest gallery images by the Euclidean
    distance of the global features (``euclidean_dist``, blockwise as in ``topk``).
    Stage 2 computes the local distance of those pairs only (``batch_local_dist`` on the
    gathered features) and ranks them by ``global + weight * local``, the AlignedReID++
    test-time combination. With ``shortlist >= N`` every gallery image is a candidate and
    the result is the exhaustive ranking by that sum.

    Parameters
    ----------
    query_global : ndarray, dask.array.Array or path of a .npy file, shape (M, C)
    gallery_global : same kinds, shape (N, C)
    query_local : same kinds, shape (M, m, d)
    gallery_local : same kinds, shape (N, n, d)
        All four float32 or all four float64.
    k : int
        Neighbours per query, at most ``shortlist``; with ``k > N`` all ``N`` are returned.
    shortlist : int
        Candidates per query from stage 1 (all ``N`` when larger).
    weight : float
        Weight of the local distance, finite and at least 0.
    impl, chunk_size, progress, client
        As in ``topk``; ``impl`` must provide ``euclidean_dist`` and ``batch_local_dist``.

    Returns
    -------
    distances : ndarray, shape (M, min(k, N))
        ``global + weight * local`` of the chosen images, ranked as in ``topk``.
    indices : ndarray of int64, same shape

    Examples
    --------
    >>> import numpy as np, retrieval
    >>> rng = np.random.default_rng(0)
    >>> glob, local = rng.normal(size=(6, 16)), rng.normal(size=(6, 4, 8))
    >>> dist, index = retrieval.rerank(glob[[2]], glob, local[[2]], local, 2, shortlist=3,
    ...                                impl="reference")
    >>> index, dist.round(3)
    (array([[2, 5]]), array([[2.835, 9.974]]))
    """
    func = "rerank"
    engine = _engine.engine(func, impl, ("euclidean_dist", "batch_local_dist"))
    query_global = _inputs.features(func, "query_global", query_global, "(M, C)", 2)
    gallery_global = _inputs.features(func, "gallery_global", gallery_global, "(N, C)", 2)
    query_local = _inputs.features(func, "query_local", query_local, "(M, m, d)", 3)
    gallery_local = _inputs.features(func, "gallery_local", gallery_local, "(N, n, d)", 3)
    for name, value in (("gallery_global", gallery_global), ("query_local", query_local),
                        ("gallery_local", gallery_local)):
        _inputs.same_dtype(func, name, value, "query_global", query_global)
    _inputs.same_size(func, "gallery_global", gallery_global, -1, "query_global",
                      query_global, "features")
    _inputs.same_size(func, "gallery_local", gallery_local, -1, "query_local", query_local,
                      "features per stripe")
    _inputs.same_size(func, "query_local", query_local, 0, "query_global", query_global,
                      "images")
    _inputs.same_size(func, "gallery_local", gallery_local, 0, "gallery_global",
                      gallery_global, "images")
    k = _inputs.positive_int(func, "k", k)
    shortlist = _inputs.positive_int(func, "shortlist", shortlist)
    if k > shortlist:
        raise ValueError(f"{func}: k must be at most shortlist ({shortlist}); got {k}")
    weight = _inputs.weight(func, weight)
    # a local distance is at most m + n - 1 (each cell of a path is below 1)
    largest = weight * (query_local.shape[1] + gallery_local.shape[1] - 1)
    if largest > float(np.finfo(query_local.dtype).max):  # weight * local could be inf
        raise ValueError(f"{func}: weight times the largest local distance must be finite "
                         f"in {np.dtype(query_local.dtype)}; got weight {weight}")
    chunk = _inputs.chunk_size(func, chunk_size)
    progress = _inputs.flag(func, "progress", progress)
    client = _inputs.client(func, client)

    global_dist, candidates = _search(engine, "euclidean_dist", query_global, gallery_global,
                                      shortlist, chunk, client, progress, "rerank: global")
    # Stage 2 on the [M, S] candidates, in blocks of at most RERANK_PAIRS pairs.
    rows, cols = _block_shape(chunk)
    width = candidates.shape[1]
    rows = max(1, min(rows, RERANK_PAIRS // width))
    cols = max(1, min(cols, RERANK_PAIRS // rows))
    graph = _blocks.Graph(k)
    gallery_local = _blocks.shared(gallery_local, client)
    for q0, q1, query_ref in _blocks.row_blocks(query_local, rows, client):
        blocks = []
        for c0 in range(0, width, cols):
            cand = candidates[q0:q1, c0:c0 + cols]
            gallery_ref = _blocks.gathered(gallery_local, np.unique(cand))
            blocks.append((cand.size, _rerank_block, engine, k, weight, query_ref,
                           gallery_ref, global_dist[q0:q1, c0:c0 + cols], cand))
        graph.add_row_block(blocks)
    return graph.compute(client, progress, "rerank: local")
