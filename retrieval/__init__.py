"""Retrieval at gallery scale: each query's best gallery images by the local distance.

``topk`` ranks a whole gallery by the AlignedReID local distance; ``rerank`` searches
the way large galleries are searched in practice, a shortlist by the global distance then
the local distance for those candidates. Both work block by block in bounded memory, on
Dask's threaded scheduler in this process or on a ``dask.distributed`` cluster, with the
kernels of any implementation of the contract (``impl="numba_impl"`` by default).
``python -m retrieval`` runs them on ``.npy`` files.
"""
from .search import rerank, topk

__all__ = ["topk", "rerank"]
