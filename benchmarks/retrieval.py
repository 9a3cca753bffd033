"""The retrieval workload: ``retrieval.topk`` and ``retrieval.rerank`` at gallery scale.

Every row runs in a subprocess of its own (``python -m benchmarks.retrieval ROW ...``),
so that its peak memory is its own, and is timed once, after a warm-up call on a small
problem (JIT, kernels, thread pools). Sub-workloads and their baselines:

- Market-1501 top-100 (3368 x 19732 images, 8 x 128 float32 stripes): ``topk`` in
  process and on a ``LocalCluster`` of two single-threaded workers, against
  ``numba_impl.local_dist`` on the whole matrix.
- MSMT17 size (11659 x 82161, synthetic): ``topk`` on memory-mapped ``.npy`` files
  against the bare stripe matrix products.
- Two-stage, 1,000 queries against 1,000,000 synthetic images with identity structure
  (global 512, local 8 x 128, float32; about 6 GB of ``.npy`` files written once to
  ``$ALIGNEDREID_CACHE``, default ``~/.cache/alignedreid-dp``): ``rerank`` at shortlist
  100, and the recall of the exhaustive ``topk`` top-10 (on a subsample of the queries)
  within its shortlist.

``--quick`` takes a tenth of every gallery (100,000 images for the two-stage search).
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .workloads import (MARKET_GALLERY, MARKET_QUERY, FEATURES, STRIPES, _bare_products,
                        _features, _goal, _PeakRss, _peak_goal, _ratio_goal, _row)

MSMT_QUERY, MSMT_GALLERY = 11659, 82161
TWO_STAGE_QUERY, TWO_STAGE_GALLERY, GLOBAL = 1000, 1_000_000, 512
#: Queries whose exhaustive top-10 the two-stage recall is measured against.
RECALL_QUERIES = 100
#: Noise around each identity's centre, per feature, relative to the centre's (about 2%
#: of the exhaustive top-10 is then another identity).
NOISE = 2.0
K, SHORTLIST = 100, 100


def _cache():
    return Path(os.environ.get("ALIGNEDREID_CACHE",
                               Path.home() / ".cache" / "alignedreid-dp"))


# ------------------------------------------------------------------------------ data
def _feature_files(name, queries, gallery):
    """Random normalised stripe features as .npy files (written once, then reused)."""
    folder = _cache() / f"{name}-{queries}x{gallery}"
    paths = folder / "query.npy", folder / "gallery.npy"
    if not all(p.exists() for p in paths):
        folder.mkdir(parents=True, exist_ok=True)
        for path, count, seed in zip(paths, (queries, gallery), (4, 5)):
            _write(path, (count, STRIPES, FEATURES), lambda a, b, s=seed: _features(
                b - a, "cpu", seed=s * 1000 + a // 65536).numpy())
    return paths


def _write(path, shape, block):
    """Write ``block(a, b)`` (rows ``a:b``) into a new .npy file, 65536 rows at a time,
    under a temporary name first: an interrupted run leaves no truncated file."""
    partial = path.with_suffix(".partial.npy")
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape)
    for a in range(0, shape[0], 65536):
        out[a:a + 65536] = block(a, min(shape[0], a + 65536))
    out.flush()
    del out
    os.replace(partial, path)


def _identity_files(queries, gallery):
    """Synthetic re-identification data: 20 gallery images per identity, each its
    identity's global and local centre plus noise, normalised as in training; the
    queries are new images of random gallery identities."""
    folder = _cache() / f"two-stage-{queries}x{gallery}-noise{NOISE}"
    names = ("query_global", "gallery_global", "query_local", "gallery_local")
    paths = {n: folder / f"{n}.npy" for n in names}
    if all(p.exists() for p in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    identities = max(1, gallery // 20)
    rng = np.random.default_rng(6)
    centres_global = rng.standard_normal((identities, GLOBAL), dtype=np.float32)
    centres_local = rng.standard_normal((identities, STRIPES, FEATURES), dtype=np.float32)
    query_ids = rng.integers(0, identities, queries)

    def images(ids, centres, seed):
        noise = np.random.default_rng(list(seed)).standard_normal(
            (len(ids),) + centres.shape[1:], dtype=np.float32)
        x = centres[ids] + NOISE * noise
        return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)

    for part, (kind, centres, dims) in enumerate((("global", centres_global, (GLOBAL,)),
                                                  ("local", centres_local,
                                                   (STRIPES, FEATURES)))):
        _write(paths[f"gallery_{kind}"], (gallery,) + dims,
               lambda a, b: images(np.arange(a, b) % identities, centres, (part, 0, a)))
        _write(paths[f"query_{kind}"], (queries,) + dims,
               lambda a, b: images(query_ids[a:b], centres, (part, 1, a)))
    return paths


# -------------------------------------------------------------------------- child rows
def _cluster(workers):
    from distributed import Client, LocalCluster

    env = {n: "1" for n in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None, env=env, timeout=120)
    return Client(cluster, timeout=120)


def child_row(name, queries, gallery):
    """Run one row in this process; return its figures."""
    import numba_impl
    import retrieval

    figures, client = {}, None
    if name in ("numba_impl.local_dist", "topk", "topk (LocalCluster)"):
        x = _features(queries, "cpu", seed=4).numpy()
        y = _features(gallery, "cpu", seed=5).numpy()
        if name == "numba_impl.local_dist":
            fn, args, kwargs = numba_impl.local_dist, (x, y), {}
        else:
            client = _cluster(2) if "Cluster" in name else None
            fn, args, kwargs = retrieval.topk, (x, y, K), dict(client=client)
        small = (x[:70], y[:300]) + args[2:]
    elif name in ("bare matmul", "topk (files)"):
        paths = _feature_files("msmt17", queries, gallery)
        if name == "bare matmul":
            import torch

            x, y = (torch.from_numpy(np.load(p)) for p in paths)
            fn, args, kwargs = torch.no_grad()(_bare_products), (x, y), {}
            small = (x[:70], y[:300])
        else:
            fn, args, kwargs = retrieval.topk, (*paths, K), {}
            small = (_features(70, "cpu").numpy(), _features(300, "cpu").numpy(), K)
    elif name.startswith("rerank"):
        impl = name.split()[1]
        paths = _identity_files(queries, gallery)
        names = ("query_global", "gallery_global", "query_local", "gallery_local")
        fn, args = retrieval.rerank, [paths[n] for n in names] + [K]
        kwargs = dict(shortlist=SHORTLIST, impl=impl)
        small = [np.load(p, mmap_mode="r")[:300] for p in args[:4]] + [K]
        out_path = paths["query_local"].with_name(f"found-by-rerank-{impl}.npy")
    elif name == "exhaustive topk":
        paths = _identity_files(queries, gallery)
        fn, args, kwargs = retrieval.topk, (paths["query_local"], paths["gallery_local"], 10), {}
        small = (np.load(paths["query_local"], mmap_mode="r")[:30],
                 np.load(paths["gallery_local"], mmap_mode="r")[:300], 10)
        # the first RECALL_QUERIES queries, the whole gallery
        sub = paths["query_local"].with_name(f"recall-{RECALL_QUERIES}.npy")
        np.save(sub, np.load(paths["query_local"], mmap_mode="r")[:RECALL_QUERIES])
        args = (sub,) + args[1:]
    else:
        raise ValueError(f"unknown row {name!r}")
    try:
        fn(*small, **kwargs)           # warm-up: JIT, kernels, thread pools, workers
        with _PeakRss() as rss:
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            figures["seconds"] = time.perf_counter() - start
        figures["peak_mb"] = rss.increase / 2**20
        if client is not None:
            import resource

            worker_peaks = client.run(
                lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            figures["worker_peak_mb"] = max(worker_peaks.values())
    finally:
        if client is not None:
            client.close(timeout=60)
            client.cluster.close(timeout=60)
    if name.startswith("rerank") or name == "exhaustive topk":
        save_to = out_path if name.startswith("rerank") else \
            paths["query_local"].with_name(f"found-by-topk-{RECALL_QUERIES}.npy")
        np.save(save_to, result[1])
        figures["indices"] = str(save_to)
    return figures


def _run_child(work, name, queries, gallery, note):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.retrieval", name,
                           str(queries), str(gallery)], capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return _row(work, name, note=f"not available ({reason})"), {}
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    extra = (f"; workers' peak {figures['worker_peak_mb']:.0f} MB"
             if "worker_peak_mb" in figures else "")
    return _row(work, name, figures["seconds"], peak_mb=figures["peak_mb"],
                note=note + extra), figures


def _recall(exhaustive_path, two_stage_path):
    """Mean fraction of each query's exhaustive top-10 found in its shortlist."""
    exhaustive, found = np.load(exhaustive_path), np.load(two_stage_path)
    hits = [np.intersect1d(e, f).size for e, f in zip(exhaustive, found)]
    return float(np.mean(hits)) / exhaustive.shape[1]


