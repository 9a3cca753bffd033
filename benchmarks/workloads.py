"""The three workloads, each a list of rows timed in one process run.

A row is one implementation on one workload.  Times are medians over
repeats after warm-up calls (JIT compilation, allocator warm-up); on CUDA the
device is synchronised around every timed call.  The query x gallery rows
each run in a fresh subprocess so that their peak memory is their own.
"""

import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import torch

from . import naive

STRIPES, FEATURES = 8, 128
MARKET_QUERY, MARKET_GALLERY = 3368, 19732


def _optional(module, attr):
    """``module.attr`` or the reason it cannot be had (never raises)."""
    try:
        return getattr(importlib.import_module(module), attr), None
    except (ImportError, AttributeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn, device, repeats, warmup=2):
    """Median wall time of ``fn()`` over ``repeats`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _row(workload, name, seconds=None, note="", **extra):
    return dict(workload=workload, row=name, seconds=seconds, note=note, **extra)


def _features(count, device, dtype=torch.float32, seed=0):
    """Seeded random stripe features, normalised per stripe as in training."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(count, STRIPES, FEATURES, generator=gen, dtype=dtype)
    x /= x.norm(dim=-1, keepdim=True) + 1e-12
    return x.to(device)


def _timed_or_missing(rows, workload, name, fn, device, repeats, missing):
    """Time ``fn`` into a row, or record why the row is not available."""
    if missing is not None:
        rows.append(_row(workload, name, note=f"not available ({missing})"))
        return
    try:
        rows.append(_row(workload, name, median_seconds(fn, device, repeats)))
    except Exception as exc:  # a broken optional row must not end the run
        rows.append(_row(workload, name,
                         note=f"not available ({type(exc).__name__}: {exc})"))


def training_step(device, quick):
    """batch_local_dist forward + backward on 128 pairs, 8x8 stripes."""
    import torch_impl

    work, pairs = "training step", 128
    repeats = 10 if quick else 30
    x = _features(pairs, device, seed=1).requires_grad_()
    y = _features(pairs, device, seed=2).requires_grad_()

    def step(fn):
        def run():
            x.grad = y.grad = None
            fn(x, y).sum().backward()
        return run

    rows = []
    rows.append(_row(work, "naive", median_seconds(
        step(naive.batch_local_dist), device, repeats)))
    rows.append(_row(work, "torch_impl", median_seconds(
        step(torch_impl.batch_local_dist), device, repeats)))
    bridge, missing = _optional("numba_impl.autograd", "batch_local_dist")
    _timed_or_missing(rows, work, "numba_impl.autograd",
                      step(bridge) if bridge else None, device, repeats, missing)
    goals = [("torch_impl", ">= 5x faster than naive", 5.0),
             ("numba_impl.autograd", ">= 20x faster than naive", 20.0)]
    return rows, _speedup_goals(rows, work, goals)


def large_batch(device, quick):
    """shortest_dist forward on [8, 8, 65536] float32, and a plain copy."""
    import torch_impl

    work = "large batch"
    repeats = 10 if quick else 30
    gen = torch.Generator().manual_seed(3)
    d = torch.rand(STRIPES, STRIPES, 65536, generator=gen).to(device)
    d_np = d.cpu().numpy()
    rows = []
    with torch.no_grad():
        rows.append(_row(work, "naive", median_seconds(
            lambda: naive.shortest_dist(d), device, repeats)))
        rows.append(_row(work, "torch_impl", median_seconds(
            lambda: torch_impl.shortest_dist(d), device, repeats)))
    numba_sd, missing = _optional("numba_impl", "shortest_dist")
    if device != "cpu" and missing is None:
        missing = "NumPy arrays run on the CPU only"
    _timed_or_missing(rows, work, "numba_impl",
                      (lambda: numba_sd(d_np)) if numba_sd else None,
                      "cpu", repeats, missing)
    rows.append(_row(work, "copy (numpy)", median_seconds(
        d_np.copy, "cpu", repeats)))
    rows.append(_row(work, "copy (torch)", median_seconds(
        d.clone, device, repeats)))
    goals = _speedup_goals(
        rows, work, [("torch_impl", ">= 3x faster than naive", 3.0)])
    goals.append(_ratio_goal(rows, work, "numba_impl", "copy (numpy)",
                             "<= 2x the numpy copy", 2.0))
    return rows, goals


def _seconds(rows, name):
    for row in rows:
        if row["row"] == name:
            return row["seconds"]
    return None


def _goal(work, row, goal, measured, met):
    return dict(workload=work, row=row, goal=goal, measured=measured, met=met)


def _speedup_goals(rows, work, goals):
    """Goals of the form "at least ``factor`` times faster than naive"."""
    base = _seconds(rows, "naive")
    out = []
    for name, text, factor in goals:
        secs = _seconds(rows, name)
        if secs is None or base is None:
            out.append(_goal(work, name, text, "n/a", False))
        else:
            speedup = base / secs
            out.append(_goal(work, name, text, f"{speedup:.1f}x",
                             speedup >= factor))
    return out


