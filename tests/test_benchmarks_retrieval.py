"""The retrieval benchmark's data and recall measure what they say (timings are not tested)."""
import numpy as np

from benchmarks import retrieval as bench


def test_recall_is_the_fraction_of_the_exhaustive_top_found(tmp_path):
    exhaustive = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 9, 1, 0, 2, 3], [10, 11, 5, 12, 13, 14]])
    np.save(tmp_path / "e.npy", exhaustive)
    np.save(tmp_path / "f.npy", found)
    assert bench._recall(tmp_path / "e.npy", tmp_path / "f.npy") == (4 + 1) / 8


def test_identity_data_is_written_once_with_identity_structure(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNEDREID_CACHE", str(tmp_path))
    paths = bench._identity_files(6, 200)
    arrays = {name: np.load(path) for name, path in paths.items()}
    assert arrays["gallery_global"].shape == (200, bench.GLOBAL)
    assert arrays["gallery_local"].shape == (200, bench.STRIPES, bench.FEATURES)
    assert arrays["query_global"].shape == (6, bench.GLOBAL)
    assert all(a.dtype == np.float32 for a in arrays.values())
    np.testing.assert_allclose(np.linalg.norm(arrays["gallery_local"], axis=-1), 1, rtol=1e-5)
    # Image j shows identity j % 10: images of one identity are nearer each other than
    # images of two, on average, in both features.
    ids = np.arange(200) % 10
    for name in ("gallery_global", "gallery_local"):
        x = arrays[name].reshape(200, -1)
        dot = x @ x.T
        same = ids[:, None] == ids[None, :]
        np.fill_diagonal(same, False)
        other = ids[:, None] != ids[None, :]
        assert dot[same].mean() > dot[other].mean() + 0.05, name
    assert not list(tmp_path.rglob("*.partial.npy"))
    before = {p: p.stat().st_mtime_ns for p in paths.values()}
    assert bench._identity_files(6, 200) == paths  # the second call reuses the files
    assert {p: p.stat().st_mtime_ns for p in paths.values()} == before
