"""numba_impl's kernels are cached on disk under a key that covers every file whose code
they hold (``numba_impl._cache``): an edit of a shared body reaches the next process.

Each check runs a fresh Python process on a copy of the package, as a developer would
after an edit: the first run compiles and caches, the second loads from the cache, and
after ``_scalar.py`` is edited the third must compile the edited code, for the CPU
kernels (run) and the GPU kernels (their cache key; no GPU needed).
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numba_impl

_RUN = """
import json, numpy as np, numba_impl
from numba_impl.cpu import distance
from numba_impl.gpu import distance as gpu_distance
assert numba_impl.__file__.startswith({root!r}), numba_impl.__file__
value = float(numba_impl.euclidean_dist(np.zeros((1, 2)), np.array([[3.0, 4.0]]))[0, 0])
stats = distance._euclid_kernel.__wrapped__.stats
stamp = gpu_distance._euclid_kernel._cache._impl.locator.get_source_stamp()
print(json.dumps(dict(value=value, hits=sum(stats.cache_hits.values()),
                      misses=sum(stats.cache_misses.values()), gpu_stamp=repr(stamp))))
"""


def _run(root):
    env = dict(os.environ, PYTHONPATH=str(root))
    env.pop("NUMBA_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", _RUN.format(root=str(root))], cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_edit_of_a_shared_body_reaches_the_cached_kernels(tmp_path):
    package = pathlib.Path(numba_impl.__file__).parent
    shutil.copytree(package, tmp_path / "numba_impl",
                    ignore=shutil.ignore_patterns("__pycache__"))
    first, again = _run(tmp_path), _run(tmp_path)
    assert first["value"] == again["value"] == 5.0
    assert first["misses"] == 1 and again["hits"] == 1 and again["misses"] == 0, (first, again)
    assert first["gpu_stamp"] == again["gpu_stamp"]

    scalar = tmp_path / "numba_impl" / "_scalar.py"
    body = "    return math.sqrt(clamped(sq, clamp))\n"
    assert body in scalar.read_text()  # the edit below must change the distance
    scalar.write_text(scalar.read_text().replace(body, body.replace("))", ")) * 2")))
    edited = _run(tmp_path)
    assert edited["value"] == 10.0 and edited["misses"] == 1, edited
    assert edited["gpu_stamp"] != again["gpu_stamp"]
