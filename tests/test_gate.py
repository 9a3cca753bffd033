"""The gate as a user runs it (``python -m reference.gate``), judged on modules with known bugs.

One run on every fixture of ``tests/gate_fixtures`` (a separate process, as users start
it), shared by the tests below: its verdict must name exactly each fixture's real defects
(``tests/gate_fixtures/expected.py``), the conventions apart; its JSON must follow the
schema. Then the parts: how a failure is classified, determinism, what is written where
the user works, the numerics-only selection, the clause of every test.
"""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reference.gate import clauses, schema, verdict

from .gate_fixtures import expected

ROOT = Path(__file__).resolve().parent.parent


def _gate(*args, cwd=ROOT, env=None):
    """``python -m reference.gate ARGS`` in ``cwd``; ``(returncode, output)``."""
    run = subprocess.run([sys.executable, "-m", "reference.gate", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=900,
                         env={**os.environ, **(env or {})})
    return run.returncode, run.stdout + run.stderr


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """Every fixture judged in one run (profile dev: 25 examples, derandomised)."""
    report = tmp_path_factory.mktemp("gate") / "verdict.json"
    modules = [f"{expected.module_name(f)}:{e['array']}" for f, e in expected.FIXTURES.items()]
    code, output = _gate(*modules, "--profile", "dev", f"--gate-report={report}")
    assert report.exists(), output[-3000:]
    return code, output, json.loads(report.read_text())


def _implementation(document, fixture):
    return next(i for i in document["implementations"]
                if i["name"] == expected.module_name(fixture))


def test_each_fixture_gets_exactly_its_real_defects(judged):
    code, output, document = judged
    assert expected.problems(document, list(expected.FIXTURES)) == [], output[-5000:]
    assert code == 1, "defects were found: the gate's exit status must say so"


def test_widely_used_code_verdict_keeps_conventions_and_bad_input_apart(judged):
    _, output, document = judged
    widely_used = _implementation(document, "widely_used")
    rows = {c["clause"]: c for c in widely_used["clauses"]}
    assert {f["kind"] for f in rows["conventions"]["findings"]} == {"convention"}
    assert rows["conventions"]["failed"] == rows["conventions"]["conventions"] > 0
    assert {f["kind"] for f in rows["validation"]["findings"]} <= {"accepted", "refusal"}
    assert rows["validation"]["defects"] == 0 and rows["validation"]["failed"] > 0
    assert widely_used["not_provided"] == []
    # Honest counts: NumPy code without VJPs has no gradient test counted as passed, and
    # the tests that do not call a module were deselected, not run.
    assert rows["gradients"]["passed"] == 0, rows["gradients"]
    assert " deselected" in output
    assert "alignedreid-dp gate: tests.gate_fixtures.widely_used (numpy), clause by clause" in output
    assert "smallest failing example:" in output and "what it means:" in output


def test_verdict_follows_its_schema(judged):
    document = judged[2]
    assert schema.errors(document) == []
    broken = json.loads(json.dumps(document))
    broken["implementations"][0]["totals"]["passed"] = -1
    broken["implementations"][0]["clauses"][0]["findings"].append({"kind": "fine"})
    del broken["profile"]
    messages = schema.errors(broken)
    assert "$: missing 'profile'" in messages
    assert "$.implementations[0].totals.passed: -1 is below 0" in messages
    assert any("'fine' is not one of" in m for m in messages), messages


def test_each_function_is_judged_on_its_own(judged):
    # float64_outputs provides local_dist without batch_local_dist: its accuracy and dtype
    # test runs (the oracle stands in where a test needs the partner), and the functions
    # it lacks are listed, not judged.
    row = _implementation(judged[2], "float64_outputs")
    assert {"batch_local_dist", "shortest_dist"} <= set(row["not_provided"])
    assert ("distances", "wrong", "test_local_dist") in expected.defects(row)


# --- classifying failures -----------------------------------------------------------------
def _raised_in(path, source, call):
    """The exception raised by ``call`` of the code ``source`` saved at ``path``."""
    path.write_text(source)
    scope = {}
    exec(compile(source, str(path), "exec"), scope)
    with pytest.raises(BaseException) as info:
        scope[call]()
    return info.value


def test_a_crash_and_a_wrong_answer_are_two_findings(tmp_path):
    module = tmp_path / "user_module.py"
    crash = _raised_in(module, "def f():\n    raise ValueError('cannot reshape')\n", "f")
    suite = tmp_path / "suite"
    suite.mkdir()
    wrong = _raised_in(suite / "test_x.py", "def t():\n    assert 1 == 2, 'differs'\n", "t")
    group = ExceptionGroup("Hypothesis found 2 distinct failures", [crash, wrong])
    found = verdict.findings(group, "test_x.py::t", "mining", str(module), str(suite))
    assert [(f.kind, f.exception) for f in found] == [("crash", "ValueError"),
                                                       ("wrong", "AssertionError")]


def test_failures_are_classified_by_where_they_were_raised(tmp_path):
    module = tmp_path / "user_module.py"
    suite = tmp_path / "suite"
    suite.mkdir()
    bare_assert = _raised_in(module, "def f():\n    assert False\n", "f")
    library = _raised_in(tmp_path / "numpy_like.py", "def f():\n    raise RuntimeError('x')\n", "f")
    check = _raised_in(suite / "test_x.py", "def t():\n    assert 0\n", "t")

    def kind(error, clause="distances"):
        return verdict.classify(error, clause, str(module), str(suite))

    assert kind(bare_assert) == "crash"  # a bare assert in the module, on valid input
    assert kind(library) == "crash"  # raised in a library the module called
    assert kind(check) == "wrong"
    assert kind(check, "conventions") == "convention"
    assert kind(bare_assert, "validation") == "refusal"  # loud, but not ValueError/TypeError
    did_not_raise = _raised_in(suite / "test_y.py",
                               "import pytest\ndef t():\n    with pytest.raises(ValueError):\n"
                               "        pass\n", "t")
    assert kind(did_not_raise, "validation") == "accepted"


# --- as the user runs it ------------------------------------------------------------------------
def _installed_plugin_that_writes(where):
    """A folder to put on ``PYTHONPATH``: a pytest plugin, installed (an entry point in
    ``pytest11``) as pytest-benchmark is, that writes ``.written-by-plugin`` where pytest runs."""
    (where / "writer_plugin.py").write_text(
        "def pytest_configure(config):\n    open('.written-by-plugin', 'w').close()\n")
    info = where / "writer_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: writer-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\nwriter = writer_plugin\n")
    return where


