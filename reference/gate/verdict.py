"""The verdict of the gate: every test's outcome sorted into the contract's clauses.

``Verdict`` collects, per implementation, each test's clause and outcome, and for each
failure one ``Finding`` per distinct error (Hypothesis may report a crash and a wrong
answer of one test together: two findings). ``render`` prints the table and the
smallest failing example of every failed clause; ``to_json`` gives the same as the
document ``verdict.schema.json`` describes.
"""
import os
from dataclasses import dataclass, field

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
    inputs = [line.strip() for line in str(error).splitlines()
              if line.lstrip().startswith("input ")]
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

    def to_json(self):
        """The verdict as a JSON-ready dict (``verdict.schema.json``)."""
        doc = {"$schema": SCHEMA, "profile": self.profile,
               "marker_expression": self.marker_expression,
               "numerics_only": "not validation" in self.marker_expression,
               "implementations": []}
        for name, info in self.implementations.items():
            rows = self.clause_rows(name)
            totals = {k: sum(r[k] for r in rows) for k in
                      ("passed", "failed", "skipped", "defects", "accepted", "refusals",
                       "conventions", "errors")}
            doc["implementations"].append(dict(name=name, **info, totals=totals, clauses=rows))
        return doc

    def render(self, name, width=100):
        """The verdict of implementation ``name`` as text: the table, then every failed
        clause's smallest failing example and what it means."""
        info, rows = self.implementations[name], self.clause_rows(name)
        title = f"alignedreid-dp gate: {name} ({info['array']}), clause by clause"
        out = [title, "=" * len(title)]
        head = ("clause", "pass", "fail", "defect", "accepted", "refused", "convention", "skip")
        wide = max(len(r["title"]) for r in rows)
        fmt = f"{{:<{wide}}}" + "".join(f" {{:>{len(h)}}}" for h in head[1:])
        out.append(fmt.format(*head))
        for r in rows:
            cells = [r["passed"], r["failed"], r["defects"], r["accepted"], r["refusals"],
                     r["conventions"], r["skipped"]]
            out.append(fmt.format(r["title"], *[c if c else "." for c in cells]))
        totals = [sum(r[k] for r in rows) for k in ("passed", "failed", "defects", "accepted",
                                                     "refusals", "conventions", "skipped")]
        out.append(fmt.format("all clauses", *totals))
        defects = sum(r["defects"] for r in rows)
        out.append("")
        out.append(f"{defects} test(s) with defects (wrong results or crashes on valid input); "
                   f"{sum(r['accepted'] for r in rows)} accepting bad input, "
                   f"{sum(r['refusals'] for r in rows)} refusing it with another exception or "
                   f"message, {sum(r['conventions'] for r in rows)} on conventions.")
        if info["not_provided"]:
            out.append("not provided (not judged): " + ", ".join(info["not_provided"]))
        for line in info["conventions"]:
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


def _smallest_by_kind(found):
    """Per kind, the finding with the shortest example (Hypothesis shrinks; shorter text is
    the smaller input), worst kinds first."""
    best = {}
    for f in found:
        if f.kind not in best or len(f.example) < len(best[f.kind].example):
            best[f.kind] = f
    return [best[k] for k in clauses.KINDS if k in best]
