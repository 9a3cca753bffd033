"""``local_dist(progress=True)``: one reporter (``alignedreid_dp.progress``), the same
output from every implementation: a tqdm bar on a terminal, else one line per update."""
import io
import re

import numpy as np
import pytest
import torch

import numba_impl
import numba_impl.autograd
import reference
import torch_impl
from alignedreid_dp import progress

LINE = re.compile(r"local_dist: (\d+)/(\d+) pairs \((\d+)%\)")
MODULES = {"reference": (reference, np.asarray), "numba_impl": (numba_impl, np.asarray),
           "torch_impl": (torch_impl, torch.from_numpy),
           "numba_impl.autograd": (numba_impl.autograd, torch.from_numpy)}


def _lines(err, total):
    """The report's lines, checked: each whole, counts rising to ``total`` at 100%."""
    assert "\r" not in err and err.endswith("\n"), repr(err)
    found = [LINE.fullmatch(line) for line in err.splitlines()]
    assert all(found), err
    done = [int(m.group(1)) for m in found]
    assert all(int(m.group(2)) == total for m in found), err
    assert done == sorted(done) and done[-1] == total and found[-1].group(3) == "100", err
    return found


@pytest.mark.parametrize("name", MODULES)
def test_every_implementation_reports_pairs_line_by_line(name, capfd):
    module, convert = MODULES[name]
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 2, 4)), rng.normal(size=(5, 3, 4))
    module.local_dist(convert(x), convert(y), chunk_size=1, progress=True)
    captured = capfd.readouterr()
    assert captured.out == ""
    assert len(_lines(captured.err, 15)) >= 2, captured.err  # at least one per chunk of 1


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_tqdm_bar(monkeypatch):
    import tqdm  # noqa: F401 - in the [all] extra: the suite runs this branch

    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress.report("local_dist", 40, True) as shown:
        for _ in range(4):
            shown.update(10)
    text = terminal.getvalue()
    assert "\r" in text and "local_dist" in text and "40/40" in text, repr(text)
    assert text.endswith("\n") and not LINE.search(text), repr(text)


def test_without_tqdm_a_terminal_gets_lines(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setitem(__import__("sys").modules, "tqdm", None)  # import tqdm fails
    with progress.report("local_dist", 300, True) as shown:
        for _ in range(300):
            shown.update(1)
    assert len(_lines(terminal.getvalue(), 300)) == 101  # 0% .. 100%, once per percent


def test_disabled_prints_nothing(capfd):
    with progress.report("local_dist", 10, False) as shown:
        shown.update(10)
    assert capfd.readouterr() == ("", "")
