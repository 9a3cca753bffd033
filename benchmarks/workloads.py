"""The three workloads, each a list of rows timed in one process run.

A row is one implementation on one workload.  Times are medians over
repeats after warm-up calls (JIT compilation, allocator warm-up), taken in
blocks that alternate between the rows of a workload (``median_seconds``); on
CUDA the device is synchronised around every timed call.  The query x gallery
rows each run in a fresh subprocess so that their peak memory is their own; on
CUDA that peak is read from the device (``torch.cuda.mem_get_info``, sampled
while the row runs), which sees every allocation, torch's or not.

Rows named ``floor: ...`` are not implementations: they time only the part of a
workload that no implementation of its kind can avoid (the fixed cost of an
autograd node; that plus the three batched stripe products, for implementations
that form them as torch_impl and the naive loop do; one ``minimum`` and one
addition per cell in eager torch), so that a goal can be read against what is
possible at all.
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

from tests import naive

STRIPES, FEATURES = 8, 128
MARKET_QUERY, MARKET_GALLERY = 3368, 19732
#: On CUDA, a query x gallery row that runs longer is reported, not waited for (three
#: rows must fit the benchmark step of benchmarks/gpu_check.sh).
CHILD_TIMEOUT = 60


def _optional(module, attr):
    """``module.attr`` or the reason it cannot be had (never raises)."""
    try:
        return getattr(importlib.import_module(module), attr), None
    except (ImportError, AttributeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def median_seconds(fns, device, repeats, rounds=3, warmup=1, between=None):
    """Median wall time of every callable in ``fns`` (name -> callable).

    Each callable is timed in ``rounds`` blocks of consecutive calls (after
    ``warmup`` untimed calls, so that every block measures the warm, repeated
    use the workloads stand for), the blocks of all callables alternating and
    their order rotating from round to round: on a shared machine a slow phase
    then falls on every row alike, not on whichever row ran during it.
    Each callable is timed at least ``repeats`` times (whole blocks).
    ``between`` (untimed) runs before every call, the other work of a real
    loop that the timed calls are interleaved with.
    """
    names = list(fns)
    times = {name: [] for name in names}
    if not names:
        return {}
    per_block = -(-repeats // rounds)
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            for _ in range(warmup):
                if between is not None:
                    between()
                fns[name]()
            _sync(device)
            for _ in range(per_block):
                if between is not None:
                    between()
                    _sync(device)
                start = time.perf_counter()
                fns[name]()
                _sync(device)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _row(workload, name, seconds=None, note="", **extra):
    return dict(workload=workload, row=name, seconds=seconds, note=note, **extra)


def _features(count, device, dtype=torch.float32, seed=0):
    """Seeded random stripe features, normalised per stripe as in training."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(count, STRIPES, FEATURES, generator=gen, dtype=dtype)
    x /= x.norm(dim=-1, keepdim=True) + 1e-12
    return x.to(device)


def _time_rows(work, candidates, device, repeats, between=None):
    """Rows for ``candidates`` (name -> (callable or None, note)), timed together
    (``between`` as in ``median_seconds``).

    A callable of ``None`` or one that raises on its first call (a broken optional
    row must not end the run) becomes a row "not available" with the reason.
    """
    ready, rows = {}, {}
    for name, (fn, note) in candidates.items():
        if fn is None:
            rows[name] = _row(work, name, note=f"not available ({note})")
            continue
        try:
            if between is not None:
                between()
            fn()
        except Exception as exc:
            rows[name] = _row(work, name,
                              note=f"not available ({type(exc).__name__}: {exc})")
            continue
        ready[name] = fn
    for name, seconds in median_seconds(ready, device, repeats,
                                        between=between).items():
        rows[name] = _row(work, name, seconds, note=candidates[name][1] or "")
    return [rows[name] for name in candidates]


class _EmptyStep(torch.autograd.Function):
    """A node that computes nothing: the fixed cost of autograd in a step,
    including handing each input a (fresh, unfilled) gradient."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.shapes, ctx.options = (x.shape, y.shape), dict(dtype=x.dtype,
                                                           device=x.device)
        return x.new_zeros(x.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        return tuple(torch.empty(shape, **ctx.options) for shape in ctx.shapes)


class _ProductsStep(torch.autograd.Function):
    """Only the stripe products of a step: the Gram product of each pair in the
    forward pass, and the two products of the gradient in the backward pass."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return torch.bmm(x, y.transpose(1, 2)).sum((1, 2))

    @staticmethod
    def backward(ctx, grad_out):
        x, y = ctx.saved_tensors
        w = grad_out[:, None, None].expand(-1, x.shape[1], y.shape[1]).contiguous()
        return torch.bmm(w, y), torch.bmm(w.transpose(1, 2), x)


