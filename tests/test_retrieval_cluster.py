"""``retrieval`` on a real ``dask.distributed.LocalCluster`` of two worker processes.

The cluster listens on the loopback address only, with no dashboard, and every wait is
bounded: a start, a search, a close that takes too long fails the test instead of
hanging CI.
"""
import os
import signal
import threading
import time

import distributed
import numpy as np
import pytest

import reference
import retrieval

from .retrieval_checks import assert_top

#: Seconds any one step may take (start the cluster, one search, one close).
LIMIT = 60


def _within(seconds, function, *args, **kwargs):
    """``function(*args, **kwargs)``, run in a thread so that a hang fails the test."""
    box = {}

    def run():
        try:
            box["value"] = function(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller
            box["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{getattr(function, '__name__', function)} took over {seconds} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, timeout=LIMIT, env={"NUMBA_NUM_THREADS": "1"})
    client = distributed.Client(cluster, timeout=LIMIT)
    try:
        yield client
    finally:
        client.close(timeout=LIMIT)
        cluster.close(timeout=LIMIT)


@pytest.fixture
def workers(client):
    """The client, with both workers up (after a test that killed one)."""
    client.wait_for_workers(2, timeout=LIMIT)
    return client


def _problem(seed, queries=12, gallery=90, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(queries, 4, 6)).astype(dtype),
            rng.normal(size=(gallery, 3, 6)).astype(dtype))


@pytest.mark.uses("local_dist")
def test_cluster_gives_the_in_process_result(impl, workers):
    query, gallery = _problem(0)
    here = retrieval.topk(query, gallery, 7, impl=impl, chunk_size=(5, 20))
    there = _within(LIMIT, retrieval.topk, query, gallery, 7, impl=impl, chunk_size=(5, 20),
                    client=workers)
    # Same indices. Same distances for the oracle; the others' BLAS rounds differently
    # with the workers' thread count, within the error model.
    np.testing.assert_array_equal(there[1], here[1])
    tol = reference.error_model.local_dist_tolerance(query, gallery, query.dtype)
    assert_top(there, reference.local_dist(query, gallery), tol, 7, impl, "topk",
               [query, gallery])
    if impl.name == "reference":
        np.testing.assert_array_equal(there[0], here[0])


def test_cluster_reads_files_and_reranks(workers, tmp_path):
    query, gallery = _problem(1)
    rng = np.random.default_rng(2)
    query_global = rng.normal(size=(12, 5)).astype(np.float32)
    gallery_global = rng.normal(size=(90, 5)).astype(np.float32)
    paths = []
    for name, value in (("qg", query_global), ("gg", gallery_global), ("ql", query),
                        ("gl", gallery)):
        paths.append(tmp_path / f"{name}.npy")
        np.save(paths[-1], value)
    gallery[7, 0, 0] = np.nan  # a bad block: NaN ranks last, the run does not crash
    np.save(paths[3], gallery)
    here = retrieval.rerank(query_global, gallery_global, query, gallery, 5, shortlist=20,
                            impl="reference", chunk_size=(5, 20))
    there = _within(LIMIT, retrieval.rerank, *paths, 5, shortlist=20, impl="reference",
                    chunk_size=(5, 20), client=workers)
    np.testing.assert_array_equal(there[1], here[1])
    np.testing.assert_array_equal(there[0], here[0])
    whole = _within(LIMIT, retrieval.topk, paths[2], paths[3], 90, impl="reference",
                    chunk_size=(5, 20), client=workers)
    np.testing.assert_array_equal(whole[1][:, -1], 7)
    assert np.isnan(whole[0][:, -1]).all() and not np.isnan(whole[0][:, :-1]).any()


def test_a_killed_worker_costs_time_not_the_result(workers):
    # The oracle is slow enough for a run of some seconds in many blocks; one worker is
    # killed (SIGKILL) once some blocks are done and others are running. The scheduler
    # reschedules its tasks and the run completes with the same result.
    query, gallery = _problem(3, queries=24, gallery=4000)
    options = dict(impl="reference", chunk_size=(4, 100))
    want = retrieval.topk(query, gallery, 10, **options)
    pids = workers.run(os.getpid)
    result = {}
    run = threading.Thread(target=lambda: result.update(
        value=retrieval.topk(query, gallery, 10, client=workers, **options)), daemon=True)
    run.start()
    deadline = time.monotonic() + LIMIT
    while not any(workers.processing().values()) or not _done_blocks(workers):
        assert time.monotonic() < deadline, "no block finished in time"
        assert run.is_alive(), "the run finished before a worker could be killed"
        time.sleep(0.01)
    victim = next(address for address, keys in workers.processing().items() if keys)
    assert run.is_alive()
    os.kill(pids[victim], signal.SIGKILL)
    run.join(LIMIT)
    assert not run.is_alive(), f"the run did not complete within {LIMIT} s of the kill"
    assert "value" in result, "the run failed"
    assert pids[victim] not in workers.run(os.getpid).values()  # the worker really died
    np.testing.assert_array_equal(result["value"][1], want[1])
    np.testing.assert_array_equal(result["value"][0], want[0])


def _done_blocks(client):
    """Block tasks in memory on the scheduler (finished, not yet merged)."""
    def count(dask_scheduler):
        return sum(1 for key, task in dask_scheduler.tasks.items()
                   if "retrieval-block" in str(key) and task.state == "memory")
    return client.run_on_scheduler(count)
