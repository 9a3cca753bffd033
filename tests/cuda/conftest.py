"""The GPU kernels' tests: run them in their own process, under the simulator or on a GPU.

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda -m "cudasim or cuda" -p no:cacheprovider

The simulator must be switched on before Numba is first imported, hence the separate
process. Without it and without a GPU these tests fail (they never pass silently).
Tests marked ``cuda`` need real hardware (torch CUDA tensors, hardware limits) and are
skipped under the simulator, which cannot run them.

Every launch checks its arguments against the kernel's declared types
(``gpu.launch.CHECK_ARGUMENTS``): the compile-time check (``numba_impl.gpu.compile``) builds
those, so it checks what runs. On hardware, ``ALIGNEDREID_KERNEL_FIGURES=PATH`` writes the
registers and local memory of every kernel the run loaded to ``PATH`` (JSON).
"""
import json
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
def _declared_arguments(monkeypatch):
    from numba_impl.gpu import launch

    monkeypatch.setattr(launch, "CHECK_ARGUMENTS", True)


def pytest_sessionfinish(session):
    path = os.environ.get("ALIGNEDREID_KERNEL_FIGURES")
    if path and not SIMULATOR and _gpu_present():
        from numba_impl.gpu import compile as gpu_compile

        with open(path, "w") as f:
            json.dump(gpu_compile.loaded_figures(), f, indent=1)


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
    from numba_impl.gpu import launch

    monkeypatch.setattr(launch, "THREADS_PER_BLOCK", request.param)
    return request.param
