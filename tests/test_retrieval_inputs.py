"""Bad input to ``retrieval.topk`` and ``retrieval.rerank``: every argument, a clear error.

``ValueError`` for a wrong rank, an empty or unknown dimension, sizes that do not match,
a value out of range or a file that is no ``.npy``; ``TypeError`` for a wrong kind of
object, integer data or mixed float32/float64; ``FileNotFoundError`` for a missing file.
Each message names the argument.
"""
import dask.array as da
import numpy as np
import pytest

import retrieval


def arr(*shape, dtype=np.float64):
    return (np.arange(int(np.prod(shape))) % 7 / 7 + 0.1).reshape(shape).astype(dtype)


Q, G = arr(3, 4, 5), arr(6, 2, 5)
QG, GG = arr(3, 7), arr(6, 7)


def _unknown_rows(x):
    """A Dask array whose number of rows is unknown (as after boolean indexing)."""
    return da.from_array(x, chunks=2)[da.from_array(np.ones(len(x), bool), chunks=2)]


@pytest.fixture
def not_npy(tmp_path):
    path = tmp_path / "notes.npy"
    path.write_text("not an array")
    return path


FEATURE_CASES = [  # (case, value, error, words in the message)
    ("list", [[[1.0]]], TypeError, "numpy.ndarray"),
    ("masked array", np.ma.masked_array(arr(3, 4, 5)), TypeError, "subclass"),
    ("matrix subclass", np.asarray(arr(3, 4, 5)).view(type("Sub", (np.ndarray,), {})),
     TypeError, "subclass"),
    ("integer", arr(3, 4, 5).astype(np.int64), TypeError, "float32 or float64"),
    ("wrong rank", arr(4, 5), ValueError, "shape"),
    ("empty", arr(0, 4, 5), ValueError, "empty"),
    ("unknown rows", _unknown_rows(arr(3, 4, 5)), ValueError, "known shape"),
    ("missing file", "/nonexistent/features.npy", FileNotFoundError, "no such file"),
]


def _topk(**changes):
    kwargs = dict(query=Q, gallery=G, k=2, impl="reference")
    kwargs.update(changes)
    return retrieval.topk(**kwargs)


def _rerank(**changes):
    kwargs = dict(query_global=QG, gallery_global=GG, query_local=Q, gallery_local=G, k=2,
                  impl="reference")
    kwargs.update(changes)
    return retrieval.rerank(**kwargs)


def _raises(call, error, *words):
    with pytest.raises(error) as caught:
        call()
    for word in words:
        assert word in str(caught.value), caught.value
    return caught.value


@pytest.mark.parametrize("case,value,error,words", FEATURE_CASES,
                         ids=[c[0] for c in FEATURE_CASES])
@pytest.mark.parametrize("name", ["query", "gallery"])
def test_topk_features(name, case, value, error, words):
    if name == "gallery" and case == "wrong rank":
        value = arr(1, 6, 2, 5)
    _raises(lambda: _topk(**{name: value}), error, "topk", name, words)


@pytest.mark.parametrize("case,value,error,words", FEATURE_CASES,
                         ids=[c[0] for c in FEATURE_CASES])
@pytest.mark.parametrize("name", ["query_global", "gallery_global", "query_local",
                                  "gallery_local"])
def test_rerank_features(name, case, value, error, words):
    if name.endswith("global") and case != "wrong rank":
        value = value if not hasattr(value, "ndim") or value.ndim != 3 else value[:, 0]
    if name.endswith("global") and case == "wrong rank":
        value = arr(3, 7, 1)
    _raises(lambda: _rerank(**{name: value}), error, "rerank", name, words)


def test_a_file_that_is_no_npy(not_npy):
    _raises(lambda: _topk(gallery=not_npy), ValueError, "topk", "gallery", ".npy")
    np.savez(not_npy.with_suffix(".npz"), a=Q)
    _raises(lambda: _topk(query=not_npy.with_suffix(".npz")), ValueError, "query", "archive")


