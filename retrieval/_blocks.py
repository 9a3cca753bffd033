"""Searches as Dask graphs: one task per block of pairs, a tree of merges per query block.

A task reads its block of query rows and its block of candidates, computes their
distances with the implementation's own function and reduces them at once to the block's
top ``k`` (``_rank.smallest``), so a block of distances lives only inside the task that
made it: never more blocks than running tasks. The partial results of each block of query
rows merge in a tree (``_rank.merge``, ``FAN_IN`` at a time). The same graph runs on
Dask's threaded scheduler in this process, or on the workers of a ``distributed.Client``.
"""
import uuid

import dask
import dask.array as da
import numpy as np
from dask import delayed
from dask.callbacks import Callback
from tqdm.auto import tqdm

from . import _rank
from ._inputs import NpyFile

#: Partial results merged by one task of the tree.
FAN_IN = 8
#: Block tasks run at once in this process, unless ``dask.config.set(num_workers=...)``
#: says otherwise: one, because ``numba_impl``'s and ``torch_impl``'s kernels already use
#: every core for a block (two at once ran 5-20% slower on two cores, their thread pools
#: competing, and took twice the memory). Tasks still run on a thread of Dask's pool.
IN_PROCESS_TASKS = 1


# ----------------------------------------------------------------------------- reading
def shared(value, client):
    """``value`` as tasks should refer to it: an ndarray is sent to a client's workers once
    (scattered) rather than with every task; anything else is left as it is."""
    if client is not None and isinstance(value, np.ndarray):
        return client.scatter(value, broadcast=True, hash=False)
    return value


def row_blocks(value, size, client):
    """``[(start, stop, ref)]``: the rows of ``value`` in blocks of ``size``; ``read(ref)``
    in a task gives the rows. A Dask array is rechunked into the blocks."""
    if isinstance(value, da.Array):
        value = value.rechunk((size,) + value.shape[1:])
        bounds = np.cumsum((0,) + value.chunks[0]).tolist()
        chunks = value.to_delayed().reshape(-1)
        return [(a, b, (chunk, 0, b - a)) for a, b, chunk in zip(bounds, bounds[1:], chunks)]
    rows, source = value.shape[0], shared(value, client)
    return [(a, min(a + size, rows), (source, a, min(a + size, rows)))
            for a in range(0, rows, size)]


def read(ref):
    """The rows a ``row_blocks`` reference stands for, as an ndarray."""
    source, start, stop = ref
    return source.rows(start, stop) if isinstance(source, NpyFile) else source[start:stop]


def gathered(value, index):
    """A reference to the rows ``index`` (sorted, distinct) of ``value`` (as ``shared``
    gives it); ``read_gathered(ref)`` in a task gives them."""
    if isinstance(value, da.Array):
        rows = value[index]
        return (rows.rechunk(rows.shape).to_delayed().reshape(-1)[0], index, True)
    return (value, index, False)


def read_gathered(ref):
    source, index, taken = ref
    if taken:
        return source
    return source.take(index) if isinstance(source, NpyFile) else source[index]


# ------------------------------------------------------------------------------ graphs
class Graph:
    """Block tasks and their merge trees, built up one block of query rows at a time."""

    def __init__(self, k):
        self.k = k
        self.token = uuid.uuid4().hex
        self.results = []      # one Delayed (dist, index) per block of query rows
        self.row_pairs = []    # the pairs computed for each
        self.pairs = {}        # block task key -> the pairs it computes

    def add_row_block(self, blocks):
        """Add one block of query rows; ``blocks`` is ``[(pairs, function, *args)]``, each
        ``function(*args)`` the top ``k`` of one block of pairs."""
        row = len(self.results)
        parts = []
        for col, (pairs, function, *args) in enumerate(blocks):
            key = (f"retrieval-block-{self.token}", row, col)
            self.pairs[key] = pairs
            parts.append(delayed(function)(*args, dask_key_name=key))
        level = 0
        while len(parts) > 1:  # the tree: FAN_IN partial results per merge
            level += 1
            parts = [delayed(_rank.merge)(
                         self.k, *parts[a:a + FAN_IN],
                         dask_key_name=(f"retrieval-merge-{self.token}", row, level, a))
                     for a in range(0, len(parts), FAN_IN)]
        self.results.append(parts[0])
        self.row_pairs.append(sum(pairs for pairs, *_ in blocks))

    def compute(self, client, progress, desc):
        """Run the graph; return ``(dist, index)`` for all query rows, in order.

        The progress bar counts pairs: as block tasks finish in this process, as blocks
        of query rows finish on a cluster.
        """
        with tqdm(total=sum(self.row_pairs), unit="pair", unit_scale=True, desc=desc,
                  disable=not progress) as bar:
            if client is None:
                with _BlockCounter(self.pairs, bar):
                    parts = dask.compute(*self.results, scheduler="threads",
                                         num_workers=dask.config.get("num_workers", None)
                                         or IN_PROCESS_TASKS)
            else:
                from distributed import as_completed

                futures = client.compute(self.results)
                pairs = {future.key: n for future, n in zip(futures, self.row_pairs)}
                for future in as_completed(futures):
                    bar.update(pairs[future.key])
                parts = client.gather(futures)
        return (np.concatenate([d for d, _ in parts]), np.concatenate([i for _, i in parts]))


class _BlockCounter(Callback):
    """Moves the bar on as block tasks finish (threaded scheduler)."""

    def __init__(self, pairs, bar):
        super().__init__()
        self._pairs, self._bar = pairs, bar

    def _posttask(self, key, result, dsk, state, worker_id):
        pairs = self._pairs.get(key)
        if pairs:
            self._bar.update(pairs)
