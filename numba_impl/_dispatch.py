"""Pick the kernel module for a target: ``cpu`` (``@njit``) or ``gpu`` (``@cuda.jit``)."""
from . import cpu


def backend(target):
    if target == "gpu":
        from . import gpu  # imported on first GPU use only

        return gpu
    return cpu