@pytest.mark.parametrize("call,name,value,words", [
    (_topk, "gallery", arr(6, 2, 5, dtype=np.float32), ("same dtype", "float64")),
    (_rerank, "gallery_local", arr(6, 2, 5, dtype=np.float32), ("same dtype",)),
    (_rerank, "query_local", arr(3, 4, 5, dtype=np.float32), ("same dtype",)),
    (_rerank, "gallery_global", arr(6, 7, dtype=np.float32), ("same dtype",)),
])
def test_mixed_precision(call, name, value, words):
    _raises(lambda: call(**{name: value}), TypeError, name, *words)


@pytest.mark.parametrize("call,name,value,words", [
    (_topk, "gallery", arr(6, 2, 4), ("5 features per stripe", "(6, 2, 4)")),
    (_rerank, "gallery_local", arr(6, 2, 4), ("features per stripe",)),
    (_rerank, "gallery_global", arr(6, 8), ("7 features",)),
    (_rerank, "query_local", arr(2, 4, 5), ("3 images", "query_global")),
    (_rerank, "gallery_local", arr(5, 2, 5), ("6 images", "gallery_global")),
])
def test_sizes_that_do_not_match(call, name, value, words):
    _raises(lambda: call(**{name: value}), ValueError, name, *words)


@pytest.mark.parametrize("call", [_topk, _rerank], ids=["topk", "rerank"])
@pytest.mark.parametrize("name,value,error,words", [
    ("k", 0, ValueError, "at least 1"),
    ("k", -3, ValueError, "at least 1"),
    ("k", 2.0, TypeError, "positive int"),
    ("k", True, TypeError, "positive int"),
    ("k", None, TypeError, "positive int"),
    ("impl", "no_such_module", ValueError, "importable"),
    ("impl", 3, TypeError, "module name"),
    ("impl", None, TypeError, "module name"),
    ("impl", np, ValueError, "must provide"),
    ("chunk_size", 0, ValueError, "at least 1"),
    ("chunk_size", 1.5, TypeError, "positive int"),
    ("chunk_size", (2, 0), ValueError, "at least 1"),
    ("chunk_size", (2, 3, 4), ValueError, "pair"),
    ("chunk_size", [2, 3], TypeError, "positive int"),
    ("progress", "yes", TypeError, "True or False"),
    ("progress", None, TypeError, "True or False"),
    ("client", "tcp://127.0.0.1:8786", TypeError, "distributed.Client"),
])
def test_options(call, name, value, error, words):
    _raises(lambda: call(**{name: value}), error, call.__name__.strip("_"), name, words)


@pytest.mark.parametrize("changes,error,words", [
    (dict(shortlist=0), ValueError, ("shortlist", "at least 1")),
    (dict(shortlist=2.5), TypeError, ("shortlist", "positive int")),
    (dict(k=5, shortlist=4), ValueError, ("k", "at most shortlist")),
    (dict(weight=-0.5), ValueError, ("weight", "at least 0")),
    (dict(weight=float("nan")), ValueError, ("weight", "finite")),
    (dict(weight=float("inf")), ValueError, ("weight", "finite")),
    (dict(weight="1"), TypeError, ("weight", "real number")),
    (dict(weight=True), TypeError, ("weight", "real number")),
    (dict(weight=10**400), ValueError, ("weight", "finite")),  # no OverflowError
    # finite as a Python float, inf in the features' float32: weight * local overflows
    (dict(weight=1e308, query_local=Q.astype(np.float32), gallery_local=G.astype(np.float32),
          query_global=QG.astype(np.float32), gallery_global=GG.astype(np.float32)),
     ValueError, ("weight", "finite in float32")),
    (dict(weight=1e38, query_local=Q.astype(np.float32), gallery_local=G.astype(np.float32),
          query_global=QG.astype(np.float32), gallery_global=GG.astype(np.float32)),
     ValueError, ("weight", "largest local distance")),
])
def test_rerank_options(changes, error, words):
    _raises(lambda: _rerank(**changes), error, "rerank", *words)


def test_implementation_without_the_needed_function(tmp_path, monkeypatch):
    (tmp_path / "only_local.py").write_text(
        "from reference import local_dist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _raises(lambda: _rerank(impl="only_local"), ValueError, "impl", "euclidean_dist",
            "batch_local_dist")
    assert _topk(impl="only_local")[1].shape == (3, 2)  # topk needs local_dist only
