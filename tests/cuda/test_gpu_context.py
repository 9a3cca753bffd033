"""Where GPU work goes (``numba_impl.gpu.context``): each thread's stream and allocator.

The simulator runs kernels synchronously, so order between streams cannot be seen here;
these tests show that every launch and every array of a call follows the calling
thread's setting, which is what puts them on torch's stream and allocator on hardware
(``test_torch_cuda.py`` checks the ordering itself there).
"""
import threading

import numpy as np
import pytest

import numba_impl
from numba_impl.gpu import arrays
from numba_impl.gpu import context as _gpu_context

pytestmark = pytest.mark.cudasim


def test_the_setting_is_per_thread():
    from numba import cuda

    streams, seen = [cuda.stream(), cuda.stream()], {}
    both_inside = threading.Barrier(2)

    def work(k):
        with _gpu_context.launches(streams[k]):
            both_inside.wait()
            seen[k] = _gpu_context.current().stream
            both_inside.wait()
        seen[k, "after"] = _gpu_context.current().stream

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen[0] is streams[0] and seen[1] is streams[1]
    assert seen[0, "after"] == 0 and seen[1, "after"] == 0


def _inputs(rng):
    from numba import cuda

    return dict(feat=cuda.to_device(rng.standard_normal((6, 3, 4)).astype(np.float32)),
                flat=cuda.to_device(rng.standard_normal((6, 5)).astype(np.float32)),
                d=cuda.to_device(rng.random((3, 4)).astype(np.float32)))


def _calls(feat, flat, d):
    """Public functions on device inputs, with host labels and indices and a scalar
    grad_out (copied to the device inside): every host function of numba_impl.gpu."""
    labels, tri = np.array([0, 0, 1, 1, 2, 2]), numba_impl.TripletLoss(None)
    p_inds, n_inds = np.array([1, 0, 3, 2, 3, 2]), np.array([2, 2, 0, 0, 0, 0])
    return [
        numba_impl.shortest_dist(d), numba_impl.shortest_dist_vjp(d, 1.0),
        *numba_impl.local_dist_vjp(feat, feat, numba_impl.local_dist(feat, feat)),
        numba_impl.batch_local_dist(feat, feat),
        numba_impl.local_loss_vjp(tri, feat, labels=labels),
        numba_impl.local_loss_vjp(numba_impl.TripletLoss(0.3), feat, p_inds, n_inds),
        numba_impl.global_loss(tri, flat, labels)[0],
        numba_impl.global_loss_vjp(tri, flat, labels),
        numba_impl.normalize_vjp(flat, flat), numba_impl.stripe_dist_vjp(flat, flat),
    ]


def test_every_launch_and_array_follows_the_thread_setting(monkeypatch):
    from numba import cuda

    inputs = _inputs(np.random.default_rng(5))
    stream, made, launched = cuda.stream(), [], []
    numba_array, kernel_type = cuda.device_array, type(arrays._fill_kernel)
    configure = kernel_type.__getitem__

    def allocate(shape, dtype):
        made.append(numba_array(shape, dtype=dtype))
        return made[-1]

    def spy(kernel, config):
        launched.append(config[2] if len(config) > 2 else "the default stream")
        return configure(kernel, config)

    def bypass(*args, **kwargs):
        raise AssertionError("an array allocated around the thread's setting")

    monkeypatch.setattr(kernel_type, "__getitem__", spy)
    for name in ("device_array", "device_array_like", "to_device"):
        monkeypatch.setattr(cuda, name, bypass)
    with _gpu_context.launches(stream, allocate):
        results = _calls(**inputs)
    assert launched and all(s is stream for s in launched), set(map(str, launched))
    assert len(made) >= len(results)
