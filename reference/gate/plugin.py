"""The pytest plugin of the test suite and of the conformance gate.

One fixture, ``impl``, runs every test against every implementation of the contract:
``reference``, ``numba_impl``, ``torch_impl`` and the torch bridge ``numba_impl.autograd``
by default; ``--impl MODULE`` (repeatable) replaces them with your module(s),
``--impl-array numpy|torch`` says what arrays it takes. The suite's ``conftest.py``
loads this plugin, and so does ``python -m reference.gate``.

- A built-in package that fails to import is an error; one that lacks a contract function
  fails the test. A function that the bridge or a user's module lacks is "not provided":
  its tests are skipped, never passed. A test of several functions runs when the module
  has at least one of them, the oracle standing in for the others
  (``Implementation.with_stand_ins``; never for the gradients a test of gradients
  judges); if such a test then never calls the module, it is skipped too, not counted
  as passed.
- Under ``--impl`` only the tests that judge an implementation on the contract run (the
  others, and those of other packages built on it, ``clauses.OTHER_PACKAGES``, are
  deselected); Hypothesis is derandomised and keeps no database (its scratch directory is
  a temporary one), so two runs give the same verdict; the module's conventions are
  measured first (``conventions.py``) and the oracle follows them.
- Every test of ``impl`` belongs to a clause of the contract (``clauses.py``); tests of
  input validation carry the marker ``validation`` (``-m "not validation"``: numerics
  only). Under ``--impl`` the run ends with the verdict by clause (``verdict.py``), and
  ``--gate-report PATH.json`` writes it as JSON (``verdict.schema.json``).
"""
import argparse
import importlib.util
import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, settings

from ..crosscheck import ARRAY_KINDS, Implementation
from . import clauses, diagnose
from . import conventions as conventions_
from .verdict import Outcome, Verdict, findings, render

# Numba compiles on first call, far past Hypothesis's 200 ms deadline: no deadlines.
# `impl` is function-scoped but stateless, so sharing it across examples is safe.
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                   HealthCheck.function_scoped_fixture])
settings.register_profile("dev", max_examples=25, **_COMMON)
settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("thorough", max_examples=2000, **_COMMON)

BUILTIN = ("reference", "numba_impl", "torch_impl", "numba_impl.autograd")
# The bridge covers only the torch-facing functions; these it promises, so their tests
# fail rather than skip if it ever loses one.
PARTIAL = {"numba_impl.autograd": ("shortest_dist", "batch_local_dist", "local_dist")}
#: The functions of the contract, as the verdict lists them provided or not.
CONTRACT_FUNCTIONS = ("normalize", "euclidean_dist", "batch_euclidean_dist", "stripe_dist",
                      "shortest_dist", "local_dist", "batch_local_dist", "pair_local_dist",
                      "hard_example_mining", "TripletLoss", "global_loss", "local_loss")
#: Extras a module may leave out without it being reported as missing.
OPTIONAL = ("pair_local_dist",)

_CLAUSE = pytest.StashKey[str]()
_VERDICT = pytest.StashKey[Verdict]()


def pytest_addoption(parser):
    group = parser.getgroup("alignedreid-dp")
    group.addoption("--impl", action="append", default=[], metavar="MODULE[:ARRAY]",
                    help="run the suite against this module instead of the built-in packages "
                         "(ARRAY: numpy or torch, else --impl-array)")
    group.addoption("--impl-array", choices=ARRAY_KINDS, default=None,
                    help="the array kind of --impl modules (default: guessed from the name)")
    group.addoption("--gate-report", metavar="PATH", default=None,
                    help="write the verdict by contract clause as JSON (verdict.schema.json)")
    group.addoption("--gate-report-unannounced", action="store_true",
                    help=argparse.SUPPRESS)  # python -m reference.gate: its own scratch file
    group.addoption("--gate-pictures", metavar="DIR", default=None,
                    help="save a picture of each formula 2 diagnosis in DIR (needs matplotlib)")


