"""``python -m reference.gate MODULE``: run the conformance suite on your module, give a verdict.

Runs the suite installed with this package (``reference.gate.suite``) on ``MODULE``
(importable from where you run it: your repository's root, or installed), with the
plugin ``reference.gate.plugin``: Hypothesis derandomised with no database, nothing
written into your repository or into ours (no ``.hypothesis``, no ``.pytest_cache``),
your own pytest configuration, ``conftest.py`` files and installed pytest plugins left out
(a plugin installed for your own tests, pytest-benchmark or pytest-randomly say, could
write into your folder or reorder the run; ``-- -p NAME`` loads one by its name). The run
ends with the verdict by contract clause; ``--gate-report PATH.json`` writes it as JSON too.

Exit status: 0 when no defect was found (wrong results or crashes on valid input; bad
input refused with another exception, or another convention, is reported but passes),
1 when one was, 2 when the suite could not run or judge (a module that fails to import
or holds no function of the contract, a usage error). Arguments after ``--`` go to
pytest as they are (``-- -k mining -x``).
"""
import argparse
import json
import os
import sys
import tempfile

from . import clauses

PROFILES = ("dev", "ci", "thorough")
HYPOTHESIS_PLUGIN = "_hypothesis_pytestplugin"  # what Hypothesis registers as its pytest11 entry


def suite_files():
    """The test modules of the suite that run on a module (``clauses.TESTS``), as paths."""
    from . import suite

    where = os.path.dirname(os.path.abspath(suite.__file__))
    return where, [os.path.join(where, f"{name}.py") for name in clauses.TESTS]


def pytest_arguments(modules, array, report, numerics_only, scratch, extra=(), pictures=None):
    """The pytest command line of a gate run (``scratch``: a temporary folder for the ini)."""
    where, files = suite_files()
    ini = os.path.join(scratch, "pytest.ini")
    with open(ini, "w") as f:  # ours only: the user's configuration does not apply
        f.write("[pytest]\n")
    args = [*files, "-c", ini, "--rootdir", where, "-p", "reference.gate.plugin",
            "-p", HYPOTHESIS_PLUGIN, "-p", "no:cacheprovider", "--strict-markers", "-ra", "-q"]
    for module in modules:
        args += ["--impl", module]
    if array:
        args += ["--impl-array", array]
    args.append(f"--gate-report={report}")
    if numerics_only:
        args += ["-m", "not validation"]
    if pictures:
        args.append(f"--gate-pictures={os.path.abspath(pictures)}")
    return args + list(extra)


def exit_status(document):
    """0 without defects, 1 with, 2 when a module could not be judged: it did not import,
    no test judged it (no function of the contract in it), or its tests only errored."""
    status = 0
    for implementation in document["implementations"]:
        totals = implementation["totals"]
        judged = totals["passed"] + totals["failed"]
        if implementation["array"] == "?" or not judged or (
                totals["errors"] and not totals["passed"] and not totals["defects"]):
            return 2
        if totals["defects"]:
            status = 1
    return status


def _check_report_path(parser, path):
    """A usage error, before anything runs, for a ``--gate-report`` that cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        parser.error(f"--gate-report: {path} is a folder; give the path of the .json to write")
    if not os.path.isdir(folder):
        parser.error(f"--gate-report: the folder of {path} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        parser.error(f"--gate-report: cannot write {path}")


def _without_plugin_autoload(run, arguments):
    """``run(arguments)`` with pytest's entry-point plugins off: only those ``-p`` names load."""
    before = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        return run(arguments)
    finally:
        if before is None:
            del os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"]
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = before


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m reference.gate",
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("module", nargs="+", metavar="MODULE[:ARRAY]",
                        help="the module(s) to judge, e.g. my_package.loss or my_package.loss:torch")
    parser.add_argument("--array", choices=("numpy", "torch"), default=None,
                        help="what arrays the modules' functions take (default: numpy; "
                             "MODULE:torch sets it for one module)")
    parser.add_argument("--gate-report", metavar="PATH", default=None,
                        help="also write the verdict as JSON (reference/gate/verdict.schema.json)")
    parser.add_argument("--numerics-only", action="store_true",
                        help="leave out the tests of input validation (-m 'not validation')")
    parser.add_argument("--gate-pictures", metavar="DIR", default=None,
                        help="save a picture of each disagreement of formula 2 (matplotlib)")
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="how many examples Hypothesis tries (default: ci, 100 per test)")
    args = parser.parse_args(argv)
    if args.gate_report:
        _check_report_path(parser, args.gate_report)
    if args.profile:
        os.environ["ALIGNEDREID_PROFILE"] = args.profile
    import pytest

    with tempfile.TemporaryDirectory(prefix="alignedreid-gate-") as scratch:
        report = args.gate_report or os.path.join(scratch, "verdict.json")
        arguments = pytest_arguments(args.module, args.array, report, args.numerics_only,
                                     scratch, extra, args.gate_pictures)
        if not args.gate_report:  # a scratch file, gone when the run ends: not announced
            arguments.append("--gate-report-unannounced")
        code = _without_plugin_autoload(pytest.main, arguments)
        if not os.path.exists(report):  # pytest stopped before the verdict (usage error)
            return 2
        with open(report) as f:
            document = json.load(f)
    return exit_status(document) if code in (0, 1) else 2


if __name__ == "__main__":
    sys.exit(main())
