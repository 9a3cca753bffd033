"""The verdict of the gate: every test's outcome sorted into the contract's clauses.

``Verdict`` collects, per implementation, each test's clause and outcome, and for each
failure one ``Finding`` per distinct error (Hypothesis may report a crash and a wrong
answer of one test together: two findings). ``Verdict.to_json`` gives the document that
``verdict.schema.json`` describes; ``render`` prints one implementation's part of it: the
table and the smallest failing example of every failed clause.
"""
import os
import re
from dataclasses import dataclass, field

import numpy as np

from . import clauses

SCHEMA = "https://alignedreid-dp/gate-verdict/v1"
_HERE = os.path.dirname(os.path.abspath(__file__))
#: Where the suite's own code lives: the oracle and the adapter (``reference``).
_REFERENCE = os.path.dirname(_HERE)


@dataclass
class Finding:
    """One distinct error of one failed test."""
    kind: str
    test: str
    exception: str
    message: str
    example: str

    @property
    def severity(self):
        return clauses.SEVERITY[self.kind]

    def as_dict(self, clause):
        return {"kind": self.kind, "severity": self.severity, "test": self.test,
                "exception": self.exception, "message": self.message, "example": self.example,
                "meaning": clauses.meaning(clause, self.kind)}


@dataclass
class Outcome:
    test: str
    clause: str
    outcome: str  # passed, failed, skipped
    findings: list = field(default_factory=list)
    reason: str = ""

    @property
    def worst(self):
        """The kind of the worst finding (``clauses.KINDS`` order), or None."""
        kinds = [f.kind for f in self.findings]
        return min(kinds, key=clauses.KINDS.index) if kinds else None