def profile_name(config):
    """The Hypothesis profile of this run: ``ALIGNEDREID_PROFILE``, else ``ci`` under
    ``--impl`` or when ``CI`` is set, else ``dev``."""
    default = "ci" if config.getoption("--impl") or os.environ.get("CI") else "dev"
    return os.environ.get("ALIGNEDREID_PROFILE", default)


def _written(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


def _candidates(config):
    """``[(name, Implementation or import error, partial)]`` for this run.

    ``--impl`` takes ``MODULE`` or ``MODULE:ARRAY`` (``my_loss:torch``), the second form
    for runs that judge modules of both kinds at once.
    """
    user = config.getoption("--impl")
    names = user or [n for n in BUILTIN if _written(n)]
    out = []
    for spec in names:
        name, _, array = spec.partition(":")
        try:
            impl = Implementation.load(name, (array or config.getoption("--impl-array"))
                                       if user else None)
        except Exception as error:  # noqa: BLE001 - reported as the test error below
            impl = error
        out.append((name, impl, bool(user) or name in PARTIAL))
    return out


def pytest_configure(config):
    config.addinivalue_line("markers", "uses(*names): the contract functions a test needs "
                                       "from the implementation under test")
    config.addinivalue_line("markers", "validation: a test of input validation (the contract's "
                                       "bad-input clause); -m 'not validation' runs numerics only")
    config.addinivalue_line("markers", "cuda: needs a real NVIDIA GPU (run by "
                                       "benchmarks/gpu_check.sh on a lent device)")
    config.addinivalue_line("markers", "cudasim: runs CUDA kernels; run in a separate process "
                                       "with NUMBA_ENABLE_CUDASIM=1")
    config._alignedreid_impls = _candidates(config)
    config._alignedreid_profile = _load_profile(config)
    # Falsifying examples are printed by NumPy: every float to the last digit it needs.
    config._alignedreid_printoptions = np.get_printoptions()
    np.set_printoptions(floatmode="unique")
    config.stash[_VERDICT] = _empty_verdict(config)
    config._alignedreid_conventions = {}
    diagnose.PICTURES = config.getoption("--gate-pictures")


def _load_profile(config):
    """Load this run's Hypothesis profile; under ``--impl`` a derandomised copy that keeps
    no database and writes its scratch files in a temporary folder. Returns its name."""
    name = profile_name(config)
    if config.getoption("--impl"):  # the same examples every run, nothing written where
        # the user works; failing examples shrunk but not "explained" (slow, and noise here)
        settings.register_profile(f"{name}-gate", settings.get_profile(name), derandomize=True,
                                  database=None, phases=[p for p in Phase if p != Phase.explain])
        name = f"{name}-gate"
        from hypothesis.configuration import set_hypothesis_home_dir

        config._alignedreid_scratch = tempfile.mkdtemp(prefix="alignedreid-gate-")
        set_hypothesis_home_dir(config._alignedreid_scratch)
    settings.load_profile(name)
    return name


def _empty_verdict(config):
    """The verdict before any test: each implementation and the functions it provides."""
    verdict = Verdict(config._alignedreid_profile, config.getoption("markexpr", "") or "")
    for name, impl, _ in config._alignedreid_impls:
        if isinstance(impl, Exception):  # judged on nothing: every test errs
            verdict.implementation(name, "?", (), CONTRACT_FUNCTIONS)
            continue
        provided = [f for f in CONTRACT_FUNCTIONS if impl.provides(f)]
        verdict.implementation(name, impl.array, provided, [
            f for f in CONTRACT_FUNCTIONS if f not in provided and f not in OPTIONAL])
    return verdict


def pytest_unconfigure(config):
    if hasattr(config, "_alignedreid_printoptions"):
        np.set_printoptions(**config._alignedreid_printoptions)
    scratch = getattr(config, "_alignedreid_scratch", None)
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)


def pytest_report_header(config):
    lines = [f"hypothesis profile: {config._alignedreid_profile}"]
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


