"""The GPU kernels' tests: run them in their own process, under the simulator or on a GPU.

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda -m "cudasim or cuda" -p no:cacheprovider

The simulator must be switched on before Numba is first imported, hence the separate
process. Without it and without a GPU these tests fail (they never pass silently).
Tests marked ``cuda`` need real hardware (torch CUDA tensors, hardware limits) and are
skipped under the simulator, which cannot run them.
"""
import os

import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _gpu_present():
    from numba import cuda

    try:
        return cuda.is_available()
    except Exception:  # noqa: BLE001 - no driver at all
        return False


@pytest.fixture(autouse=True)
def _cuda_target(request):
    if not SIMULATOR and not _gpu_present():
        pytest.fail("tests/cuda needs a GPU or the CUDA simulator: run it in a separate process "
                    "with NUMBA_ENABLE_CUDASIM=1 (see tests/cuda/conftest.py)", pytrace=False)
    if SIMULATOR and request.node.get_closest_marker("cuda"):
        pytest.skip("needs real CUDA hardware; the simulator is on")


@pytest.fixture(params=[32, 7], ids=["block32", "block7"])
def block(request, monkeypatch):
    """Two block sizes: sizes in the tests are not multiples, so last blocks are partial."""
    from numba_impl import gpu

    monkeypatch.setattr(gpu, "THREADS_PER_BLOCK", request.param)
    return request.param
