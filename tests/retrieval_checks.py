"""Brute force and ranking checks shared by the retrieval tests.

Brute force is the oracle on every pair and a stable sort (NaN last): the ranking rule of
``retrieval``. The oracle itself must match it exactly. Another implementation computes
each distance within the error model of ``reference.error_model``, so where two
distances are closer than their tolerances it may order them either way; everywhere else
its indices must be exactly those of brute force.
"""
import numpy as np

from reference import error_model

from .assertions import assert_bitwise, assert_within


def ranked(dist):
    """Brute force: each row's gallery indices by ascending distance, ties by index, NaN last."""
    return np.argsort(dist, axis=1, kind="stable")


def combined_tolerance(query_global, gallery_global, query_local, gallery_local, weight,
                       global_dist, local_dist):
    """Tolerance of ``global + weight * local`` against the oracle (``[M, N]``): the two
    distances' error models, plus the rounding of the product and the sum (``u`` each of
    the result's size), doubled for the two implementations compared."""
    dtype = query_global.dtype
    u = error_model.unit_roundoff(dtype)
    euclid = 2 * error_model.euclid_bound(query_global, gallery_global, u)
    local = error_model.local_dist_tolerance(query_local, gallery_local, dtype)
    rounding = 2 * 2 * u * (np.abs(global_dist) + weight * np.abs(local_dist))
    return euclid + weight * local + rounding


def assert_top(got, brute, tol, k, impl, func, inputs):
    """``got = (dist, index)`` is a top ``k`` of the distances ``brute`` ([M, N], oracle).

    For the oracle: bitwise the brute-force answer. For another implementation: distinct
    images, each distance within ``tol`` of its pair's, rows in the ranking rule's order
    on the returned distances, no image left out that is better than the last one
    returned by more than the tolerances, and the brute-force index at every rank that the
    tolerances decide.
    """
    __tracebackhide__ = True
    dist, index = got
    order = ranked(brute)
    width = min(k, brute.shape[1])
    want_index = order[:, :width]
    want_dist = np.take_along_axis(brute, want_index, axis=1)
    assert index.dtype == np.int64, index.dtype
    assert index.shape == dist.shape == want_index.shape, (index.shape, want_index.shape)
    if impl.name == "reference":
        np.testing.assert_array_equal(index, want_index, err_msg=f"{func}: indices")
        assert_bitwise(dist, want_dist, impl, func, inputs)
        return
    assert_within(dist, np.take_along_axis(brute, index, axis=1),
                  np.take_along_axis(tol, index, axis=1), impl, func, inputs)
    for q in range(brute.shape[0]):
        row, got_d = index[q], dist[q]
        assert len(set(row.tolist())) == width, f"{func}: row {q} repeats images: {row}"
        keys = [(bool(np.isnan(v)), 0.0 if np.isnan(v) else float(v), int(j))
                for v, j in zip(got_d, row)]
        assert keys == sorted(keys), f"{func}: row {q} not in the ranking rule's order: {keys}"
        last = row[-1]
        left_out = np.setdiff1d(np.arange(brute.shape[1]), row)
        better = brute[q, left_out] + tol[q, left_out] < brute[q, last] - tol[q, last]
        if np.isnan(brute[q, last]):  # every number ranks before NaN
            better = ~np.isnan(brute[q, left_out])
        assert not better.any(), (f"{func}: row {q} leaves out {left_out[better]}, better "
                                  f"than {last} beyond the tolerance")
        sorted_d, sorted_tol = brute[q, order[q]], tol[q, order[q]]
        for r in range(width):
            near = np.abs(sorted_d - sorted_d[r]) <= sorted_tol + sorted_tol[r]
            near |= np.isnan(sorted_d) & np.isnan(sorted_d[r])
            if np.count_nonzero(near) == 1 or np.isnan(sorted_d[r]):
                # decided: no other distance within reach (NaNs rank by index alone)
                assert row[r] == order[q, r], (f"{func}: row {q} rank {r}: got image "
                                               f"{row[r]}, brute force {order[q, r]}")


def write_problem(folder, seed, queries, gallery):
    """Random float32 features of a small search, in memory and as ``.npy`` files in
    ``folder``: ``(arrays, paths)``, both keyed by ``rerank``'s argument names."""
    rng = np.random.default_rng(seed)
    arrays = dict(query_local=rng.normal(size=(queries, 3, 4)).astype(np.float32),
                  gallery_local=rng.normal(size=(gallery, 2, 4)).astype(np.float32),
                  query_global=rng.normal(size=(queries, 5)).astype(np.float32),
                  gallery_global=rng.normal(size=(gallery, 5)).astype(np.float32))
    paths = {name: folder / f"{name}.npy" for name in arrays}
    for name, value in arrays.items():
        np.save(paths[name], value)
    return arrays, paths
