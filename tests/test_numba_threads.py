"""numba_impl called from several Python threads at once, under every threading layer.

Numba's ``workqueue`` layer aborts the process when two threads enter parallel code
together; ``numba_impl.cpu.threads`` serialises parallel kernels there and leaves the
thread-safe layers concurrent. Each run is a fresh process (the layer is chosen once per
process, by ``NUMBA_THREADING_LAYER``): four threads call several functions, in different
orders, many times, and every result must equal the single-threaded one bit for bit (the
same kernels on the same inputs; BLAS products of one shape are deterministic).
"""
import os
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent("""
    import threading
    import numba
    import numpy as np
    import numba_impl

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 6, 16)), rng.normal(size=(30, 6, 16))
    pairs = rng.normal(size=(600, 4, 8))  # more than _consts.PAIR_BLOCK: the parallel kernels
    d = rng.random((7, 9, 600))
    labels = np.repeat(np.arange(10), 2)
    calls = {
        "local_dist": lambda: numba_impl.local_dist(x, y, chunk_size=7),
        "local_dist_vjp": lambda: numba_impl.local_dist_vjp(x, y, np.ones((20, 30))),
        "batch_local_dist": lambda: numba_impl.batch_local_dist(pairs, pairs[::-1]),
        "batch_local_dist_vjp": lambda: numba_impl.batch_local_dist_vjp(pairs, pairs[::-1],
                                                                         np.ones(600)),
        "shortest_dist": lambda: numba_impl.shortest_dist(d),
        "shortest_dist_vjp": lambda: numba_impl.shortest_dist_vjp(d, np.ones(600)),
        "normalize_vjp": lambda: numba_impl.normalize_vjp(x, y[:20], axis=1),
        "euclidean_dist_vjp": lambda: numba_impl.euclidean_dist_vjp(x[0], y[0], np.ones((6, 6))),
        "hard_example_mining": lambda: numba_impl.hard_example_mining(
            numba_impl.local_dist(x, x), labels, return_inds=True),
    }
    want = {name: call() for name, call in calls.items()}  # single-threaded
    names = list(calls)
    failures = []

    def same(a, b):
        if isinstance(a, tuple):
            return all(same(p, q) for p, q in zip(a, b))
        return np.array_equal(a, b)

    def worker(k):
        try:
            for rep in range(8):
                for name in names[k:] + names[:k]:  # each thread its own order
                    if not same(calls[name](), want[name]):
                        failures.append(f"thread {k}: {name} differs")
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(f"thread {k}: {error!r}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("layer", numba.threading_layer())
    print("\\n".join(failures) or "ok")
""")


@pytest.mark.parametrize("layer", ["workqueue", "default"])
def test_concurrent_calls_match_single_threaded(layer):
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer, "PYTHONWARNINGS": "ignore"}
    if layer == "default":
        env.pop("NUMBA_THREADING_LAYER")
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, (f"threading layer {layer}: exit {done.returncode}\n"
                                  f"{done.stderr[-2000:]}")
    lines = done.stdout.strip().splitlines()
    if layer != "default":
        assert lines[0] == f"layer {layer}", lines[0]
    assert lines[1:] == ["ok"], "\n".join(lines)
