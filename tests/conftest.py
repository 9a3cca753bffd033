"""One fixture, ``impl``, runs every test against every implementation of the contract.

By default: ``reference``, ``numba_impl``, ``torch_impl`` and the torch bridge
``numba_impl.autograd`` (which provides only some functions). ``--impl MODULE`` replaces
them with your module(s), ``--impl-array numpy|torch`` says what arrays it takes.

A built-in package that exists but fails to import is an error; one not written yet is
named in the report header. A contract function that a built-in package lacks fails the
test; one that the bridge or a user's module lacks is skipped as "not provided", unless
the bridge promises it (``PARTIAL``).
"""
import importlib.util
import os

import pytest
from hypothesis import HealthCheck, settings

from reference.crosscheck import ARRAY_KINDS, Implementation

# Numba compiles on first call, far past Hypothesis's 200 ms deadline: no deadlines.
# `impl` is function-scoped but stateless, so sharing it across examples is safe.
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                   HealthCheck.function_scoped_fixture])
settings.register_profile("dev", max_examples=25, **_COMMON)
settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("thorough", max_examples=2000, **_COMMON)
PROFILE = os.environ.get("ALIGNEDREID_PROFILE", "ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)

BUILTIN = ("reference", "numba_impl", "torch_impl", "numba_impl.autograd")
# The bridge covers only the torch-facing functions; these it promises, so their tests
# fail rather than skip if it ever loses one.
PARTIAL = {"numba_impl.autograd": ("shortest_dist", "batch_local_dist", "local_dist")}


def pytest_addoption(parser):
    group = parser.getgroup("alignedreid-dp")
    group.addoption("--impl", action="append", default=[], metavar="MODULE",
                    help="run the suite against this module instead of the built-in packages")
    group.addoption("--impl-array", choices=ARRAY_KINDS, default=None,
                    help="the array kind of --impl modules (default: guessed from the name)")


def _written(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


def _candidates(config):
    """``[(name, Implementation or import error, partial)]`` for this run."""
    names = config.getoption("--impl") or [n for n in BUILTIN if _written(n)]
    user = bool(config.getoption("--impl"))
    out = []
    for name in names:
        try:
            impl = Implementation.load(name, config.getoption("--impl-array") if user else None)
        except Exception as error:  # noqa: BLE001 - reported as the test error below
            impl = error
        out.append((name, impl, user or name in PARTIAL))
    return out


def pytest_configure(config):
    config._alignedreid_impls = _candidates(config)


def pytest_report_header(config):
    lines = [f"hypothesis profile: {PROFILE}"]
    for name, impl, partial in config._alignedreid_impls:
        state = f"FAILS TO IMPORT ({impl!r})" if isinstance(impl, Exception) else impl.array
        lines.append(f"implementation {name}: {state}{' (partial)' if partial else ''}")
    if not config.getoption("--impl"):
        lines += [f"implementation {n}: not written yet" for n in BUILTIN if not _written(n)]
    return lines


def pytest_generate_tests(metafunc):
    if "impl" in metafunc.fixturenames:
        impls = metafunc.config._alignedreid_impls
        metafunc.parametrize("impl", impls, ids=[name for name, _, _ in impls], indirect=True)


@pytest.fixture
def impl(request):
    """The implementation under test; fails or skips per the rules above when it lacks a function."""
    name, implementation, partial = request.param
    if isinstance(implementation, Exception):
        raise implementation
    marker = request.node.get_closest_marker("uses")
    needed = marker.args if marker else ()
    missing = [fn for fn in needed if not implementation.provides(fn)
               and not (fn.endswith("_vjp") and implementation.array == "torch")]
    broken = [fn for fn in missing if fn in PARTIAL.get(name, ())]
    if broken:
        pytest.fail(f"{name} is missing function(s) it promises: {', '.join(broken)}")
    if missing and partial:
        pytest.skip(f"{name} does not provide {', '.join(missing)} (not provided)")
    if missing:
        pytest.fail(f"{name} is missing contract function(s): {', '.join(missing)}")
    return implementation


@pytest.fixture(scope="session")
def ref():
    """The oracle, seen through the same adapter as the implementation under test."""
    return Implementation.load("reference")


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
