"""``python -m benchmarks [--quick] [--device cpu|cuda] [--json PATH] [--only W]``

Runs the workloads side by side, prints a table of times, ratios and goals,
and writes every figure to a JSON file.
"""

import argparse
import json
import os
import platform
import sys

import torch

from .workloads import ON_REQUEST, WORKLOADS


def _fmt_seconds(seconds):
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.3f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _ratios(rows):
    """Each row's time over its workload's first timed row (the baseline)."""
    base = {}
    for row in rows:
        if row["seconds"] is not None:
            base.setdefault(row["workload"], (row["row"], row["seconds"]))
    for row in rows:
        name, secs = base.get(row["workload"], (None, None))
        row["baseline"] = name
        row["ratio"] = (secs / row["seconds"]
                        if row["seconds"] and secs else None)


def _table(header, lines):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*map(str, line)) for line in lines]
    return "\n".join(out)


# glibc serves each large tensor either from fresh pages (mmap) or from reused heap,
# depending on its adaptive threshold; the naive rows, which allocate thousands of 256 KB
# tensors, were seen 5x slower in the first mode. A fixed threshold (read only at process
# start, hence the re-exec) makes every row reuse memory: a fair, repeatable baseline.
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(128 * 2**20)}


def _pin_allocator():
    if platform.system() == "Linux" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        os.environ.update(_MALLOC_ENV)
        os.execv(sys.executable, [sys.executable, "-m", "benchmarks", *sys.argv[1:]])


def main(argv=None):
    if argv is None:
        _pin_allocator()
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and a tenth of the gallery")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--json", default="bench-results.json",
                        help="where to write the figures")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and numba (default: their "
                        "own default); 1 gives steadier figures on a busy "
                        "machine")
    parser.add_argument("--only", choices=sorted(WORKLOADS), action="append",
                        help="run only this workload (repeatable); "
                        f"{', '.join(ON_REQUEST)} runs only when named")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False")

    if args.threads is not None:
        # Children (query x gallery rows) inherit these through the environment.
        os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)

    rows, goals = [], []
    for name in args.only or [n for n in WORKLOADS if n not in ON_REQUEST]:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        new_rows, new_goals = WORKLOADS[name](args.device, args.quick)
        rows += new_rows
        goals += new_goals
    _ratios(rows)

    print(_table(
        ("workload", "row", "time (median)", "speed vs baseline", "peak",
         "note"),
        [(r["workload"], r["row"], _fmt_seconds(r["seconds"]),
          f"{r['ratio']:.2f}x vs {r['baseline']}" if r["ratio"] else "-",
          f"{r['peak_mb']:.0f} MB" if r.get("peak_mb") is not None else "-",
          r["note"]) for r in rows]))
    print()
    print(_table(("workload", "row", "goal", "measured", "met"),
                 [(g["workload"], g["row"], g["goal"], g["measured"],
                   "yes" if g["met"] else "NO") for g in goals]))

    report = dict(device=args.device, quick=args.quick,
                  torch=torch.__version__, threads=torch.get_num_threads(),
                  machine=platform.machine(), python=platform.python_version(),
                  rows=rows, goals=goals)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nfigures written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
