"""Run the conformance gate while the docs are built, for the page to show its real verdict.

At ``builder-inited`` the gate judges ``tests/gate_fixtures/widely_used.py`` (a module
written like the widely used AlignedReID code) as a user runs it, ``python -m
reference.gate``, and the verdict is written to ``docs/_generated/gate_verdict.txt``
(and ``.json``), which ``conformance.md`` includes. A verdict newer than every source
of the gate, the suite and the fixture is reused (the html and doctest builds share one).
"""
import json
import subprocess
import sys
from pathlib import Path

MODULE = "tests.gate_fixtures.widely_used"


def _newest_source(root):
    folders = [root / "reference", root / "tests"]
    return max(p.stat().st_mtime for folder in folders for p in folder.rglob("*.py"))


def run_gate(app):
    root = Path(app.srcdir).resolve().parent
    out_dir = Path(app.srcdir) / "_generated"
    out_dir.mkdir(exist_ok=True)
    text, report = out_dir / "gate_verdict.txt", out_dir / "gate_verdict.json"
    if text.exists() and text.stat().st_mtime > _newest_source(root):
        return
    run = subprocess.run([sys.executable, "-m", "reference.gate", MODULE, "--profile", "dev",
                          f"--gate-report={report}"], cwd=root, capture_output=True, text=True)
    if run.returncode not in (0, 1) or not report.exists():
        raise RuntimeError(f"the gate failed while building the docs:\n{run.stdout[-3000:]}"
                           f"{run.stderr[-3000:]}")
    sys.path.insert(0, str(root))
    from reference.gate.verdict import render

    document = json.loads(report.read_text())
    text.write_text(render(document["implementations"][0]) + "\n")


def setup(app):
    app.connect("builder-inited", run_gate)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
