"""The diagnoses of ``reference.gate.diagnose``: where formula 2 or a gradient went wrong."""
import numpy as np

import reference
from reference.gate import diagnose


def _skips_row_1_of_column_0(d):
    """Formula 2 with a bug: cell (1, 0) read as 0 (a first column started one row late)."""
    d = np.array(d)
    if d.shape[0] > 1:
        d[1, 0] = 0
    return reference.shortest_dist(d)


def test_formula2_shows_both_tables_and_the_first_cell_where_they_part(tmp_path, monkeypatch):
    d = np.arange(1, 13, dtype=np.float64).reshape(3, 4) / 8
    monkeypatch.setattr(diagnose, "PICTURES", str(tmp_path))
    text = diagnose.formula2(_skips_row_1_of_column_0, d)
    assert text.startswith("formula 2 parts first at S[1, 0]: module 0.125, oracle 0.75,"), text
    assert "module's table" in text and "oracle's table" in text
    assert "[0.125, 0.375, 0.75 , 1.25 ]" in text  # row 0, the same in both
    assert [p.name for p in tmp_path.iterdir()] == ["formula2-1.png"]


def test_formula2_in_a_batch_names_the_matrix():
    d = np.full((2, 2, 3), 0.5)
    text = diagnose.formula2(lambda m: np.where(np.arange(3) == 1, 0.0, reference.shortest_dist(m))
                             if m.ndim == 3 else reference.shortest_dist(m), d)
    assert text.startswith("matrix (1,) of the batch:\nevery S[i, j] agrees on its own block"), text


def test_flows_name_the_cells_that_differ():
    want = reference.shortest_dist_vjp(np.full((2, 2), 0.5), 1.0)  # a tie: 0.5 each way
    got = np.array([[1.0, 1.0], [0.0, 1.0]])  # the whole flow on one path
    text = diagnose.flows(got, want)
    assert text.startswith("the flows differ at 2 cell(s) (the oracle splits the flow at a tie):")
    assert "(0, 1) module 1, oracle 0.5" in text and "(1, 0) module 0, oracle 0.5" in text


def test_feature_gradient_names_the_stripes_and_their_path_cells():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    y = np.array([[0.1, 0.0], [1.1, 0.0], [2.1, 0.0]])
    want = reference.pair_local_dist_vjp(x, y, 1.0)[0]
    got = want.copy()
    got[1] += 1.0  # stripe 1 of x
    text = diagnose.feature_gradient(x, y, got, want, 1e-9, "grad_x")
    assert text.startswith("pair 0: the gradient of stripe(s) [1] of x differs"), text
    assert "path cells through them, with their flow: (1, 0) 1, (1, 1) 1" in text


def test_a_failed_diagnosis_says_so():
    assert diagnose.formula2(lambda m: 1 / 0, np.ones((2, 2))).startswith(
        "(no diagnosis: ZeroDivisionError")
