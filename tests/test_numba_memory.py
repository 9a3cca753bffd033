"""numba_impl's CPU kernels size their work buffers by the work, not by a worst case.

With many stripes and few pairs, buffers sized for ``_consts.PAIR_BLOCK`` pairs cost hundreds
of MiB (``local_dist`` of 2 x 2 images with 300 stripes rose peak memory by ~350 MiB).
Numba's allocations are invisible to ``tracemalloc``, so each function runs in a fresh
process that reads the kernel's high-water mark of resident memory (Linux: reset through
``/proc/self/clear_refs``, read as ``VmHWM``), after a warm-up that compiles every kernel
and starts the threads.

Bound (the stated model): a call may hold a few arrays of one ``m x n`` table per pair
(stripe distances, squared distances, the table of formula 2, its flow, the gradient):
at most ``8 W`` with ``W = pairs * m * n * itemsize``, plus ``ALLOWANCE`` for the
allocator's and the threads' own pages.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

ALLOWANCE_MIB = 16
STRIPES = 300

_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import numba_impl

    def high_water_kib():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))

    def reset():
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current resident size

    m = n = {stripes}
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, m, 16)), rng.normal(size=(2, n, 16))
    d = rng.random((m, n, 2))
    calls = {{
        "local_dist": lambda a, b, c: numba_impl.local_dist(a, b),
        "local_dist_vjp": lambda a, b, c: numba_impl.local_dist_vjp(a, b, np.ones((len(a), len(b)))),
        "batch_local_dist": lambda a, b, c: numba_impl.batch_local_dist(a, b),
        "batch_local_dist_vjp": lambda a, b, c: numba_impl.batch_local_dist_vjp(a, b, np.ones(len(a))),
        "shortest_dist": lambda a, b, c: numba_impl.shortest_dist(c),
        "shortest_dist_vjp": lambda a, b, c: numba_impl.shortest_dist_vjp(c, np.ones(c.shape[2])),
    }}
    rises = {{}}
    for name, call in calls.items():
        call(x[:, :3], y[:, :3], d[:3, :3])  # compile, start the threads
        reset()
        before = high_water_kib()
        call(x, y, d)
        rises[name] = (high_water_kib() - before) / 1024
    print(json.dumps(rises))
""")


def _clear_refs_works():
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _clear_refs_works(),
                    reason="peak memory is read from Linux's /proc/self (VmHWM, clear_refs)")
def test_peak_memory_is_bounded_by_the_work():
    pairs, itemsize = 2, 8  # 2 x 2 images: the aligned pairs; local_dist has 4 pairs
    done = subprocess.run([sys.executable, "-c", _SCRIPT.format(stripes=STRIPES)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    rises = json.loads(done.stdout.strip().splitlines()[-1])
    over = []
    for name, rise in rises.items():
        work = (4 if name.startswith("local_dist") else pairs) * STRIPES * STRIPES * itemsize
        bound = 8 * work / 2**20 + ALLOWANCE_MIB
        if rise > bound:
            over.append(f"numba_impl.{name} raised peak memory by {rise:.1f} MiB; bound "
                        f"{bound:.1f} MiB (8 x the work + {ALLOWANCE_MIB} MiB)")
    assert not over, f"{STRIPES} x {STRIPES} stripes:\n" + "\n".join(over)
