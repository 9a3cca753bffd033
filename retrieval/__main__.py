"""``python -m retrieval QUERY.npy GALLERY.npy -k 100 [options]``: the top k on files.

The inputs are memory-mapped and read a block at a time (by the workers, with
``--scheduler`` or ``--workers``); the result is written to a temporary file beside
``--out`` and renamed when complete, so ``--out`` is either the whole result or absent.
"""
import argparse
import os
import re
import sys
import tempfile

import numpy as np

from . import search


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m retrieval",
        description="Each query's k nearest gallery images by the AlignedReID local "
                    "distance (exhaustive), or by global + weight * local on a shortlist "
                    "of the global distance (two-stage: give --global-query and "
                    "--global-gallery).")
    parser.add_argument("query", help="query stripe features [M, m, d], .npy")
    parser.add_argument("gallery", help="gallery stripe features [N, n, d], .npy")
    parser.add_argument("-k", type=int, required=True, help="neighbours per query")
    two = parser.add_argument_group("two-stage search")
    two.add_argument("--global-query", metavar="PATH", help="query global features [M, C]")
    two.add_argument("--global-gallery", metavar="PATH",
                     help="gallery global features [N, C]")
    two.add_argument("--shortlist", type=int, default=None,
                     help="candidates per query by the global distance (default 100)")
    two.add_argument("--weight", type=float, default=None,
                     help="weight of the local distance (default 1.0)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on this dask.distributed scheduler (its workers must "
                            "see the files at the same paths)")
    where.add_argument("--workers", type=int, metavar="N",
                       help="run on a local cluster of N single-threaded worker processes")
    parser.add_argument("--impl", default="numba_impl",
                        help="implementation computing the distances (default numba_impl)")
    parser.add_argument("--chunk-size", type=int, metavar="Q",
                        help="query images per block (default 512)")
    parser.add_argument("--out", default="result.npz",
                        help="output: distances and indices (default result.npz)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="to connect to the scheduler or start the workers (default 60)")
    return parser


def _check_args(parser, args):
    """What argparse cannot say, said before any work starts."""
    two_stage = (args.global_query, args.global_gallery)
    if any(two_stage) and not all(two_stage):
        parser.error("--global-query and --global-gallery go together")
    for flag, value in (("-k", args.k), ("--shortlist", args.shortlist),
                        ("--workers", args.workers), ("--chunk-size", args.chunk_size)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1; got {value}")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive; got {args.timeout}")
    for flag, value in (("--shortlist", args.shortlist), ("--weight", args.weight)):
        if value is not None and not any(two_stage):
            parser.error(f"{flag} is for the two-stage search: give --global-query and "
                         "--global-gallery too")
    args.shortlist = 100 if args.shortlist is None else args.shortlist
    args.weight = 1.0 if args.weight is None else args.weight
    for name, path in (("query", args.query), ("gallery", args.gallery),
                       ("--global-query", args.global_query),
                       ("--global-gallery", args.global_gallery)):
        if path is not None and not os.path.isfile(path):
            parser.error(f"{name}: no such file: {path}")
    folder = os.path.dirname(os.path.abspath(args.out))
    if os.path.isdir(args.out):
        parser.error(f"--out: {args.out} is a directory; give the path of the .npz to write")
    if not os.path.isdir(folder):
        parser.error(f"--out: no such directory: {folder}")
    if not os.access(folder, os.W_OK):
        parser.error(f"--out: cannot write to {folder}")


#: The functions' argument names, as the command line spells them.
_FLAGS = {"query_local": "query", "gallery_local": "gallery",
          "query_global": "--global-query", "gallery_global": "--global-gallery",
          "k": "-k", "shortlist": "--shortlist", "weight": "--weight", "impl": "--impl",
          "chunk_size": "--chunk-size"}


def _in_flags(message):
    """An error message of ``topk`` or ``rerank`` with the arguments named as flags."""
    return re.sub(r"\b(" + "|".join(_FLAGS) + r")\b", lambda m: _FLAGS[m.group(1)], message)


def _client(args):
    """A distributed.Client for --scheduler or --workers, or None (run in this process)."""
    if args.scheduler is None and args.workers is None:
        return None
    from distributed import Client, LocalCluster

    if args.scheduler is not None:
        return Client(args.scheduler, timeout=args.timeout)
    # One thread per worker, and one for each kernel's own thread pool (Numba, BLAS,
    # torch): the workers share the cores rather than each taking all of them.
    threads = str(max(1, (os.cpu_count() or 1) // args.workers))
    env = {name: threads for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                      "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None, env=env,
                           timeout=args.timeout)
    return Client(cluster, timeout=args.timeout)


def _umask():
    """This process's umask, read without changing it (Linux: /proc/self/status)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration):  # elsewhere: set and restore it at once
        umask = os.umask(0o022)
        os.umask(umask)
        return umask


def _save(path, **arrays):
    """Write ``arrays`` to ``path`` (.npz) through a temporary file in the same folder."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".retrieval-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes it private (0600): give it the mode a new file gets (umask)
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            np.savez(f, **arrays)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    client = None
    try:
        client = _client(args)
        options = dict(impl=args.impl, chunk_size=args.chunk_size,
                       progress=not args.no_progress, client=client)
        if args.global_query:
            dist, index = search.rerank(args.global_query, args.global_gallery, args.query,
                                        args.gallery, args.k, shortlist=args.shortlist,
                                        weight=args.weight, **options)
        else:
            dist, index = search.topk(args.query, args.gallery, args.k, **options)
    except (ValueError, TypeError, FileNotFoundError) as error:
        parser.exit(2, f"{parser.prog}: error: {_in_flags(str(error))}\n")
    except OSError as error:  # no scheduler at that address, no port for the workers
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    finally:
        if client is not None:
            cluster = client.cluster
            client.close(timeout=args.timeout)
            if cluster is not None and args.workers is not None:
                cluster.close(timeout=args.timeout)
    _save(args.out, distances=dist, indices=index)
    print(f"{dist.shape[0]} queries x top {dist.shape[1]}: written to {args.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
