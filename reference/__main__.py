"""``python -m reference``: the worked example, then a cross-check of every implementation.

Options: ``--impl MODULE`` (repeatable) adds a module of your own, ``--impl-array`` says
whether it takes numpy arrays or torch tensors, ``--plot FILE`` saves the alignment picture.
"""
import argparse
import sys

import numpy as np

from . import crosscheck, error_model
from .distance import euclidean_dist, normalize, stripe_dist
from .example import training_batch, worked_example
from .loss import TripletLoss
from .path import shortest_path


def _matching(path):
    """Group path cells by stripe of A: ``{i: [j, ...]}``."""
    matched = {}
    for i, j in path:
        matched.setdefault(i, []).append(j)
    return matched


def print_worked_example(out):
    a, b = worked_example()
    stripes = stripe_dist(euclidean_dist(a, b))
    dist, table, path = shortest_path(stripes)
    fmt = {"float_kind": lambda v: f"{v:6.3f}"}
    out.write("Worked example: two images, 7 stripes each, 4 features per stripe\n")
    out.write("(image B starts one stripe lower than image A)\n\n")
    out.write("formula 1, d[i,j] = tanh(||a_i - b_j|| / 2):\n")
    out.write(np.array2string(stripes, formatter=fmt) + "\n\n")
    out.write("formula 2, S[i,j] = min(S[i-1,j], S[i,j-1]) + d[i,j]:\n")
    out.write(np.array2string(table, formatter=fmt) + "\n\n")
    out.write(f"local distance S[6,6] = {dist:.6f}\n")
    out.write("path (backtracked): " + " ".join(f"({i},{j})" for i, j in path) + "\n\n")
    out.write("alignment:\n")
    for i, js in _matching(path).items():
        span = f"stripe {js[0]}" if len(js) == 1 else f"stripes {js[0]}..{js[-1]}"
        out.write(f"  stripe {i} of A  <->  {span} of B\n")
    out.write("\n")
    return stripes, path


def _check(rows, impl, what, got, want, tol):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    both_nan = np.isnan(got) & np.isnan(want)
    err = np.where(both_nan, 0.0, np.abs(got - want))
    worst = float(np.max(err)) if err.size else 0.0
    ok = bool(np.all(err <= tol)) and got.shape == want.shape
    rows.append((impl.name, what, worst, float(np.max(tol)), "agree" if ok else "DISAGREE"))


def crosscheck_rows(impl, stripes):
    """Compare ``impl`` with the oracle on the worked example and a training-shaped batch."""
    ref = crosscheck.Implementation.load("reference")
    rows = []
    f64 = np.float64
    if impl.provides("shortest_dist"):
        _check(rows, impl, "example shortest_dist (bitwise)", impl("shortest_dist", stripes),
               ref("shortest_dist", stripes), 0.0)
    a, b = (v[None] for v in worked_example())
    if impl.provides("batch_local_dist"):
        _check(rows, impl, "example batch_local_dist", impl("batch_local_dist", a, b),
               ref("batch_local_dist", a, b), error_model.batch_local_dist_tolerance(a, b, f64))
        got, want = impl.vjp("batch_local_dist", a, b, grad_out=np.ones(1)), \
            ref.vjp("batch_local_dist", a, b, grad_out=np.ones(1))
        tol = error_model.local_grad_tolerance(a, b, np.ones(1), f64)
        _check(rows, impl, "example batch_local_dist gradient", np.concatenate(got, axis=None),
               np.concatenate(want, axis=None), tol)
    for dtype in (np.float32, np.float64):
        local_feat, _, labels = training_batch(dtype=dtype)
        name = np.dtype(dtype).name
        feat = normalize(local_feat)  # as in training: unit stripe features
        query, gallery = feat[:16], feat[16:]
        if impl.provides("local_dist"):
            _check(rows, impl, f"16x16 local_dist {name}", impl("local_dist", query, gallery),
                   ref("local_dist", query, gallery),
                   error_model.local_dist_tolerance(query, gallery, dtype))
        if dtype is np.float64 and impl.provides("local_loss"):
            tol = error_model.local_loss_grad_tolerance(local_feat, dtype)
            for margin in (0.3, None):
                loss = TripletLoss(margin)
                _check(rows, impl, f"local_loss gradient, margin={margin}",
                       impl.vjp("local_loss", loss, local_feat, labels=labels),
                       ref.vjp("local_loss", loss, local_feat, labels=labels), tol)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m reference", description=__doc__.splitlines()[0])
    parser.add_argument("--impl", action="append", default=[], metavar="MODULE",
                        help="also cross-check this module (repeatable)")
    parser.add_argument("--impl-array", choices=crosscheck.ARRAY_KINDS, default=None,
                        help="the array kind of --impl modules (guessed when omitted)")
    parser.add_argument("--plot", metavar="FILE", help="save the alignment picture (needs matplotlib)")
    args = parser.parse_args(argv)
    out = sys.stdout

    stripes, path = print_worked_example(out)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from .plot import plot_alignment

        plot_alignment(stripes, path).savefig(args.plot, dpi=150)
        out.write(f"alignment picture written to {args.plot}\n\n")

    candidates = crosscheck.installed()
    candidates += [(name, crosscheck.Implementation.load(name, args.impl_array)) for name in args.impl]
    rows = []
    for name, impl in candidates:
        if isinstance(impl, Exception):
            out.write(f"{name}: not available ({type(impl).__name__}: {impl})\n")
            continue
        rows.extend(crosscheck_rows(impl, stripes))
    out.write("\nCross-check against the oracle (largest absolute difference; tolerance from "
              "reference.error_model)\n")
    header = ("implementation", "check", "max error", "tolerance", "verdict")
    widths = [max(len(str(r[k])) if k in (0, 1, 4) else 9 for r in rows + [header]) for k in range(5)]
    line = "  ".join(f"{{:{w}}}" for w in widths)
    out.write(line.format(*header) + "\n")
    for impl_name, what, worst, tol, verdict in rows:
        out.write(line.format(impl_name, what, f"{worst:.2e}", f"{tol:.2e}", verdict) + "\n")
    failed = [r for r in rows if r[4] != "agree"]
    out.write(f"\n{len(rows) - len(failed)} of {len(rows)} checks agree\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