# --- classifying an error ---------------------------------------------------------------
def leaves(error):
    """The errors inside (nested) exception groups, or ``[error]``."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for sub in error.exceptions for leaf in leaves(sub)]
    return [error]


def _innermost_file(error):
    tb = error.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename)


def _inside(path, directory):
    return bool(directory) and os.path.commonpath([path, directory]) == directory


def _did_not_raise(error):
    return type(error).__name__ == "Failed" and "DID NOT RAISE" in str(error)


def classify(error, clause, module_file, suite_dir):
    """The kind of ``error`` (``clauses.KINDS``) in a test of ``clause``.

    Where it was raised tells a crash from a wrong answer: in the module under test (its
    file ``module_file``), or in a library it called (numpy, torch's autograd), the
    module crashed; in the suite (``suite_dir``) or the oracle, a check failed: a wrong
    result, or one that could not be read as the contract says.
    """
    if clause == "conventions":
        return "convention"
    if clause == "validation":
        return "accepted" if _did_not_raise(error) else "refusal"
    module = type(error).__module__ or ""
    if module.startswith("hypothesis") and not type(error).__name__.startswith("Flaky"):
        return "error"  # Unsatisfiable, a failed health check: the suite could not judge
    where = _innermost_file(error)
    if module_file and where == os.path.abspath(module_file):
        return "crash"
    if isinstance(error, AssertionError) or type(error).__name__ == "Failed":
        return "wrong"
    if _inside(where, suite_dir) or _inside(where, _REFERENCE):
        return "wrong"
    return "crash"


def _example(error, test):
    """The failing example: the one Hypothesis attached to ``error`` (shrunk, and printed
    by NumPy at full precision during a gate run), else the test's parameters and the
    inputs the suite's assertion printed (``tests/assertions.py``: 17 digits)."""
    lines = []
    for note in getattr(error, "__notes__", ()):
        if note.startswith("Explanation:"):
            break  # what follows lists source lines, not the example
        lines += [line for line in note.splitlines()
                  if not line.startswith(("You can reproduce", "@reproduce_failure"))]
    while lines and not lines[-1].strip():
        lines.pop()
    if lines:
        return "\n".join(lines)
    inputs, reading = [], False
    for line in str(error).splitlines():  # "  input k: ..." and the array's further lines
        reading = line.lstrip().startswith("input ") or (reading and (not line.strip()
                                                                      or line[:1].isspace()))
        if reading:
            inputs.append(line[2:] if line.startswith("  ") else line)
    while inputs and not inputs[-1].strip():
        inputs.pop()
    return "\n".join([test.split("::", 1)[-1], *inputs])


def _message(error, limit=2000):
    """The error's message, without the notes (they are the example, kept apart)."""
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= limit else text[:limit] + " [...]"


def findings(error, test, clause, module_file, suite_dir):
    """One ``Finding`` per distinct error inside ``error``."""
    out = []
    for leaf in leaves(error):
        out.append(Finding(classify(leaf, clause, module_file, suite_dir), test,
                           type(leaf).__name__, _message(leaf), _example(leaf, test)))
    return out


# --- the verdict ------------------------------------------------------------------------
class Verdict:
    """Outcomes by implementation; ``render`` and ``to_json`` give the verdict."""

    def __init__(self, profile="", marker_expression=""):
        self.profile = profile
        self.marker_expression = marker_expression
        self.implementations = {}  # name -> dict(array, provided, not_provided, conventions)
        self.outcomes = {}  # name -> {test: Outcome}

    def implementation(self, name, array="", provided=(), not_provided=(), conventions=()):
        self.implementations.setdefault(name, dict(
            array=array, provided=list(provided), not_provided=list(not_provided),
            conventions=list(conventions)))
        self.outcomes.setdefault(name, {})

    def record(self, name, outcome):
        """Keep ``outcome``; a failure in a later phase (teardown) adds to the test's."""
        known = self.outcomes.setdefault(name, {}).get(outcome.test)
        if known is None or (outcome.outcome == "failed" and known.outcome != "failed"):
            self.outcomes[name][outcome.test] = outcome
        elif outcome.outcome == "failed":
            known.findings.extend(outcome.findings)

    def clause_rows(self, name):
        """Per clause: counts of passed, failed (by severity of the worst finding), skipped."""
        rows = []
        outcomes = list(self.outcomes.get(name, {}).values())
        for clause in clauses.CLAUSES:
            mine = [o for o in outcomes if o.clause == clause.key]
            if not mine and clause.key == "unclassified":
                continue
            failed = [o for o in mine if o.outcome == "failed"]
            by_severity = {s: 0 for s in ("defect", "accepted", "refusal", "convention", "error")}
            for o in failed:
                by_severity[clauses.SEVERITY[o.worst or "error"]] += 1
            found = [f for o in failed for f in o.findings]
            rows.append(dict(
                clause=clause.key, title=clause.title,
                passed=sum(o.outcome == "passed" for o in mine), failed=len(failed),
                skipped=sum(o.outcome == "skipped" for o in mine),
                defects=by_severity["defect"], accepted=by_severity["accepted"],
                refusals=by_severity["refusal"], conventions=by_severity["convention"],
                errors=by_severity["error"],
                findings=[f.as_dict(clause.key) for f in found],
                smallest=[f.as_dict(clause.key) for f in _smallest_by_kind(found)]))
        return rows

    def implementation_json(self, name):
        """One implementation's part of the verdict (``verdict.schema.json``)."""
        rows = self.clause_rows(name)
        totals = {k: sum(r[k] for r in rows) for k in
                  ("passed", "failed", "skipped", "defects", "accepted", "refusals",
                   "conventions", "errors")}
        return dict(name=name, **self.implementations[name], totals=totals, clauses=rows)

    def to_json(self):
        """The verdict as a JSON-ready dict (``verdict.schema.json``)."""
        return {"$schema": SCHEMA, "profile": self.profile,
                "marker_expression": self.marker_expression,
                "numerics_only": "not validation" in self.marker_expression,
                "implementations": [self.implementation_json(n) for n in self.implementations]}


def render(implementation, width=100):
    """The verdict of one implementation (an entry of the JSON document) as text: the table
    by clause, then every failed clause's smallest failing example and what it means."""
    rows, totals = implementation["clauses"], implementation["totals"]
    title = (f"alignedreid-dp gate: {implementation['name']} ({implementation['array']}), "
             "clause by clause")
    out = [title, "=" * len(title)]
    head = ("clause", "pass", "fail", "defect", "accepted", "refused", "convention", "skip")
    columns = ("passed", "failed", "defects", "accepted", "refusals", "conventions", "skipped")
    wide = max(len(r["title"]) for r in rows)
    fmt = f"{{:<{wide}}}" + "".join(f" {{:>{len(h)}}}" for h in head[1:])
    out.append(fmt.format(*head))
    for r in rows:
        out.append(fmt.format(r["title"], *[r[c] if r[c] else "." for c in columns]))
    out.append(fmt.format("all clauses", *[totals[c] for c in columns]))
    out.append("")
    if not totals["passed"] + totals["failed"]:
        out.append("no test ran: nothing was judged")
    out.append(f"{totals['defects']} test(s) with defects (wrong results or crashes on valid "
               f"input); {totals['accepted']} accepting bad input, {totals['refusals']} refusing "
               f"it with another exception or message, {totals['conventions']} on conventions"
               + (f", {totals['errors']} not judged (errors)." if totals["errors"] else "."))
    if implementation["not_provided"]:
        out.append("not provided (not judged): " + ", ".join(implementation["not_provided"]))
    for line in implementation["conventions"]:
        out.append("convention: " + line)
    for r in rows:
        if not r["failed"]:
            continue
        out.append("")
        out.append(f"-- {r['title']}: {r['failed']} failed --")
        for f in r["smallest"]:
            out.append(f"[{f['kind']}] {f['exception']}: {_first_line(f['message'], width)}")
            out.append(f"  in {f['test']}")
            out.append("  smallest failing example:")
            out.extend("    " + line for line in f["example"].splitlines())
            out.append(f"  what it means: {f['meaning']}")
    return "\n".join(out)


def _first_line(text, width):
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[:width - 3] + "..."


_SHAPE = re.compile(r"\(([\d, ]*)\) (?:float|int|uint|bool)")


def _size(finding):
    """How large a finding's input is, to pick the smallest: examples that show their input
    first (a shrunk one, or inputs the assertion printed, not a bare test name), then the
    elements of the shapes the suite's message names (``f((5, 3, 4) float64, ...)``), else
    the length of the example."""
    shapes = _SHAPE.findall(finding.message)
    if shapes:
        size = sum(int(np.prod([int(n) for n in s.split(",") if n.strip()])) for s in shapes)
    else:
        size = len(finding.example)
    return "\n" not in finding.example, size


def _smallest_by_kind(found):
    """Per kind, the finding with the smallest input, worst kinds first."""
    best = {}
    for f in found:
        if f.kind not in best or _size(f) < _size(best[f.kind]):
            best[f.kind] = f
    return [best[k] for k in clauses.KINDS if k in best]