@pytest.hookimpl(tryfirst=True)  # before -m reads the markers added here
def pytest_collection_modifyitems(config, items):
    judged, others = [], []
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", "").rsplit(".", 1)[-1]
        if "impl" not in getattr(item, "fixturenames", ()) or module in clauses.OTHER_PACKAGES:
            others.append(item)
            continue
        clause = clauses.clause_of(module, getattr(item, "originalname", item.name))
        item.stash[_CLAUSE] = clause
        if clause == "validation":
            item.add_marker("validation")
        judged.append(item)
    if config.getoption("--impl") and others:  # they never call the user's module
        config.hook.pytest_deselected(items=others)
        items[:] = judged


def _conventions(config, name, implementation, needed):
    """The conventions of a user's module for a test of ``needed`` (measured once)."""
    key = (name, tuple(needed))
    cache = config._alignedreid_conventions
    if key not in cache:
        cache[key] = conventions_.of(Implementation(implementation.module, implementation.array,
                                                    implementation.device), needed or None)
    return cache[key]


@pytest.fixture
def impl(request):
    """The implementation under test; fails, skips or stands in per the rules above."""
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
    if missing and not partial:
        pytest.fail(f"{name} is missing contract function(s): {', '.join(missing)}")
    if missing:
        judged = [fn for fn in needed if fn not in missing and not fn.endswith("_vjp")]
        clause = request.node.stash.get(_CLAUSE, None)  # None: a test of another package
        # A test of gradients judges the module's own; the oracle's cannot stand in for them.
        gradient = clause == "gradients" and any(fn.endswith("_vjp") for fn in missing)
        if not judged or clause is None or gradient or "TripletLoss" in missing:
            pytest.skip(f"{name} does not provide {', '.join(missing)} (not provided)")
        implementation = implementation.with_stand_ins(missing)
    else:
        implementation = implementation.fresh()
    if not request.config.getoption("--impl"):
        yield implementation  # the built-in packages follow the contract's conventions
        return
    with _conventions(request.config, name, implementation, needed).oracle():
        yield implementation


@pytest.fixture(scope="session")
def ref():
    """The oracle, seen through the same adapter as the implementation under test."""
    return Implementation.load("reference")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    clause = item.stash.get(_CLAUSE, None)
    if clause is None or call.when == "teardown" and report.passed:
        return report
    name, loaded, _ = item.callspec.params["impl"]
    used = item.funcargs.get("impl")
    if (call.when == "call" and report.passed and isinstance(used, Implementation)
            and used.stand_ins and not used.calls):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"Skipped: {name} was not called: the functions it provides "
                           "are not the ones this test exercises")
    if report.failed and call.excinfo is not None:
        module_file = getattr(getattr(loaded, "module", None), "__file__", None)
        found = findings(call.excinfo.value, item.nodeid, clause, module_file,
                         os.path.dirname(str(item.path)))
        if call.when != "call":  # a fixture failed: the suite could not judge
            for f in found:
                f.kind = "error"
        outcome = Outcome(item.nodeid, clause, "failed", found)
    elif report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        outcome = Outcome(item.nodeid, clause, "skipped", reason=reason)
    elif call.when == "call":
        outcome = Outcome(item.nodeid, clause, "passed")
    else:
        return report
    item.config.stash[_VERDICT].record(name, outcome)
    return report


def _describe_conventions(config):
    """Per user module, its conventions that differ from the contract, as plain lines."""
    verdict = config.stash[_VERDICT]
    for name, impl, _ in config._alignedreid_impls:
        if isinstance(impl, Exception):
            continue
        measured = conventions_.of(Implementation(impl.module, impl.array, impl.device))
        verdict.implementations[name]["conventions"] = measured.describe()


def pytest_terminal_summary(terminalreporter, config):
    if not config.getoption("--impl"):
        return
    _describe_conventions(config)
    document = config.stash[_VERDICT].to_json()
    for implementation in document["implementations"]:
        terminalreporter.write_sep("=", "verdict by contract clause")
        terminalreporter.write_line(render(implementation))
    path = config.getoption("--gate-report")
    if path:
        with open(path, "w") as f:
            json.dump(document, f, indent=1)
        if not config.getoption("--gate-report-unannounced"):
            terminalreporter.write_line(f"verdict written to {path}")
