"""Compile every GPU kernel without a GPU and check what the hardware needs of it.

    python -m numba_impl.gpu.compile [--targets sm_90,sm_80] [--json PATH]

Each kernel of ``numba_impl.gpu`` (``gpu.KERNELS``, with its declared argument types) is
compiled for float32 and float64 by NVVM to PTX, for each target, and assembled by the
toolkit's ``ptxas -v``. Stripe counts are run-time sizes (no kernel has per-thread
tables), so one build per dtype covers them all. A table of registers, local memory
(stack frame) and spills is printed, and the run fails if any kernel breaks a rule:

- no local memory and no spills: local memory is reserved by the driver for every
  thread that can be resident, outside torch's allocator;
- at most ``MAX_REGISTERS`` registers per thread;
- no float64 instruction in a float32 kernel;
- no atomic instruction: gradients are gathered, so they are the same bits run to run;
- formula 2 (``gpu.FORMULA_2``): no ``fma`` and no multiplication whose result an
  addition takes without explicit rounding (``ptxas`` may fuse such a pair), so that
  formula 2 rounds cell by cell as the oracle does.

It needs the CUDA toolkit (NVVM, libdevice, ``ptxas``: ``CUDA_HOME`` or
``/usr/local/cuda``), neither a GPU nor a driver; ``offline_target`` is the one shim that
lets numba-cuda 0.30 compile without them. Without the toolkit it fails and says so.
"""
import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types

#: Register limit: an SM's 65536 registers then hold at least 1024 threads (8 blocks of
#: ``gpu.THREADS_PER_BLOCK``), half the 2048 it can run, enough to hide memory latency.
MAX_REGISTERS = 64
#: Where ``ptxas`` is looked for before ``PATH``.
TOOLKIT_HOMES = (os.environ.get("CUDA_HOME"), "/usr/local/cuda")
#: Targets checked by default: the H200 (Hopper) and one older generation (Ampere).
TARGETS = ("sm_90", "sm_80")
DTYPES = ("float32", "float64")


class ToolkitMissing(RuntimeError):
    """The CUDA toolkit (NVVM, libdevice or ptxas) is not installed."""


def _compute_capability(target):
    """``sm_90`` -> ``(9, 0, "a")`` (what numba-cuda builds for a Hopper device), ``sm_80`` -> ``(8, 0)``."""
    major, minor = int(target[3:-1]), int(target[-1])
    return (major, minor, "a") if major >= 9 else (major, minor)


def _nvrtc_loadable():
    from numba.cuda import cuda_paths

    try:
        cuda_paths._get_nvrtc()
    except Exception:  # noqa: BLE001 - any failure to load it means: not there
        return False
    return True


@contextlib.contextmanager
def offline_target(cc):
    """Let numba-cuda 0.30 compile for compute capability ``cc`` without GPU, driver or NVRTC.

    Compiling to PTX needs only NVVM and libdevice, but numba-cuda asks the machine three
    more things: the current device's compute capability (when it compiles a device
    function), NVRTC's list of targets (to pick the closest one; its documented
    ``NUMBA_FORCE_CUDA_CC`` setting skips that) and NVRTC's path (when it looks up the
    toolkit). Inside the block they answer ``cc`` and "no NVRTC"; everything is restored
    on exit.
    """
    from numba.cuda import config, cuda_paths, dispatcher

    saved = config.FORCE_CUDA_CC, dispatcher.get_current_device, cuda_paths._get_nvrtc_path
    config.FORCE_CUDA_CC = cc
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc[:2])
    if not _nvrtc_loadable():
        cuda_paths._get_nvrtc_path = lambda: cuda_paths._env_path_tuple("absent", None)
    try:
        yield
    finally:
        config.FORCE_CUDA_CC, dispatcher.get_current_device, cuda_paths._get_nvrtc_path = saved


def find_ptxas():
    """Path of ``ptxas``: ``$CUDA_HOME/bin``, then ``/usr/local/cuda/bin``, then ``PATH``."""
    for home in TOOLKIT_HOMES:
        if home and os.access(os.path.join(home, "bin", "ptxas"), os.X_OK):
            return os.path.join(home, "bin", "ptxas")
    found = shutil.which("ptxas")
    if found is None:
        raise ToolkitMissing("ptxas not found (CUDA_HOME, /usr/local/cuda/bin, PATH): the "
                             "compile-time check needs the CUDA toolkit")
    return found


def compile_ptx(pyfunc, argtypes, target):
    """PTX of kernel ``pyfunc`` for ``argtypes`` (Numba types) on ``target`` (e.g. ``sm_90``)."""
    from numba import cuda
    from numba.core import types as nbtypes

    cc = _compute_capability(target)
    try:
        with offline_target(cc):
            ptx, _ = cuda.compile_ptx(pyfunc, nbtypes.void(*argtypes), cc=cc[:2])
    except OSError as error:  # NVVM or libdevice missing
        raise ToolkitMissing(f"NVVM could not compile ({error}): the compile-time check "
                             "needs the CUDA toolkit") from error
    return ptx


_PROPERTIES = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGISTERS = re.compile(r"Used (\d+) registers")


