"""``python -m retrieval``: the main job at scale, on ``.npy`` files.

It must give ``topk``'s (or ``rerank``'s) result, show a progress bar, and on bad input
exit with a message that names the argument and leave no output behind, whole or half.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import retrieval
from retrieval.__main__ import main

from .retrieval_checks import write_problem

#: Seconds a command-line run may take (a local cluster included).
LIMIT = 120


@pytest.fixture
def files(tmp_path):
    arrays, paths = write_problem(tmp_path, 7, queries=10, gallery=50)
    # keyed as the command line names them
    names = dict(query_local="query", gallery_local="gallery", query_global="global_query",
                 gallery_global="global_gallery")
    return ({names[n]: a for n, a in arrays.items()},
            {names[n]: str(p) for n, p in paths.items()})


def _leftovers(folder):
    return sorted(name for name in os.listdir(folder) if not name.endswith(".npy"))


def test_topk_result_and_progress_bar(files, tmp_path, capsys):
    arrays, paths = files
    out = tmp_path / "top.npz"
    main([paths["query"], paths["gallery"], "-k", "5", "--impl", "reference",
          "--chunk-size", "3", "--out", str(out)])
    err = capsys.readouterr().err
    assert "100%" in err and "500/500" in err.replace(".0", ""), err
    want = retrieval.topk(arrays["query"], arrays["gallery"], 5, impl="reference")
    with np.load(out) as result:
        np.testing.assert_array_equal(result["indices"], want[1])
        np.testing.assert_array_equal(result["distances"], want[0])
    assert _leftovers(tmp_path) == ["top.npz"]


def test_two_stage_result(files, tmp_path, capsys):
    arrays, paths = files
    out = tmp_path / "two.npz"
    main([paths["query"], paths["gallery"], "-k", "4", "--global-query",
          paths["global_query"], "--global-gallery", paths["global_gallery"],
          "--shortlist", "9", "--weight", "0.5", "--impl", "reference", "--no-progress",
          "--out", str(out)])
    assert "%" not in capsys.readouterr().err
    want = retrieval.rerank(arrays["global_query"], arrays["global_gallery"],
                            arrays["query"], arrays["gallery"], 4, shortlist=9, weight=0.5,
                            impl="reference")
    with np.load(out) as result:
        np.testing.assert_array_equal(result["indices"], want[1])
        np.testing.assert_array_equal(result["distances"], want[0])


def test_command_on_a_local_cluster(files, tmp_path):
    # The real command, in its own process, with two worker processes of its own.
    arrays, paths = files
    out = tmp_path / "cluster.npz"
    done = subprocess.run(
        [sys.executable, "-m", "retrieval", paths["query"], paths["gallery"], "-k", "6",
         "--workers", "2", "--impl", "reference", "--out", str(out), "--timeout", "60"],
        capture_output=True, text=True, timeout=LIMIT)
    assert done.returncode == 0, done.stderr
    want = retrieval.topk(arrays["query"], arrays["gallery"], 6, impl="reference")
    with np.load(out) as result:
        np.testing.assert_array_equal(result["indices"], want[1])
        np.testing.assert_array_equal(result["distances"], want[0])


def _bad(files, tmp_path, tweak):
    """Run with arguments changed by ``tweak``; return (exit status, stderr)."""
    arrays, paths = files
    args = {"query": paths["query"], "gallery": paths["gallery"], "-k": "3",
            "--impl": "reference", "--out": str(tmp_path / "out.npz"), "--no-progress": None}
    extra = tweak(args, paths, tmp_path)
    argv = [args.pop("query"), args.pop("gallery")]
    for flag, value in args.items():
        argv += [flag] if value is None else [flag, value]
    return argv + (extra or [])


BAD = [  # (case, tweak, exit status, words in the message)
    ("missing query", lambda a, p, t: a.update(query=str(t / "no.npy")), 2,
     ("query", "no such file")),
    ("missing gallery", lambda a, p, t: a.update(gallery=str(t / "no.npy")), 2,
     ("gallery", "no such file")),
    ("query no npy", lambda a, p, t: (t / "q.txt").write_text("1 2 3") and a.update(
        query=str(t / "q.txt")), 2, ("query", ".npy")),
    ("mismatched features", lambda a, p, t: np.save(t / "g3.npy", np.zeros((5, 2, 3),
        np.float32)) or a.update(gallery=str(t / "g3.npy")), 2, ("gallery", "features")),
    ("mismatched dtype", lambda a, p, t: np.save(t / "g64.npy", np.zeros((5, 2, 4))) or
     a.update(gallery=str(t / "g64.npy")), 2, ("gallery", "dtype")),
    ("integer features", lambda a, p, t: np.save(t / "gi.npy", np.zeros((5, 2, 4), int)) or
     a.update(gallery=str(t / "gi.npy")), 2, ("gallery", "float32")),
    ("wrong rank", lambda a, p, t: a.update(query=p["global_query"]), 2, ("query", "shape")),
    ("k zero", lambda a, p, t: a.update({"-k": "0"}), 2, ("-k", "at least 1")),
    ("k not int", lambda a, p, t: a.update({"-k": "ten"}), 2, ("-k", "invalid int")),
    ("shortlist zero", lambda a, p, t: a.update({"--shortlist": "0"}), 2,
     ("--shortlist", "at least 1")),
    ("k over shortlist", lambda a, p, t: a.update({
        "--global-query": p["global_query"], "--global-gallery": p["global_gallery"],
        "--shortlist": "2"}), 2, ("-k must be at most --shortlist",)),
    ("weight negative", lambda a, p, t: a.update({
        "--global-query": p["global_query"], "--global-gallery": p["global_gallery"],
        "--weight": "-1"}), 2, ("--weight", "at least 0")),
    ("global query alone", lambda a, p, t: a.update({"--global-query": p["global_query"]}),
     2, ("--global-query", "--global-gallery")),
    ("global images differ", lambda a, p, t: np.save(t / "gq.npy", np.zeros((4, 5),
        np.float32)) or a.update({"--global-query": str(t / "gq.npy"),
                                  "--global-gallery": p["global_gallery"]}), 2,
     ("query must have 4 images like --global-query",)),
    ("workers zero", lambda a, p, t: a.update({"--workers": "0"}), 2,
     ("--workers", "at least 1")),
    ("workers and scheduler", lambda a, p, t: a.update({"--workers": "2",
                                                        "--scheduler": "tcp://x:1"}), 2,
     ("--scheduler", "not allowed with")),
    ("chunk size zero", lambda a, p, t: a.update({"--chunk-size": "0"}), 2,
     ("--chunk-size", "at least 1")),
    ("timeout zero", lambda a, p, t: a.update({"--timeout": "0"}), 2, ("--timeout",)),
    ("no such impl", lambda a, p, t: a.update({"--impl": "no_such_module"}), 2,
     ("--impl", "importable")),
    ("out folder missing", lambda a, p, t: a.update({"--out": str(t / "no" / "o.npz")}), 2,
     ("--out", "no such directory")),
    ("out is a folder", lambda a, p, t: (t / "sub").mkdir() or a.update({"--out": str(t / "sub")}),
     2, ("--out", "is a directory")),
    ("shortlist alone", lambda a, p, t: a.update({"--shortlist": "5"}), 2,
     ("--shortlist", "two-stage", "--global-query")),
    ("weight alone", lambda a, p, t: a.update({"--weight": "0.5"}), 2,
     ("--weight", "two-stage", "--global-query")),
    ("no scheduler there", lambda a, p, t: a.update({"--scheduler": "tcp://127.0.0.1:9",
                                                     "--timeout": "1"}), 1,
     ("tcp://127.0.0.1:9",)),
]


@pytest.mark.parametrize("case,tweak,status,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_named_and_nothing_is_written(files, tmp_path, capsys, case, tweak,
                                                   status, words):
    argv = _bad(files, tmp_path, tweak)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == status, err
    for word in words:
        assert word in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "out.npz").exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".retrieval")]


def test_output_is_all_or_nothing(files, tmp_path, monkeypatch):
    # A failure while writing leaves neither a half-written --out nor a temporary file;
    # an existing --out is replaced only by a complete result.
    _, paths = files
    out = tmp_path / "result.npz"
    out.write_bytes(b"previous result")

    def fail(f, **arrays):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError, match="disk full"):
        main([paths["query"], paths["gallery"], "-k", "2", "--impl", "reference",
              "--no-progress", "--out", str(out)])
    assert out.read_bytes() == b"previous result"
    assert _leftovers(tmp_path) == ["result.npz"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_output_gets_the_mode_of_a_new_file(files, tmp_path, umask):
    # Written through a private temporary file (0600), the result still gets the mode
    # any new file gets under the umask: readable by others on a shared cluster at 022.
    _, paths = files
    out = tmp_path / "result.npz"
    before = os.umask(umask)
    try:
        main([paths["query"], paths["gallery"], "-k", "2", "--impl", "reference",
              "--no-progress", "--out", str(out)])
    finally:
        os.umask(before)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