def retrieval_rows(device, quick):
    """The retrieval rows (CPU only) and their goals."""
    rows, goals = [], []
    if device != "cpu":
        return [_row("retrieval", "topk", note="not available (CPU rows only)")], []
    tenth = 10 if quick else 1

    work = "retrieval: Market-1501 top-100"
    size = (MARKET_QUERY, MARKET_GALLERY // tenth)
    note = f"{size[0]} x {size[1]} images"
    market = [_run_child(work, name, *size, note)[0]
              for name in ("numba_impl.local_dist", "topk", "topk (LocalCluster)")]
    rows += market
    goals.append(_ratio_goal(market, work, "topk", "numba_impl.local_dist",
                             "<= 1.1x numba_impl.local_dist", 1.1))
    goals.append(_half_peak_goal(market, work))
    goals.append(_ratio_goal(market, work, "topk (LocalCluster)", "topk",
                             "<= 1.3x topk in process", 1.3))

    work = "retrieval: MSMT17 size top-100"
    size = (MSMT_QUERY, MSMT_GALLERY // tenth)
    note = f"{size[0]} x {size[1]} images"
    msmt = [_run_child(work, name, *size, note + (", .npy files" if "files" in name else ""))[0]
            for name in ("bare matmul", "topk (files)")]
    rows += msmt
    goals.append(_peak_goal(msmt, work, "topk (files)", 2 * 1024, "peak < 2 GB"))
    goals.append(_ratio_goal(msmt, work, "topk (files)", "bare matmul",
                             "report: ratio to the bare products", float("inf")))

    work = "retrieval: two-stage top-100"
    size = (TWO_STAGE_QUERY, TWO_STAGE_GALLERY // tenth)
    note = f"{size[0]} x {size[1]} images, shortlist {SHORTLIST}"
    exhaustive, exhaustive_figures = _run_child(
        work, "exhaustive topk", *size, f"{RECALL_QUERIES} queries x {size[1]}, top-10")
    for impl in ("numba_impl", "torch_impl"):
        row, figures = _run_child(work, f"rerank {impl}", *size, note)
        if "indices" in figures and "indices" in exhaustive_figures:
            recall = _recall(exhaustive_figures["indices"], figures["indices"])
            row["note"] += f"; recall of the exhaustive top-10: {recall:.3f}"
            goals.append(_goal(work, row["row"], "report: recall of the exhaustive top-10",
                               f"{recall:.3f}", True))
        rows.append(row)
    rows.append(exhaustive)
    return rows, goals


def _half_peak_goal(rows, work):
    peaks = {r["row"]: r.get("peak_mb") for r in rows}
    topk, whole = peaks.get("topk"), peaks.get("numba_impl.local_dist")
    if topk is None or whole is None:
        return _goal(work, "topk", "peak <= half of local_dist's", "n/a", False)
    return _goal(work, "topk", "peak <= half of local_dist's",
                 f"{topk:.0f} MB vs {whole:.0f} MB", topk <= whole / 2)


if __name__ == "__main__":
    # Child process: row name, queries, gallery.
    row_name, n_query, n_gallery = sys.argv[1:4]
    print(json.dumps(child_row(row_name, int(n_query), int(n_gallery))))
