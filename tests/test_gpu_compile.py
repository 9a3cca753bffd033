"""The compile-time check of the GPU kernels (``numba_impl.gpu.compile``): its shim and rules.

These compile small kernels for real targets with the CUDA toolkit (NVVM, libdevice,
ptxas) and no GPU; without the toolkit they fail, as the check itself does in CI. That
every kernel of ``numba_impl.gpu`` passes the rules is the job of
``python -m numba_impl.gpu.compile`` (a step of ``.ci/run``); here each rule is shown to
catch what it is for, so that its silence there means something.
"""
import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is part of the [numba] extra")

from numba import types  # noqa: E402

from numba_impl import gpu  # noqa: E402
from numba_impl.gpu import compile as gpu_compile  # noqa: E402

F32 = types.Array(types.float32, 1, "C")


def _ptx(pyfunc, argtypes, target="sm_90"):
    return gpu_compile.compile_ptx(pyfunc, argtypes, target)


def test_offline_target_patches_inside_and_restores_after():
    from numba.cuda import config, cuda_paths, dispatcher

    before = config.FORCE_CUDA_CC, dispatcher.get_current_device, cuda_paths._get_nvrtc_path
    with pytest.raises(RuntimeError, match="inside"):
        with gpu_compile.offline_target((8, 0)):
            assert config.FORCE_CUDA_CC == (8, 0)
            assert dispatcher.get_current_device().compute_capability == (8, 0)
            raise RuntimeError("inside")
    after = config.FORCE_CUDA_CC, dispatcher.get_current_device, cuda_paths._get_nvrtc_path
    assert all(a is b for a, b in zip(before, after))


def _twice(v):
    return v + v


_twice_device = cuda.jit(device=True)(_twice)


def _calls_a_device_function(a, out):
    i = cuda.grid(1)
    if i < a.size:
        out[i] = _twice_device(a[i])


@pytest.mark.parametrize("target", gpu_compile.TARGETS)
def test_a_kernel_with_a_device_function_compiles_without_a_gpu(target):
    # numba-cuda asks the current device for its compute capability when it builds a
    # device function: the case that needs the shim on a machine without a driver
    figures = gpu_compile.assemble(_ptx(_calls_a_device_function, (F32, F32), target), target)
    assert figures["registers"] > 0
    assert figures["local_bytes"] == figures["spill_stores"] == 0


def _mean_as_before(values, out):  # the float32 mean before the fix: `/ values.size`
    if cuda.grid(1) == 0:
        total = values[0]
        for k in range(1, values.size):
            total += values[k]
        out[0] = total / values.size


def _plus_one(values, out):  # float32 + 1 rounds as float32 + 1.0f: NVVM keeps it in float32
    i = cuda.grid(1)
    if i < values.size:
        out[i] = values[i] + 1


def _tenth(values, out):  # a Python float constant: float64 arithmetic
    i = cuda.grid(1)
    if i < values.size:
        out[i] = values[i] * 0.1


def test_float64_in_a_float32_kernel_is_found():
    assert gpu_compile.float64_instructions(_ptx(_mean_as_before, (F32, F32)))
    assert gpu_compile.float64_instructions(_ptx(_tenth, (F32, F32)))
    assert not gpu_compile.float64_instructions(_ptx(_plus_one, (F32, F32)))
    fixed = gpu.KERNELS["mean"]
    assert not gpu_compile.float64_instructions(
        _ptx(fixed[0].py_func, gpu.argument_types(fixed[1], np.float32)))


def _scatter(values, out):
    i = cuda.grid(1)
    if i < values.size:
        cuda.atomic.add(out, 0, values[i])


def test_atomics_are_found():
    assert gpu_compile.atomic_instructions(_ptx(_scatter, (F32, F32)))
    assert not gpu_compile.atomic_instructions(_ptx(_plus_one, (F32, F32)))


def _multiply_add(a, b, out):
    i = cuda.grid(1)
    if i < a.size:
        out[i] = a[i] * b[i] + out[i]


def test_fused_or_fusable_multiply_add_is_found():
    assert gpu_compile.fused_or_fusable(_ptx(_multiply_add, (F32, F32, F32)))
    assert not gpu_compile.fused_or_fusable(_ptx(_plus_one, (types.Array(types.float64, 1, "C"),) * 2))


def test_fusable_pair_without_fma_instruction_is_found():
    ptx = "\tmul.f32 \t%f3, %f1, %f2;\n\tadd.f32 \t%f5, %f4, %f3;\n\tmul.rn.f32 %f6, %f1, %f2;\n"
    assert gpu_compile.fused_or_fusable(ptx) == ["add.f32 of a mul"]


def _thread_table(values, out):
    i = cuda.grid(1)
    if i < values.size:
        table = cuda.local.array(64, types.float32)
        for k in range(64):
            table[k] = values[(i + k) % values.size]
        out[i] = table[i % 64]


def test_local_memory_is_read():
    figures = gpu_compile.assemble(_ptx(_thread_table, (F32, F32)), "sm_90")
    assert figures["local_bytes"] >= 64 * 4


def test_every_rule_has_its_verdict():
    clean = dict(kernel="k", dtype="float32", target="sm_90", registers=gpu_compile.MAX_REGISTERS,
                 local_bytes=0, spill_stores=0, spill_loads=0, float64=[], atomics=[], fma=[])
    assert gpu_compile.violations(clean) == []
    for change, words in ((dict(registers=gpu_compile.MAX_REGISTERS + 1), "registers"),
                          (dict(local_bytes=16), "local memory"), (dict(spill_loads=4), "spills"),
                          (dict(float64=["cvt.f64.f32"]), "float64"),
                          (dict(atomics=["atom.global.add.f32"]), "atomic"),
                          (dict(fma=["fma.rn.f32"]), "formula 2")):
        found = gpu_compile.violations({**clean, **change})
        assert len(found) == 1 and words in found[0], (change, found)


def test_every_kernel_of_gpu_is_declared():
    # a kernel written with a bare @cuda.jit would escape the compile-time check
    import importlib
    import pkgutil

    declared = {id(kernel) for kernel, _ in gpu.KERNELS.values()}
    modules = [importlib.import_module(f"numba_impl.gpu.{m.name}")
               for m in pkgutil.iter_modules(gpu.__path__)]
    kernels = [(module.__name__, name, value) for module in modules
               for name, value in vars(module).items()
               if type(value).__name__ == "CUDADispatcher" and not value.targetoptions.get("device")]
    assert kernels and all(id(value) in declared for _, _, value in kernels), \
        [f"{module}.{name}" for module, name, value in kernels if id(value) not in declared]


def test_missing_toolkit_fails_and_says_so(monkeypatch):
    monkeypatch.setattr(gpu_compile, "TOOLKIT_HOMES", ())
    monkeypatch.setenv("PATH", "")
    with pytest.raises(gpu_compile.ToolkitMissing, match="needs the CUDA toolkit"):
        gpu_compile.find_ptxas()


def test_loaded_figures_read_each_loaded_build(monkeypatch):
    import types as pytypes

    loaded = pytypes.SimpleNamespace(regs_per_thread=40, local_mem_per_thread=0,
                                     max_threads_per_block=1024)
    kernel = pytypes.SimpleNamespace(overloads={("float32[:]",): loaded})
    monkeypatch.setattr(gpu, "KERNELS", {"shortest": (kernel, ("F1",))})
    assert gpu_compile.loaded_figures() == [dict(
        kernel="shortest", signature="('float32[:]',)", registers=40, local_bytes=0,
        max_threads_per_block=1024)]