def assemble(ptx, target):
    """``ptxas -v`` on ``ptx``: ``dict(registers, local_bytes, spill_stores, spill_loads)``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        arch = target + "".join(_compute_capability(target)[2:])
        done = subprocess.run([find_ptxas(), "-v", f"-arch={arch}",
                               "-o", os.path.join(tmp, "kernel.cubin"), path],
                              capture_output=True, text=True)
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"ptxas failed for {target}:\n{log}")
    stack, stores, loads = (int(v) for v in _PROPERTIES.search(log).groups())
    return dict(registers=int(_REGISTERS.search(log).group(1)), local_bytes=stack,
                spill_stores=stores, spill_loads=loads)


def _instructions(ptx):
    """``(opcode, operands)`` of every instruction line of ``ptx``."""
    for line in ptx.splitlines():
        line = line.split("//")[0].strip()
        match = re.match(r"(?:@!?%\w+\s+)?([a-z][\w.]*)\s+(.*);$", line)
        if match:
            yield match.group(1), [op.strip() for op in match.group(2).split(",")]


def float64_instructions(ptx):
    """Instructions that compute or convert in float64."""
    return [op for op, _ in _instructions(ptx) if ".f64" in op]


def atomic_instructions(ptx):
    return [op for op, _ in _instructions(ptx) if op.startswith(("atom.", "red."))]


def fused_or_fusable(ptx):
    """``fma`` instructions, and additions that take the result of a multiplication where
    neither carries an explicit rounding mode: ``ptxas`` may fuse those into an ``fma``."""
    products, found = set(), []
    for op, operands in _instructions(ptx):
        parts = op.split(".")
        if parts[0] == "fma":
            found.append(op)
        elif parts[0] == "mul" and parts[1] in ("f32", "f64"):
            products.add(operands[0])
        elif parts[0] in ("add", "sub") and parts[1] in ("f32", "f64"):
            if products.intersection(operands[1:]):
                found.append(f"{op} of a mul")
    return found


def check_target(target):
    """One row per kernel and dtype for ``target``: resources and the rules' findings."""
    from .. import gpu

    rows = []
    for name, (kernel, codes) in sorted(gpu.KERNELS.items()):
        for dtype in DTYPES:
            ptx = compile_ptx(kernel.py_func, gpu.argument_types(codes, dtype), target)
            row = dict(kernel=name, dtype=dtype, target=target, **assemble(ptx, target))
            row["float64"] = float64_instructions(ptx) if dtype == "float32" else []
            row["atomics"] = atomic_instructions(ptx)
            row["fma"] = fused_or_fusable(ptx) if name in gpu.FORMULA_2 else []
            rows.append(row)
    return rows


def loaded_figures():
    """On a GPU: registers, local memory and the block limit of every kernel build this
    process has loaded, as the driver reports them (one row per kernel and signature)."""
    from .. import gpu

    rows = []
    for name, (kernel, _) in sorted(gpu.KERNELS.items()):
        for argtypes, loaded in kernel.overloads.items():
            rows.append(dict(kernel=name, signature=str(argtypes),
                             registers=loaded.regs_per_thread,
                             local_bytes=loaded.local_mem_per_thread,
                             max_threads_per_block=loaded.max_threads_per_block))
    return rows


def violations(row):
    """What ``row`` breaks, in words (empty when the kernel is fit for the hardware)."""
    found = []
    if row["local_bytes"] or row["spill_stores"] or row["spill_loads"]:
        found.append(f"{row['local_bytes']} bytes local memory, spills {row['spill_stores']}/"
                     f"{row['spill_loads']} bytes")
    if row["registers"] > MAX_REGISTERS:
        found.append(f"{row['registers']} registers > {MAX_REGISTERS}")
    for key, what in (("float64", "float64 instructions"), ("atomics", "atomic instructions"),
                      ("fma", "fused or fusable multiply-adds in formula 2")):
        if row[key]:
            found.append(f"{what}: {', '.join(sorted(set(row[key])))}")
    return found


def table(rows):
    header = ("kernel", "dtype", "target", "registers", "local bytes", "spills", "verdict")
    lines = [(r["kernel"], r["dtype"], r["target"], r["registers"], r["local_bytes"],
              r["spill_stores"] + r["spill_loads"], "; ".join(violations(r)) or "ok")
             for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*map(str, line)) for line in lines])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m numba_impl.gpu.compile",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help="comma-separated, e.g. sm_90,sm_80")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child: one target, JSON out
    args = parser.parse_args(argv)
    if args.one:
        json.dump(check_target(args.one), sys.stdout)
        return 0
    try:
        find_ptxas()  # fail early and clearly without the toolkit
    except ToolkitMissing as missing:
        print(f"python -m numba_impl.gpu.compile: {missing}", file=sys.stderr)
        return 1
    # One process per target: numba-cuda keeps a device function built for the first
    # target it was compiled for. They run side by side.
    children = [subprocess.Popen([sys.executable, "-m", "numba_impl.gpu.compile", "--one", t],
                                 stdout=subprocess.PIPE, text=True)
                for t in args.targets.split(",")]
    rows = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode != 0:
            print("the compile-time check failed (see above)", file=sys.stderr)
            return 1
        rows += json.loads(out)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    bad = [r for r in rows if violations(r)]
    print(f"\n{len(rows)} kernel builds, {len(bad)} unfit for the hardware")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
