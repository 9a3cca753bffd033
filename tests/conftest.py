"""The suite's pytest set-up: the ``impl`` fixture and the gate's verdict come from the plugin
``reference.gate.plugin`` (see its docstring: ``--impl``, ``--impl-array``,
``--gate-report``); here only what concerns this checkout's own folders.
"""
import os

pytest_plugins = ["reference.gate.plugin"]


def _cuda_kernels_runnable():
    """The CUDA tests need the simulator (NUMBA_ENABLE_CUDASIM=1, as CI runs them) or a GPU."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return True
    try:
        from numba import cuda

        return cuda.is_available()
    except Exception:  # noqa: BLE001 - no numba, no driver: no GPU
        return False


# tests/cuda runs in its own process (.ci/run): the simulator must be chosen before numba
# starts. Without it and without a GPU, plain `pytest` leaves the folder out and says so.
collect_ignore = [] if _cuda_kernels_runnable() else ["cuda"]


def pytest_report_collectionfinish(config, start_path, items):
    if collect_ignore:
        return ["tests/cuda not collected: no GPU here; run NUMBA_ENABLE_CUDASIM=1 pytest tests/cuda"]
    return []