def training_step(device, quick):
    """batch_local_dist forward + backward on 128 pairs, 8x8 stripes."""
    import torch_impl

    work, pairs = "training step", 128
    repeats = 12 if quick else 30
    x = _features(pairs, device, seed=1).requires_grad_()
    y = _features(pairs, device, seed=2).requires_grad_()

    def step(fn):
        def run():
            x.grad = y.grad = None
            fn(x, y).sum().backward()
        return run

    bridge, missing = _optional("numba_impl.autograd", "batch_local_dist")
    rows = _time_rows(work, {
        "naive": (step(naive.batch_local_dist_tanh), ""),
        "torch_impl": (step(torch_impl.batch_local_dist), ""),
        "numba_impl.autograd": (step(bridge) if bridge else None, missing),
        "floor: autograd": (step(_EmptyStep.apply),
                            "a node that computes nothing"),
        "floor: autograd + products": (
            step(_ProductsStep.apply), "only the 3 batched stripe products"),
    }, device, repeats)
    goals = [("torch_impl", ">= 5x faster than naive", 5.0),
             ("numba_impl.autograd", ">= 20x faster than naive", 20.0)]
    return rows, _speedup_goals(rows, work, goals)


class _StripeCNN:
    """The rest of a training step around the local loss: a small convolutional
    network whose 8 pooled rows are the stripe features (``[128, 8, 128]``, the
    isolated training row's size), its backward pass and an SGD step: about
    0.1 GFLOP and tens of MB of activations that leave the caches, the torch and
    BLAS thread pools in the state a real step leaves them."""

    def __init__(self, device, pairs):
        gen = torch.Generator().manual_seed(6)
        torch.manual_seed(6)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(32, 64, 3, padding=1, stride=2), torch.nn.ReLU(),
            torch.nn.Conv2d(64, FEATURES, 3, padding=1),
            torch.nn.AdaptiveAvgPool2d((STRIPES, 1))).to(device)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=1e-3)
        self.images = torch.randn(pairs, 3, 4 * STRIPES, 16, generator=gen).to(device)
        self.partner = torch.randperm(pairs, generator=gen).to(device)
        self.out = self.x = self.y = None

    def step(self):
        """Backward of the previous local loss into the network, an SGD step, and
        the next forward: leaves the features of the anchors ``self.x`` and of
        their partners ``self.y`` (leaves, as the isolated row's inputs are)."""
        if self.x is not None and self.x.grad is not None:
            grad = self.x.grad.index_add(0, self.partner, self.y.grad)
            self.out.backward(grad)
            self.opt.step()
        self.opt.zero_grad()
        self.out = self.net(self.images).squeeze(3).transpose(1, 2)
        self.x = self.out.detach().requires_grad_()
        self.y = self.out.detach().index_select(0, self.partner).requires_grad_()

    def loss(self, fn):
        """The timed part, the isolated training row's work: a local loss's
        forward and backward on the features of 128 pairs."""
        def run():
            fn(self.x, self.y).sum().backward()
        return run


def training_in_step(device, quick):
    """The training row's loss, timed inside whole training steps of a CNN."""
    import torch_impl

    work, pairs = "training (in a step)", 128
    repeats = 12 if quick else 30
    cnn = _StripeCNN(device, pairs)
    bridge, missing = _optional("numba_impl.autograd", "batch_local_dist")
    rows = _time_rows(work, {
        "naive": (cnn.loss(naive.batch_local_dist_tanh), ""),
        "torch_impl": (cnn.loss(torch_impl.batch_local_dist), ""),
        "numba_impl.autograd": (cnn.loss(bridge) if bridge else None, missing),
        "floor: autograd + products": (cnn.loss(_ProductsStep.apply),
                                       "only the 3 batched stripe products"),
    }, device, repeats, between=cnn.step)
    return rows, []


def _diagonal_ops(d):
    """Formula 2 on ``d`` (``[m, n, *batch]``) by the anti-diagonal wavefront,
    with every view made beforehand: per cell one ``minimum`` and one addition,
    and no Python work beyond calling them.

    Returns a callable that runs the operations and returns ``S[m-1, n-1]``.
    No implementation of formula 2 in eager torch operations can take less
    time: each cell needs the minimum of its neighbours and the addition of its
    cost, and eager torch has no fused minimum-add.
    """
    m, n = d.shape[0], d.shape[1]
    # Two diagonals, row r of diagonal k holding cell (r - 1, k - r + 1); the
    # +inf cells stand for the neighbours missing at the first row and column.
    work = torch.full((2, m + 1) + tuple(d.shape[2:]), float("inf"),
                      dtype=d.dtype, device=d.device)
    s_i, s_j = d.stride(0), d.stride(1)
    first = work[0, 1]
    steps = []
    for k in range(1, m + n - 1):
        lo = max(0, k - n + 1)
        count = min(k, m - 1) - lo + 1
        diag = d.as_strided((count,) + tuple(d.shape[2:]),
                            (s_i - s_j,) + d.stride()[2:],
                            d.storage_offset() + lo * s_i + (k - lo) * s_j)
        prev, out = work[(k + 1) % 2], work[k % 2, lo + 1:lo + 1 + count]
        steps.append((prev[lo:lo + count], prev[lo + 1:lo + 1 + count], out,
                      diag))
    result = work[(m + n) % 2, m]
    # Rows that stand for a missing neighbour on a later diagonal of the same
    # parity; the wavefront overwrites them, so every run sets them again.
    pads = (work[0, 2::2], work[1, 3::2])

    def run():
        for pad in pads:
            pad.fill_(float("inf"))
        first.copy_(d[0, 0])
        for up, left, out, diag in steps:
            torch.minimum(up, left, out=out)
            out.add_(diag)
        return result
    return run