def test_runs_give_the_same_verdict_and_leave_nothing_behind(judged, tmp_path_factory):
    # Again, from a folder of the user's (not this checkout), on the mining tests, with a
    # pytest plugin installed that writes into the folder it runs in: the same findings as
    # in the first run, and nothing left there (no .hypothesis, .pytest_cache or .benchmarks;
    # the plugin is not loaded: only the suite's plugins are).
    user = tmp_path_factory.mktemp("user")
    plugins = _installed_plugin_that_writes(tmp_path_factory.mktemp("site"))
    report = user / "verdict.json"
    code, output = _gate(expected.module_name("widely_used"), "--profile", "dev",
                         f"--gate-report={report}", "--", "-k", "mining",
                         cwd=user, env={"PYTHONPATH": os.pathsep.join([str(ROOT), str(plugins)])})
    assert code == 1, output[-3000:]

    def mining(document):
        rows = _implementation(document, "widely_used")["clauses"]
        return next(c["findings"] for c in rows if c["clause"] == "mining")

    assert mining(json.loads(report.read_text())) == mining(judged[2])
    assert [p.name for p in user.iterdir()] == ["verdict.json"]


def test_installed_plugin_of_the_test_is_seen_by_pytest(tmp_path_factory):
    # The check above is only as good as its plugin: a plain pytest run does load it.
    user = tmp_path_factory.mktemp("user")
    plugins = _installed_plugin_that_writes(tmp_path_factory.mktemp("site"))
    (user / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                         cwd=user, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(plugins)})
    assert run.returncode == 0, run.stdout[-2000:]
    assert (user / ".written-by-plugin").exists()


def test_numerics_only_leaves_out_the_validation_tests():
    run = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider",
                          "-m", "not validation", "tests/test_bad_input.py",
                          "tests/test_mining_loss.py"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:]
    assert "test_bad_input_raises" not in run.stdout
    assert "test_triplet_loss_refuses_non_finite_margin" not in run.stdout
    assert "test_shortest_dist_nan_in_one_matrix" in run.stdout


def test_every_test_of_an_implementation_has_a_clause():
    # A test that takes the impl fixture must be placed in a clause (reference/gate/clauses.py).
    placed = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and \
                    any(a.arg in ("impl", "torch_impl_under_test") for a in node.args.args):
                placed.append((path.stem, node.name, clauses.clause_of(path.stem, node.name)))
    judged = [p for p in placed if p[0] not in clauses.OTHER_PACKAGES]
    assert judged and not [p for p in judged if p[2] == "unclassified"]
    assert {p[0] for p in judged} == set(clauses.TESTS), "clauses.TESTS lists the modules that judge"


def _document(**totals):
    counts = dict(passed=0, failed=0, defects=0, errors=0, accepted=0, refusals=0,
                  conventions=0, skipped=0)
    return {"implementations": [{"name": "m", "array": "numpy", "totals": {**counts, **totals}}]}


def test_exit_status_says_whether_a_module_was_judged(tmp_path):
    from reference.gate.__main__ import exit_status

    assert exit_status(_document(passed=5)) == 0
    assert exit_status(_document(passed=5, failed=2, refusals=2)) == 0  # not defects
    assert exit_status(_document(passed=5, failed=2, defects=2)) == 1
    # a module that crashes everywhere, one test of it erroring: defects, not "not judged"
    assert exit_status(_document(failed=107, defects=107, errors=1)) == 1
    assert exit_status(_document()) == 2  # nothing judged: no function of the contract
    assert exit_status(_document(errors=3)) == 2
    # a report that cannot be written is a usage error before anything runs
    for report in (tmp_path / "missing" / "v.json", tmp_path):
        code, output = _gate("os.path", f"--gate-report={report}")
        assert code == 2 and "--gate-report" in output and "Traceback" not in output, \
            output[-2000:]


def test_a_module_without_contract_functions_is_not_judged(tmp_path):
    # os.path is importable and holds none of the contract's functions: nothing judged, 2
    # (a CI gate pointed at a package instead of its module must not pass green)
    code, output = _gate("os.path", "--profile", "dev", cwd=tmp_path,
                         env={"PYTHONPATH": str(ROOT)})
    assert code == 2, output[-2000:]
    assert "nothing was judged" in output
    assert "verdict written to" not in output  # its scratch report is gone when it returns
