"""``python -m reference``: the worked example and the cross-check table."""
import subprocess
import sys

import numpy as np

import reference
from reference.__main__ import main


def test_worked_example_and_crosscheck(capsys):
    status = main([])
    out = capsys.readouterr().out
    _, _, path = reference.shortest_path(
        reference.stripe_dist(reference.euclidean_dist(*reference.example.worked_example())))
    assert "path (backtracked): " + " ".join(f"({i},{j})" for i, j in path) in out
    assert "stripe 6 of A  <->" in out
    assert "DISAGREE" not in out, out
    assert status == 0, out


def test_user_module_is_crosschecked(capsys):
    status = main(["--impl", "reference", "--impl-array", "numpy"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("reference ")]
    assert rows and all(line.rstrip().endswith("agree") for line in rows), out
    assert status == 0


def test_disagreement_is_reported_and_fails(capsys, tmp_path, monkeypatch):
    # A module whose shortest_dist is off by one ulp must be flagged.
    (tmp_path / "off_by_one_ulp.py").write_text(
        "import numpy as np, reference\n"
        "def shortest_dist(d):\n"
        "    s = reference.shortest_dist(d)\n"
        "    return np.nextafter(s, np.inf)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    status = main(["--impl", "off_by_one_ulp", "--impl-array", "numpy"])
    out = capsys.readouterr().out
    assert "DISAGREE" in out and status == 1, out


def test_plot_file(tmp_path):
    target = tmp_path / "alignment.png"
    result = subprocess.run([sys.executable, "-m", "reference", "--plot", str(target)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib import image

    picture = image.imread(target)  # decodes: a whole PNG, not a header
    colours = np.unique(picture.reshape(-1, picture.shape[-1]), axis=0)
    assert picture.ndim == 3 and min(picture.shape[:2]) >= 100, picture.shape
    assert len(colours) > 10, f"{len(colours)} colours: a blank picture, not the alignment"