def _ratio_goal(rows, work, name, base_name, text, limit):
    """A goal "time of ``name`` at most ``limit`` times ``base_name``"."""
    secs, base = _seconds(rows, name), _seconds(rows, base_name)
    if secs is None or base is None:
        return _goal(work, name, text, "n/a", False)
    ratio = secs / base
    return _goal(work, name, text, f"{ratio:.2f}x", ratio <= limit)


# -- query x gallery: one subprocess per row ---------------------------------

def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PeakRss:
    """Peak resident memory while the block runs (sampling thread plus
    ``getrusage``, which catches spikes shorter than the sampling period)."""

    def __enter__(self):
        self.base = _rss_bytes()
        self.max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak, self._stop = self.base, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        max_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if max_after > self.max_before:       # a new lifetime peak (KiB)
            self.peak = max(self.peak, max_after * 1024)
        self.increase = self.peak - self.base


def _bare_products(x, y, rows=64, cols=4096):
    """Only the stripe Gram products of query x gallery, block by block."""
    xs, ys = x.transpose(0, 1), y.transpose(0, 1).contiguous()
    m, n, dim = xs.shape[0], ys.shape[0], xs.shape[2]
    out = None
    for q in range(0, xs.shape[1], rows):
        a = xs[:, q:q + rows].reshape(-1, dim)
        for g in range(0, ys.shape[1], cols):
            b = ys[:, g:g + cols].reshape(-1, dim)
            if out is None or out.shape != (a.shape[0], b.shape[0]):
                out = torch.empty(a.shape[0], b.shape[0], dtype=x.dtype,
                                  device=x.device)
            torch.mm(a, b.t(), out=out)
    return out


def child_row(name, queries, gallery, device):
    """Run one query x gallery row in this process; return its figures."""
    x, y = _features(queries, device, seed=4), _features(gallery, device, seed=5)
    small_x, small_y = x[:4], y[:16]
    if name == "bare matmul":
        fn, args, small = _bare_products, (x, y), (small_x, small_y)
    elif name == "torch_impl":
        import torch_impl
        fn, args, small = torch_impl.local_dist, (x, y), (small_x, small_y)
    elif name == "numba_impl":
        import numba_impl
        fn = numba_impl.local_dist
        args = (x.cpu().numpy(), y.cpu().numpy())
        small = (args[0][:4], args[1][:16])
    else:
        raise ValueError(f"unknown row {name!r}")
    if "OMP_NUM_THREADS" in os.environ:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    with torch.no_grad():
        fn(*small)                     # warm-up: JIT, kernels, allocator
        _sync(device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with _PeakRss() as rss:
            start = time.perf_counter()
            fn(*args)
            _sync(device)
            seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else rss.increase)
    return dict(seconds=seconds, peak_mb=peak / 2**20)


def query_gallery(device, quick):
    """local_dist for Market-1501 sizes; each row in its own subprocess."""
    work = "query x gallery"
    queries = MARKET_QUERY
    gallery = MARKET_GALLERY // 10 if quick else MARKET_GALLERY
    rows = []
    for name in ("bare matmul", "torch_impl", "numba_impl"):
        if name == "numba_impl" and device != "cpu":
            rows.append(_row(work, name, note="not available (CPU only)"))
            continue
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.workloads", name,
             str(queries), str(gallery), device],
            capture_output=True, text=True)
        if proc.returncode != 0:
            reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            rows.append(_row(work, name, note=f"not available ({reason})"))
            continue
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(_row(work, name, figures["seconds"],
                         peak_mb=figures["peak_mb"],
                         note=f"{queries} x {gallery} images"))
    goals = [
        _peak_goal(rows, work, "torch_impl", 3 * 1024, "peak < 3 GB"),
        _ratio_goal(rows, work, "torch_impl", "bare matmul",
                    "<= 4x bare matmul", 4.0),
        _peak_goal(rows, work, "numba_impl", 2 * 1024, "peak < 2 GB"),
        _ratio_goal(rows, work, "numba_impl", "bare matmul",
                    "<= 2.5x bare matmul", 2.5),
    ]
    return rows, goals


def _peak_goal(rows, work, name, limit_mb, text):
    for row in rows:
        if row["row"] == name and row.get("peak_mb") is not None:
            return _goal(work, name, text, f"{row['peak_mb']:.0f} MB",
                         row["peak_mb"] < limit_mb)
    return _goal(work, name, text, "n/a", False)


WORKLOADS = {
    "training": training_step,
    "large-batch": large_batch,
    "query-gallery": query_gallery,
}

if __name__ == "__main__":
    # Child process of query_gallery: name, queries, gallery, device.
    row_name, n_query, n_gallery, dev = sys.argv[1:5]
    print(json.dumps(child_row(row_name, int(n_query), int(n_gallery), dev)))
