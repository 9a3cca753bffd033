"""``retrieval.topk`` and ``retrieval.rerank`` in process: brute force, ties, NaN, inputs.

Every search runs in blocks small enough (``chunk_size``) that most problems have several
gallery blocks and a tree of merges. The cluster and the command line are tested in
``test_retrieval_cluster.py`` and ``test_retrieval_cli.py``.
"""
import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
import retrieval
from retrieval import _inputs, _rank

from .retrieval_checks import assert_top, combined_tolerance, ranked, write_problem
from .strategies import DTYPES

# Each example runs a whole Dask graph: a third of the profile's examples is plenty.
FEWER = settings(max_examples=max(10, settings().max_examples // 3))


# --------------------------------------------------------------------- the ranking rule
def _brute_rule(dist, index):
    """The ranking rule by Python's sort on explicit keys: (NaN last, value, index)."""
    keys = [(bool(np.isnan(v)), 0.0 if np.isnan(v) else float(v), int(j))
            for v, j in zip(dist, index)]
    return sorted(range(len(keys)), key=keys.__getitem__)


@st.composite
def blocks_of_distances(draw):
    """Distances ``[R, C]`` from a few values (ties) and NaN, with shuffled distinct indices."""
    rows, cols = draw(st.integers(1, 4)), draw(st.integers(1, 12))
    values = st.sampled_from([0.0, 0.25, 0.5, 1.0, np.nan]) if draw(st.booleans()) else \
        st.one_of(st.floats(0, 8, allow_subnormal=False), st.just(np.nan))
    dist = np.array(draw(st.lists(values, min_size=rows * cols, max_size=rows * cols)),
                    dtype=draw(DTYPES)).reshape(rows, cols)
    index = np.array(draw(st.permutations(range(100, 100 + cols))), dtype=np.int64)
    return dist, index, draw(st.integers(1, cols + 2))


@given(blocks_of_distances())
def test_smallest_follows_the_ranking_rule(case):
    dist, index, k = case
    got_dist, got_index = _rank.smallest(dist, index, k)
    width = min(k, dist.shape[1])
    assert got_dist.dtype == dist.dtype and got_index.dtype == np.int64
    for r in range(dist.shape[0]):
        pick = _brute_rule(dist[r], index)[:width]
        np.testing.assert_array_equal(got_index[r], index[pick])
        np.testing.assert_array_equal(got_dist[r], dist[r, pick])


@given(blocks_of_distances(), st.data())
def test_merging_any_split_of_the_columns_gives_the_same_result(case, data):
    dist, index, k = case
    cuts = sorted(data.draw(st.lists(st.integers(1, dist.shape[1]), max_size=4)))
    bounds = [0, *cuts, dist.shape[1]]
    parts = [_rank.smallest(dist[:, a:b], index[a:b], k)
             for a, b in zip(bounds, bounds[1:]) if b > a]
    merged = _rank.merge(k, *parts)
    whole = _rank.smallest(dist, index, k)
    np.testing.assert_array_equal(merged[1], whole[1])
    np.testing.assert_array_equal(merged[0], whole[0])


# ------------------------------------------------------------------- problems to search
@st.composite
def search_problems(draw, max_queries=5, max_gallery=12):
    """Query ``[M, m, d]`` and gallery ``[N, n, d]`` features with exact ties, ``k`` up to
    ``N + 2`` and a block shape small enough for several blocks and merges.

    Ties: some gallery images are copies of others (equal distances to every query, so
    the lower index must come first), and a query may be a copy of a gallery image.
    """
    dtype = draw(DTYPES)
    big_m, big_n = draw(st.integers(1, max_queries)), draw(st.integers(1, max_gallery))
    m, n, dim = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    query = rng.normal(size=(big_m, m, dim)).astype(dtype)
    gallery = rng.normal(size=(big_n, n, dim)).astype(dtype)
    for src, dst in draw(st.lists(st.tuples(st.integers(0, big_n - 1),
                                            st.integers(0, big_n - 1)), max_size=4)):
        gallery[dst] = gallery[src]
    if m == n and draw(st.booleans()):
        query[0] = gallery[draw(st.integers(0, big_n - 1))]
    k = draw(st.integers(1, big_n + 2))
    chunk = (draw(st.integers(1, big_m + 1)), draw(st.integers(1, big_n + 1)))
    return query, gallery, k, chunk


def _local_tolerance(query, gallery):
    from reference import error_model
    return error_model.local_dist_tolerance(query, gallery, query.dtype)


# ---------------------------------------------------------------------------------- topk
@pytest.mark.uses("local_dist")
@FEWER
@given(search_problems())
def test_topk_equals_brute_force(impl, problem):
    query, gallery, k, chunk = problem
    got = retrieval.topk(query, gallery, k, impl=impl, chunk_size=chunk)
    assert got[0].dtype == query.dtype
    assert_top(got, reference.local_dist(query, gallery), _local_tolerance(query, gallery), k,
               impl, "topk", [query, gallery])


@pytest.mark.uses("local_dist")
def test_k_beyond_the_gallery_returns_every_image_ranked(impl):
    rng = np.random.default_rng(1)
    query, gallery = rng.normal(size=(3, 4, 5)), rng.normal(size=(4, 3, 5))
    dist, index = retrieval.topk(query, gallery, 10, impl=impl, chunk_size=(2, 3))
    assert index.shape == dist.shape == (3, 4)
    assert_top((dist, index), reference.local_dist(query, gallery),
               _local_tolerance(query, gallery), 10, impl, "topk", [query, gallery])


@pytest.mark.uses("local_dist")
def test_nan_features_rank_last_and_do_not_crash(impl):
    # A bad block: gallery image 2 has one NaN feature, so its distance to every query
    # is NaN; query 1 is all NaN, so all its distances are. NaN ranks last, by index.
    rng = np.random.default_rng(2)
    query, gallery = rng.normal(size=(3, 4, 5)), rng.normal(size=(7, 3, 5))
    gallery[2, 1, 3] = np.nan
    query[1] = np.nan
    brute = reference.local_dist(query, gallery)
    assert np.isnan(brute[:, 2]).all() and np.isnan(brute[1]).all()
    dist, index = retrieval.topk(query, gallery, 7, impl=impl, chunk_size=(2, 3))
    assert index[0, -1] == index[2, -1] == 2
    np.testing.assert_array_equal(index[1], np.arange(7))
    assert_top((dist, index), brute, _local_tolerance(np.nan_to_num(query),
               np.nan_to_num(gallery)), 7, impl, "topk", [query, gallery])
    # With fewer than all: the NaN image is left out wherever a number can be had.
    dist, index = retrieval.topk(query, gallery, 6, impl=impl, chunk_size=(2, 3))
    assert 2 not in index[[0, 2]]
    np.testing.assert_array_equal(index[1], np.arange(6))


# -------------------------------------------------------------------------------- rerank
@st.composite
def rerank_problems(draw):
    """Global features ``[M, C]``, ``[N, C]`` beside the local ones of ``search_problems``
    (copied where the local ones are, so that ties stay ties), a shortlist, a weight."""
    query, gallery, k, chunk = draw(search_problems())
    big_m, big_n = query.shape[0], gallery.shape[0]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    channels = draw(st.integers(1, 8))
    gallery_global = rng.normal(size=(big_n, channels)).astype(query.dtype)
    query_global = rng.normal(size=(big_m, channels)).astype(query.dtype)
    for j in range(big_n):  # copies of gallery images copy their global features too
        same = np.flatnonzero((gallery == gallery[j]).all(axis=(1, 2)))
        gallery_global[j] = gallery_global[same[0]]
    shortlist = draw(st.integers(1, big_n + 2))
    k = draw(st.integers(1, shortlist))
    weight = draw(st.sampled_from([0.0, 0.5, 1.0, 3.0]))
    return query_global, gallery_global, query, gallery, k, shortlist, weight, chunk


def _exhaustive(query_global, gallery_global, query_local, gallery_local, weight):
    """The oracle's ``global + weight * local`` on every pair, in the inputs' dtype."""
    glob = reference.euclidean_dist(query_global, gallery_global)
    local = reference.local_dist(query_local, gallery_local)
    return glob + glob.dtype.type(weight) * local, glob, local


@pytest.mark.uses("euclidean_dist", "batch_local_dist")
@FEWER
@given(rerank_problems())
def test_rerank_with_the_whole_gallery_shortlisted_is_the_exhaustive_ranking(impl, problem):
    qg, gg, ql, gl, k, _, weight, chunk = problem
    shortlist = max(k, gg.shape[0])  # every image is a candidate
    got = retrieval.rerank(qg, gg, ql, gl, k, shortlist=shortlist, weight=weight, impl=impl,
                           chunk_size=chunk)
    brute, glob, local = _exhaustive(qg, gg, ql, gl, weight)
    tol = combined_tolerance(qg, gg, ql, gl, weight, glob, local)
    assert_top(got, brute, tol, k, impl, "rerank", [qg, gg, ql, gl])


@FEWER
@given(rerank_problems())
def test_rerank_ranks_the_global_shortlist_by_the_combined_distance(problem):
    # The two stages by brute force with the oracle: the stable global ranking's first
    # `shortlist`, then those candidates by global + weight * local (ties by index).
    qg, gg, ql, gl, k, shortlist, weight, chunk = problem
    brute, glob, _ = _exhaustive(qg, gg, ql, gl, weight)
    candidates = ranked(glob)[:, :shortlist]
    want = np.take_along_axis(candidates, ranked(np.take_along_axis(brute, candidates, 1)), 1)
    dist, index = retrieval.rerank(qg, gg, ql, gl, k, shortlist=shortlist, weight=weight,
                                   impl="reference", chunk_size=chunk)
    np.testing.assert_array_equal(index, want[:, :k])
    np.testing.assert_array_equal(dist, np.take_along_axis(brute, want[:, :k], 1))


def test_rerank_puts_nan_last():
    rng = np.random.default_rng(3)
    qg, gg = rng.normal(size=(2, 6)), rng.normal(size=(8, 6))
    ql, gl = rng.normal(size=(2, 3, 4)), rng.normal(size=(8, 3, 4))
    gg[5, 0] = np.nan   # NaN global distance: shortlisted last
    gl[3, 2, 1] = np.nan  # NaN local distance: combined NaN
    dist, index = retrieval.rerank(qg, gg, ql, gl, 8, shortlist=8, impl="reference",
                                   chunk_size=(1, 3))
    np.testing.assert_array_equal(index[:, -2:], [[3, 5], [3, 5]])
    assert np.isnan(dist[:, -2:]).all() and not np.isnan(dist[:, :-2]).any()


# ------------------------------------------------------------------ kinds of input array
@pytest.fixture
def files(tmp_path):
    return write_problem(tmp_path, 4, queries=9, gallery=40)


def _kinds(paths, name, array):
    """The same input as an ndarray, a path, a memory map, a slice of one, a Dask array."""
    mapped = np.load(paths[name], mmap_mode="r")
    return {"ndarray": array, "path": paths[name], "str path": str(paths[name]),
            "memmap": mapped, "memmap slice": mapped[:], "dask": da.from_array(array, 7)}


@pytest.mark.parametrize("kind", ["ndarray", "path", "str path", "memmap", "memmap slice",
                                  "dask"])
def test_every_kind_of_input_gives_the_same_result(files, kind):
    arrays, paths = files
    want = retrieval.topk(arrays["query_local"], arrays["gallery_local"], 5,
                          impl="reference", chunk_size=(4, 6))
    got = retrieval.topk(_kinds(paths, "query_local", arrays["query_local"])[kind],
                         _kinds(paths, "gallery_local", arrays["gallery_local"])[kind], 5,
                         impl="reference", chunk_size=(4, 6))
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    names = ("query_global", "gallery_global", "query_local", "gallery_local")
    want = retrieval.rerank(*(arrays[n] for n in names), 4, shortlist=7, impl="reference",
                            chunk_size=(4, 6))
    got = retrieval.rerank(*(_kinds(paths, n, arrays[n])[kind] for n in names), 4,
                           shortlist=7, impl="reference", chunk_size=(4, 6))
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


def test_files_are_read_a_block_at_a_time(files, monkeypatch):
    # A memory-mapped .npy file (by path or np.load(mmap_mode="r")) is never read whole:
    # every read is at most one block of rows, and the gallery is read once per block
    # of queries.
    arrays, paths = files
    reads = []
    original = _inputs.NpyFile.rows

    def rows(self, start, stop):
        reads.append((self.path, stop - start))
        return original(self, start, stop)

    monkeypatch.setattr(_inputs.NpyFile, "rows", rows)
    retrieval.topk(np.load(paths["query_local"], mmap_mode="r"), paths["gallery_local"], 5,
                   impl="reference", chunk_size=(4, 6))
    gallery_reads = [n for path, n in reads if path == str(paths["gallery_local"])]
    query_reads = [n for path, n in reads if path == str(paths["query_local"])]
    assert max(gallery_reads) <= 6 and max(query_reads) <= 4
    assert sum(gallery_reads) == 40 * 3 and sum(query_reads) == 9 * 7  # 3 x 7 blocks


def test_a_copy_on_write_map_is_searched_as_it_is_in_memory(files):
    # np.load(mmap_mode="c") keeps its edits to itself: re-reading the file would drop them.
    arrays, paths = files
    mapped = np.load(paths["gallery_local"], mmap_mode="c")
    mapped[7] = arrays["query_local"][0, :2]  # the first query's stripes, in the gallery
    want = retrieval.topk(arrays["query_local"], np.array(mapped), 5, impl="reference")
    got = retrieval.topk(arrays["query_local"], mapped, 5, impl="reference")
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    on_disk = retrieval.topk(arrays["query_local"], arrays["gallery_local"], 5,
                             impl="reference")
    assert not np.array_equal(on_disk[0], want[0]), "the edit changes nothing; edit more"


def test_a_file_with_bytes_after_its_data_is_read_as_np_load_reads_it(files, tmp_path):
    arrays, paths = files
    padded = tmp_path / "padded.npy"
    padded.write_bytes(paths["gallery_local"].read_bytes() + b"\0" * 16)
    np.testing.assert_array_equal(np.load(padded), arrays["gallery_local"])
    want = retrieval.topk(arrays["query_local"], arrays["gallery_local"], 5, impl="reference")
    got = retrieval.topk(arrays["query_local"], padded, 5, impl="reference")
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


def test_a_memmap_slice_is_not_mistaken_for_its_whole_file(files):
    _, paths = files
    mapped = np.load(paths["gallery_local"], mmap_mode="r")
    assert isinstance(_inputs.features("f", "g", mapped, "", 3), _inputs.NpyFile)
    for part in (mapped[1:], mapped[::2], mapped[:, :1]):
        assert isinstance(_inputs.features("f", "g", part, "", 3), np.ndarray)


def test_progress_bar_counts_the_pairs(capsys):
    rng = np.random.default_rng(5)
    retrieval.topk(rng.normal(size=(5, 2, 3)), rng.normal(size=(11, 2, 3)), 2,
                   impl="reference", chunk_size=(2, 4), progress=True)
    err = capsys.readouterr().err
    assert "100%" in err and "55.0/55.0" in err, err
    retrieval.topk(rng.normal(size=(5, 2, 3)), rng.normal(size=(11, 2, 3)), 2,
                   impl="reference")
    assert capsys.readouterr().err == ""


def test_an_implementation_is_named_by_its_module():
    rng = np.random.default_rng(6)
    query, gallery = rng.normal(size=(4, 3, 5)), rng.normal(size=(20, 3, 5))
    want = ranked(reference.local_dist(query, gallery))[:, :6]
    for name in ("reference", "numba_impl", "torch_impl"):
        # well-separated random distances: every implementation finds the same order
        np.testing.assert_array_equal(retrieval.topk(query, gallery, 6, impl=name)[1], want,
                                      err_msg=name)


def test_never_more_blocks_of_distances_alive_than_running_tasks(tmp_path, monkeypatch):
    # An implementation that counts the blocks of distances it has handed out and that
    # are still alive: with two threads, never more than two, out of 8 x 6 blocks.
    (tmp_path / "counting_impl.py").write_text(
        "import threading, weakref\n"
        "import reference\n"
        "alive, most, lock = [0], [0], threading.Lock()\n"
        "def _freed():\n"
        "    with lock:\n"
        "        alive[0] -= 1\n"
        "def local_dist(x, y):\n"
        "    out = reference.local_dist(x, y)\n"
        "    with lock:\n"
        "        alive[0] += 1\n"
        "        most[0] = max(most[0], alive[0])\n"
        "    weakref.finalize(out, _freed)\n"
        "    return out\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import counting_impl

    rng = np.random.default_rng(7)
    query, gallery = rng.normal(size=(16, 2, 3)), rng.normal(size=(30, 2, 3))
    with dask.config.set(num_workers=2):
        got = retrieval.topk(query, gallery, 4, impl="counting_impl", chunk_size=(2, 5))
    np.testing.assert_array_equal(got[1], ranked(reference.local_dist(query, gallery))[:, :4])
    assert 1 <= counting_impl.most[0] <= 2, counting_impl.most[0]
    assert counting_impl.alive[0] == 0


def test_fortran_order_files_and_gathered_rows(files, tmp_path):
    # Rows of a Fortran-order file are not contiguous: read through a map instead. Rows
    # gathered by index (rerank's second stage) come in runs of consecutive rows.
    arrays, _ = files
    gallery = arrays["gallery_local"]
    np.save(tmp_path / "fortran.npy", np.asfortranarray(gallery))
    for path in (tmp_path / "fortran.npy", tmp_path / "gallery_local.npy"):
        rows = _inputs.features("f", "g", path, "", 3)
        index = np.array([0, 1, 2, 7, 9, 10, 39])
        np.testing.assert_array_equal(rows.take(index), gallery[index])
        np.testing.assert_array_equal(rows.rows(5, 17), gallery[5:17])


def test_a_file_changed_under_a_search_is_an_error(files, tmp_path):
    _, paths = files
    rows = _inputs.features("f", "g", paths["gallery_local"], "", 3)
    np.save(paths["gallery_local"], np.zeros((3, 2, 4), np.float32))
    with pytest.raises(RuntimeError, match="changed"):
        rows.rows(0, 2)