def large_batch(device, quick):
    """shortest_dist forward on [8, 8, 65536] float32, and a plain copy."""
    import torch_impl

    work = "large batch"
    repeats = 12 if quick else 30
    gen = torch.Generator().manual_seed(3)
    d = torch.rand(STRIPES, STRIPES, 65536, generator=gen).to(device)
    d_np = d.cpu().numpy()
    numba_sd, missing = _optional("numba_impl", "shortest_dist")
    numba_input = d if device == "cuda" else d_np  # a CUDA tensor runs the GPU kernels
    with torch.no_grad():
        rows = _time_rows(work, {
            "naive": (lambda: naive.shortest_dist(d), ""),
            "torch_impl": (lambda: torch_impl.shortest_dist(d), ""),
            "numba_impl": ((lambda: numba_sd(numba_input)) if numba_sd else None,
                           missing),
            "copy (numpy)": (d_np.copy, ""),
            "copy (torch)": (d.clone, ""),
            "floor: torch ops": (_diagonal_ops(d),
                                 "one minimum + one add per cell, views "
                                 "made beforehand"),
        }, device, repeats)
    goals = _speedup_goals(
        rows, work, [("torch_impl", ">= 3x faster than naive", 3.0)])
    copy = "copy (torch)" if device == "cuda" else "copy (numpy)"
    goals.append(_ratio_goal(rows, work, "numba_impl", copy, f"<= 2x the {copy[6:-1]} copy",
                             2.0))
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


class _PeakDevice(_PeakRss):
    """Peak device memory in use while the block runs, read from the device
    (``cudaMemGetInfo``), so allocations outside torch's allocator count too."""

    @staticmethod
    def _used():
        free, total = torch.cuda.mem_get_info()
        return total - free

    def __enter__(self):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()  # what torch keeps cached is not this row's
        self.base = self.peak = self._used()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, self._used())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._used())
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
        if device == "cpu":
            args = (x.numpy(), y.numpy())
            small = (args[0][:4], args[1][:16])
        else:  # torch CUDA tensors: the GPU kernels, on torch's stream and allocator
            args, small = (x, y), (small_x, small_y)
    else:
        raise ValueError(f"unknown row {name!r}")
    if "OMP_NUM_THREADS" in os.environ:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    with torch.no_grad():
        fn(*small)                     # warm-up: JIT, kernels, allocator
        _sync(device)
        with (_PeakDevice() if device == "cuda" else _PeakRss()) as peak:
            start = time.perf_counter()
            fn(*args)
            _sync(device)
            seconds = time.perf_counter() - start
    return dict(seconds=seconds, peak_mb=peak.increase / 2**20)


def query_gallery(device, quick):
    """local_dist for Market-1501 sizes; each row in its own subprocess.

    ``quick`` takes a tenth of the gallery on the CPU only: on CUDA the full
    matrix takes well under a second a row, and a tenth would time overheads.
    """
    work = "query x gallery"
    queries = MARKET_QUERY
    gallery = MARKET_GALLERY // 10 if quick and device == "cpu" else MARKET_GALLERY
    rows = []
    for name in ("bare matmul", "torch_impl", "numba_impl"):
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.workloads", name,
                 str(queries), str(gallery), device],
                capture_output=True, text=True,
                timeout=CHILD_TIMEOUT if device == "cuda" else None)
        except subprocess.TimeoutExpired:
            rows.append(_row(work, name,
                             note=f"not available (over {CHILD_TIMEOUT} s)"))
            continue
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
    if device == "cuda":
        seconds = _seconds(rows, "numba_impl")
        goals.append(_goal(work, "numba_impl", "< 0.2 s (full Market-1501, H200)",
                           "n/a" if seconds is None else f"{seconds:.3f} s",
                           seconds is not None and seconds < 0.2
                           and gallery == MARKET_GALLERY))
    return rows, goals


def _peak_goal(rows, work, name, limit_mb, text):
    for row in rows:
        if row["row"] == name and row.get("peak_mb") is not None:
            return _goal(work, name, text, f"{row['peak_mb']:.0f} MB",
                         row["peak_mb"] < limit_mb)
    return _goal(work, name, text, "n/a", False)


def retrieval(device, quick):
    """topk and rerank at gallery scale (``benchmarks/retrieval.py``)."""
    from .retrieval import retrieval_rows

    return retrieval_rows(device, quick)


WORKLOADS = {
    "training": training_step,
    "training-in-step": training_in_step,
    "large-batch": large_batch,
    "query-gallery": query_gallery,
    "retrieval": retrieval,
}
#: Run only when named with --only: minutes long, and writes GBs of data once.
ON_REQUEST = ("retrieval",)

if __name__ == "__main__":
    # Child process of query_gallery: name, queries, gallery, device.
    row_name, n_query, n_gallery, dev = sys.argv[1:5]
    print(json.dumps(child_row(row_name, int(n_query), int(n_gallery), dev)))
