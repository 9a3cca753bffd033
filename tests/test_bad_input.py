"""Bad input is refused loudly, and NaN propagates as IEEE ``minimum`` does.

The contract's "Bad input" section, one table row per (function, bad case), run against
every implementation: ``ValueError`` for a wrong rank, an empty dimension, mismatched
sizes or labels of the wrong length; ``TypeError`` for integer data, something that is
not an array of the module's kind, or mixed float32/float64. The message must name the
argument; starting it with the function name is our convention, not required here, so
that users' modules can pass.
"""
import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference

try:
    import torch
except ImportError:  # then no implementation takes tensors: the tensor rows are left out
    torch = None

from .assertions import assert_bitwise, baseline
from .strategies import cost_matrices

TRI = reference.TripletLoss(0.3)  # converted to the module's own TripletLoss by to_native


def arr(*shape, dtype=np.float64):
    """A deterministic, non-degenerate array of ``shape`` (any dimension may be 0)."""
    values = (np.arange(int(np.prod(shape))) % 7) / 7 + 0.1
    return values.reshape(shape).astype(dtype)


def ints(*shape):
    return np.ones(shape, dtype=np.int64)


N = 4
LABELS = np.array([0, 0, 1, 1], dtype=np.int64)
SAME_LABELS = np.zeros(N, dtype=np.int64)


def _row(func, case, args, error, names, **kwargs):
    """One table row: ``func(*args, **kwargs)`` raises ``error`` naming every one of ``names``."""
    return pytest.param(func, args, kwargs, error, names, id=f"{func}-{case}",
                        marks=pytest.mark.uses(func))


def _odd_arrays(good):
    """``(case, value)``: arrays of ``good``'s shape that no implementation computes with.

    Half precision is computed in float32 only inside ``torch.autocast`` (no silent
    casting outside it); meta tensors have no values and sparse ones no strides.
    """
    odd = [("float16", good.astype(np.float16))]
    if torch is not None:
        dense = torch.from_numpy(good)
        odd += [("bfloat16", dense.bfloat16()), ("meta", dense.to("meta")),
                ("sparse", dense.to_sparse())]
    return odd


def _pair_rows(func, x_shape, y_shape, batched):
    """The bad cases of a function of two stripe-feature arrays ``x``, ``y``."""
    x, y = arr(*x_shape), arr(*y_shape)
    y_no_rows = y_shape[:-2] + (0, y_shape[-1])
    rows = [
        _row(func, "x wrong rank", (arr(*x_shape[1:]), y), ValueError, ("x",)),
        _row(func, "y wrong rank", (x, arr(1, *y_shape)), ValueError, ("y",)),
        _row(func, "x empty first axis", (arr(0, *x_shape[1:]), y), ValueError, ("x",)),
        _row(func, "y empty rows", (x, arr(*y_no_rows)), ValueError, ("y",)),
        _row(func, "x empty features",
             (arr(*x_shape[:-1], 0), arr(*y_shape[:-1], 0)), ValueError, ("x",)),
        _row(func, "feature length mismatch",
             (x, arr(*y_shape[:-1], y_shape[-1] + 1)), ValueError, ("x", "y")),
        _row(func, "x integer", (ints(*x_shape), y), TypeError, ("x",)),
        _row(func, "y integer", (x, ints(*y_shape)), TypeError, ("y",)),
        _row(func, "x list", (x.tolist(), y), TypeError, ("x",)),
        _row(func, "y list", (x, y.tolist()), TypeError, ("y",)),
        _row(func, "mixed float64 float32", (x, y.astype(np.float32)), TypeError, ("x", "y")),
        _row(func, "mixed float32 float64", (x.astype(np.float32), y), TypeError, ("x", "y")),
    ]
    if batched:
        rows.append(_row(func, "pair count mismatch", (x, arr(y_shape[0] + 1, *y_shape[1:])),
                         ValueError, ("x", "y")))
    rows += [_row(func, f"x {case}", (bad, y), TypeError, ("x",)) for case, bad in _odd_arrays(x)]
    rows += [_row(func, f"y {case}", (x, bad), TypeError, ("y",)) for case, bad in _odd_arrays(y)]
    return rows


def _label_rows(func, head, tail=()):
    """Bad labels for ``func(*head, labels, *tail)``, with ``N`` samples."""
    return [
        _row(func, "labels too long", (*head, np.arange(N + 1), *tail), ValueError, ("labels",)),
        _row(func, "labels too short", (*head, LABELS[:-1], *tail), ValueError, ("labels",)),
        _row(func, "labels 2-D", (*head, LABELS[:, None], *tail), ValueError, ("labels",)),
        _row(func, "labels float", (*head, LABELS.astype(np.float64), *tail), TypeError,
             ("labels",)),
        _row(func, "labels bool", (*head, LABELS.astype(bool), *tail), TypeError,
             ("labels", "bool")),
        _row(func, "labels list", (*head, LABELS.tolist(), *tail), TypeError, ("labels",)),
        *[_row(func, f"labels {case}", (*head, bad, *tail), TypeError, ("labels",))
          for case, bad in _odd_arrays(LABELS)[2:]],  # meta, sparse
        _row(func, "no negative", (*head, SAME_LABELS, *tail), ValueError, ("labels",)),
    ]


def _single_rows(func, name, good_shape, bad_rank_shapes, head=(), tail=()):
    """Bad cases of one float array argument ``name`` at position ``len(head)``."""
    rows = [_row(func, f"{name} rank {len(s)}", (*head, arr(*s), *tail), ValueError, (name,))
            for s in bad_rank_shapes]
    for axis in range(len(good_shape)):
        empty = good_shape[:axis] + (0,) + good_shape[axis + 1:]
        rows.append(_row(func, f"{name} empty axis {axis}", (*head, arr(*empty), *tail),
                         ValueError, (name,)))
    rows += [
        _row(func, f"{name} integer", (*head, ints(*good_shape), *tail), TypeError, (name,)),
        _row(func, f"{name} list", (*head, arr(*good_shape).tolist(), *tail), TypeError, (name,)),
    ]
    rows += [_row(func, f"{name} {case}", (*head, bad, *tail), TypeError, (name,))
             for case, bad in _odd_arrays(arr(*good_shape))]
    return rows


def _subclass_rows(func, name, good, head=(), tail=(), **kwargs):
    """ndarray subclasses the packages do not take, in place of argument ``name`` (a
    ``TypeError`` naming it): a masked array with a masked entry, and ``np.matrix`` for a
    2-D argument. Torch modules get them unconverted (see ``Implementation.to_native``)."""
    mask = np.zeros(good.shape, dtype=bool)
    mask.flat[0] = True
    cases = [("masked array", np.ma.masked_array(good, mask=mask))]
    if good.ndim == 2:
        with warnings.catch_warnings():  # np.matrix is "not recommended": that is the point
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            cases.append(("np.matrix", np.asmatrix(good)))
    return [_row(func, f"{name} {case}", (*head, bad, *tail), TypeError, (name,), **kwargs)
            for case, bad in cases]


AP = arr(N)
LOCAL = arr(N, 3, 2)
P_INDS = np.array([1, 0, 3, 2], dtype=np.int64)
N_INDS = np.array([2, 3, 0, 1], dtype=np.int64)

CASES = [
    *_single_rows("normalize", "x", (3, 4), [()]),
    _row("normalize", "axis out of range", (arr(3, 4), 2), ValueError, ("axis",)),
    _row("normalize", "axis not an int", (arr(3, 4), 1.0), TypeError, ("axis",)),
    *_pair_rows("euclidean_dist", (3, 4), (2, 4), batched=False),
    *_pair_rows("batch_euclidean_dist", (2, 3, 4), (2, 5, 4), batched=True),
    *_pair_rows("local_dist", (2, 3, 4), (3, 2, 4), batched=False),
    # The keyword arguments mean the same everywhere: chunk_size None or a positive int
    # (NumPy integers too), progress a bool ("no" would count as true).
    *[_row("local_dist", f"chunk_size {case}", (arr(2, 3, 4), arr(3, 2, 4)), error,
           ("chunk_size",), chunk_size=value)
      for case, value, error in (("zero", 0, ValueError), ("negative", np.int64(-1), ValueError),
                                 ("float", 2.0, TypeError), ("bool", True, TypeError),
                                 ("string", "2", TypeError))],
    *[_row("local_dist", f"progress {case}", (arr(2, 3, 4), arr(3, 2, 4)), TypeError,
           ("progress",), progress=value)
      for case, value in (("string", "no"), ("int", 1), ("None", None))],
    *_pair_rows("batch_local_dist", (2, 3, 4), (2, 5, 4), batched=True),
    *_pair_rows("pair_local_dist", (3, 4), (2, 4), batched=False),
    *_single_rows("shortest_dist", "dist_mat", (3, 4), [(3,)]),
    *_single_rows("stripe_dist", "euclid", (5,), []),
    # hard_example_mining(dist_mat, labels)
    *_single_rows("hard_example_mining", "dist_mat", (N, N), [(N,), (N, N, 1)], tail=(LABELS,)),
    _row("hard_example_mining", "dist_mat not square", (arr(N, N + 1), LABELS), ValueError,
         ("dist_mat",)),
    *_label_rows("hard_example_mining", (arr(N, N),)),
    # TripletLoss(0.3)(dist_ap, dist_an)
    *_single_rows("TripletLoss", "dist_ap", (N,), [(N, 1)], tail=(AP,)),
    *_single_rows("TripletLoss", "dist_an", (N,), [(N, 1)], head=(AP,)),
    _row("TripletLoss", "length mismatch", (AP, arr(N + 1)), ValueError, ("dist_ap", "dist_an")),
    _row("TripletLoss", "mixed dtypes", (AP, AP.astype(np.float32)), TypeError,
         ("dist_ap", "dist_an")),
    # global_loss(tri_loss, global_feat, labels)
    _row("global_loss", "tri_loss not a TripletLoss", ("soft", arr(N, 3), LABELS), TypeError,
         ("tri_loss",)),
    _row("global_loss", "tri_loss a function", (print, arr(N, 3), LABELS), TypeError,
         ("tri_loss",)),
    *_single_rows("global_loss", "global_feat", (N, 3), [(N,), (N, 3, 1)], head=(TRI,),
                  tail=(LABELS,)),
    *_label_rows("global_loss", (TRI, arr(N, 3))),
    # local_loss(tri_loss, local_feat, p_inds=None, n_inds=None, labels=None)
    _row("local_loss", "tri_loss not a TripletLoss", ("soft", LOCAL), TypeError, ("tri_loss",),
         labels=LABELS),
    _row("local_loss", "tri_loss a function", (print, LOCAL), TypeError, ("tri_loss",),
         labels=LABELS),
    *_single_rows("local_loss", "local_feat", (N, 3, 2), [(N, 3), (N, 3, 2, 1)], head=(TRI,),
                  tail=(P_INDS, N_INDS)),
    *_label_rows("local_loss", (TRI, LOCAL, None, None)),
    _row("local_loss", "neither indices nor labels", (TRI, LOCAL), ValueError, ("labels",)),
    # Labels are given too: an implementation must not silently mine instead.
    _row("local_loss", "only p_inds", (TRI, LOCAL), ValueError, ("p_inds", "n_inds"),
         p_inds=P_INDS, labels=LABELS),
    _row("local_loss", "only n_inds", (TRI, LOCAL), ValueError, ("p_inds", "n_inds"),
         n_inds=N_INDS, labels=LABELS),
    _row("local_loss", "p_inds too short", (TRI, LOCAL, P_INDS[:-1], N_INDS), ValueError,
         ("p_inds",)),
    _row("local_loss", "n_inds out of range", (TRI, LOCAL, P_INDS, N_INDS + N), ValueError,
         ("n_inds",)),
    _row("local_loss", "p_inds float", (TRI, LOCAL, P_INDS.astype(np.float64), N_INDS), TypeError,
         ("p_inds",)),
    # ndarray subclasses: refused by name, never computed on
    *_subclass_rows("normalize", "x", arr(3, 4)),
    *_subclass_rows("euclidean_dist", "x", arr(3, 4), tail=(arr(2, 4),)),
    *_subclass_rows("euclidean_dist", "y", arr(2, 4), head=(arr(3, 4),)),
    *_subclass_rows("batch_euclidean_dist", "y", arr(2, 5, 4), head=(arr(2, 3, 4),)),
    *_subclass_rows("local_dist", "x", arr(2, 3, 4), tail=(arr(3, 2, 4),)),
    *_subclass_rows("batch_local_dist", "y", arr(2, 5, 4), head=(arr(2, 3, 4),)),
    *_subclass_rows("pair_local_dist", "x", arr(3, 4), tail=(arr(2, 4),)),
    *_subclass_rows("shortest_dist", "dist_mat", arr(3, 4)),
    *_subclass_rows("stripe_dist", "euclid", arr(5)),
    *_subclass_rows("hard_example_mining", "dist_mat", arr(N, N), tail=(LABELS,)),
    *_subclass_rows("hard_example_mining", "labels", LABELS, head=(arr(N, N),)),
    *_subclass_rows("TripletLoss", "dist_an", AP, head=(AP,)),
    *_subclass_rows("global_loss", "global_feat", arr(N, 3), head=(TRI,), tail=(LABELS,)),
    *_subclass_rows("local_loss", "local_feat", LOCAL, head=(TRI,), tail=(P_INDS, N_INDS)),
    *_subclass_rows("local_loss", "n_inds", N_INDS, head=(TRI, LOCAL, P_INDS)),
    # Boolean indices are refused, never taken for a mask; the message says what came.
    _row("local_loss", "p_inds bool", (TRI, LOCAL, P_INDS.astype(bool), N_INDS), TypeError,
         ("p_inds", "bool")),
    _row("local_loss", "n_inds bool", (TRI, LOCAL, P_INDS, N_INDS.astype(bool)), TypeError,
         ("n_inds", "bool")),
    # Labels given along with the indices are not used, but checked all the same.
    _row("local_loss", "labels too short with indices", (TRI, LOCAL, P_INDS, N_INDS, LABELS[:-1]),
         ValueError, ("labels",)),
    _row("local_loss", "labels a string with indices", (TRI, LOCAL, P_INDS, N_INDS, "0011"),
         TypeError, ("labels",)),
    _row("local_loss", "labels float with indices", (TRI, LOCAL, P_INDS, N_INDS,
                                                     LABELS.astype(np.float64)), TypeError,
         ("labels",)),
]


def _names_pattern(names):
    """A regex that finds every one of ``names`` as a whole word, in any order."""
    return "(?s)^" + "".join(rf"(?=.*\b{re.escape(n)}\b)" for n in names)


def _call(impl, func, args, kwargs):
    """Call the module's ``func`` on native inputs (lists and other non-arrays pass unchanged)."""
    args = [impl.to_native(a) for a in args]
    kwargs = {k: impl.to_native(v) for k, v in kwargs.items()}
    target = impl.function("TripletLoss")(0.3) if func == "TripletLoss" else impl.function(func)
    return target(*args, **kwargs)


@pytest.mark.parametrize("func, args, kwargs, error, names", CASES)
def test_bad_input_raises(impl, func, args, kwargs, error, names):
    with pytest.raises(error, match=_names_pattern(names)):
        _call(impl, func, args, kwargs)


@pytest.mark.uses("local_dist", "shortest_dist")
def test_memmap_is_a_plain_array(impl, tmp_path):
    # The one ndarray subclass taken as it is: a file-backed array behaves as its data.
    x = arr(2, 3, 4)
    mapped = np.memmap(tmp_path / "x.dat", dtype=x.dtype, mode="w+", shape=x.shape)
    mapped[:] = x
    want = baseline(lambda: impl("local_dist", x, x))
    np.testing.assert_array_equal(impl("local_dist", mapped, mapped), want)
    want = baseline(lambda: impl("shortest_dist", x[0]))
    np.testing.assert_array_equal(impl("shortest_dist", mapped[0]), want)


# The oracle's extras -------------------------------------------------------------------
_X3, _Y3 = arr(2, 3, 4), arr(2, 5, 4)
VJP_CASES = [
    # (vjp, inputs, the shape grad_out should have; a wrong one is made by adding an axis)
    ("normalize_vjp", (arr(3, 4),), (3, 4)),
    ("stripe_dist_vjp", (arr(5),), (5,)),
    ("euclidean_dist_vjp", (arr(3, 4), arr(2, 4)), (3, 2)),
    ("batch_euclidean_dist_vjp", (_X3, _Y3), (2, 3, 5)),
    ("shortest_dist_vjp", (arr(3, 4, 2),), (2,)),
    ("local_dist_vjp", (_X3, arr(3, 5, 4)), (2, 3)),
    ("batch_local_dist_vjp", (_X3, _Y3), (2,)),
    ("pair_local_dist_vjp", (arr(3, 4), arr(5, 4)), ()),
]


@pytest.mark.parametrize("vjp, inputs, grad_shape", VJP_CASES, ids=[c[0] for c in VJP_CASES])
@pytest.mark.parametrize("wrong", ["extra axis", "other shape"])
def test_oracle_vjp_rejects_grad_out_of_wrong_shape(vjp, inputs, grad_shape, wrong):
    fn = getattr(reference, vjp)
    if wrong == "extra axis":
        bad = grad_shape + (1,)
    elif grad_shape:
        bad = (*grad_shape[::-1][:-1], grad_shape[0] + 1)
    else:  # a scalar output: any array is of another shape
        bad = (1,)
    fn(*inputs, arr(*grad_shape))  # the right shape is accepted: the failure below is the shape's
    with pytest.raises(ValueError, match=_names_pattern(["grad_out"])):
        fn(*inputs, arr(*bad))


def test_oracle_shortest_dist_vjp_rejects_array_grad_out_for_one_matrix():
    # One [m, n] matrix has a scalar output, so its grad_out has shape ().
    with pytest.raises(ValueError, match=_names_pattern(["grad_out"])):
        reference.shortest_dist_vjp(arr(3, 4), arr(1))


# A scalar output's grad_out may be a real number; a bool, a string or None is a mistake.
_SCALAR_VJPS = {
    "shortest_dist_vjp": lambda pkg, g: pkg.shortest_dist_vjp(arr(3, 4), g),
    "pair_local_dist_vjp": lambda pkg, g: pkg.pair_local_dist_vjp(arr(3, 4), arr(5, 4), g),
    "TripletLoss.vjp": lambda pkg, g: pkg.TripletLoss(0.3).vjp(arr(3), arr(3), g),
}


@pytest.mark.parametrize("package", ["reference", "numba_impl"])
@pytest.mark.parametrize("vjp", list(_SCALAR_VJPS))
@pytest.mark.parametrize("grad_out", ["1.0", True, np.True_, None, 1 + 0j],
                         ids=["str", "bool", "numpy bool", "None", "complex"])
def test_scalar_grad_out_is_a_real_number(package, vjp, grad_out):
    pkg = pytest.importorskip(package) if package == "numba_impl" else reference
    for accepted in (1, 1.0, np.float32(1.0), np.int8(1)):
        _SCALAR_VJPS[vjp](pkg, accepted)
    # An int beyond the float range rounds to inf, as a large float does (no OverflowError);
    # inf times gradients of both signs may sum to NaN: NumPy warns, as it should.
    for huge, rounded in ((10**400, np.inf), (-10**400, -np.inf)):
        with np.errstate(all="ignore"):
            got, want = _SCALAR_VJPS[vjp](pkg, huge), _SCALAR_VJPS[vjp](pkg, rounded)
        for got_k, want_k in zip(got, want):
            np.testing.assert_array_equal(got_k, want_k)
    with pytest.raises(TypeError, match=_names_pattern(["grad_out"])):
        _SCALAR_VJPS[vjp](pkg, grad_out)


def test_oracle_shortest_path_rejects_3d_input():
    with pytest.raises(ValueError, match=_names_pattern(["dist_mat"])):
        reference.shortest_path(arr(3, 4, 2))


# NaN propagation --------------------------------------------------------------------------
# shortest_dist is NaN exactly when its matrix (per trailing index) holds a NaN: every cell
# lies on some monotone path and reaches S[m-1, n-1] through minimum's NaN propagation.
# Python's min(a, nan) == a would lose it whenever the NaN sits on the second argument.
SHAPES = [(1, 1), (1, 5), (4, 1), (4, 5), (6, 3)]
PLACES = {
    "first cell": lambda m, n: (0, 0),
    "last row": lambda m, n: (m - 1, n // 3),
    "last column": lambda m, n: (m // 3, n - 1),
    "middle": lambda m, n: (m // 2, n // 2),
    "last cell": lambda m, n: (m - 1, n - 1),
}


def _costs(m, n, k=None, dtype=np.float64, seed=0):
    shape = (m, n) if k is None else (m, n, k)
    return np.random.default_rng(seed).uniform(0, 1, size=shape).astype(dtype)


@pytest.mark.uses("shortest_dist")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{n}" for m, n in SHAPES])
def test_shortest_dist_nan_in_one_matrix(impl, ref, shape, place, dtype):
    d = _costs(*shape, dtype=dtype)
    clean = impl("shortest_dist", d)
    assert not np.isnan(clean), f"{impl.name}: NaN from a matrix without NaN"
    d[PLACES[place](*shape)] = np.nan
    got = impl("shortest_dist", d)
    assert np.isnan(got), f"{impl.name}: NaN at the {place} of a {shape} matrix was lost: {got!r}"
    assert_bitwise(got, ref("shortest_dist", d), impl, "shortest_dist", [d])


@pytest.mark.uses("shortest_dist")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{n}" for m, n in SHAPES])
def test_shortest_dist_nan_per_trailing_index(impl, ref, shape, dtype):
    """One trailing index per place, plus clean ones in between: NaN exactly where planted."""
    places = list(PLACES.values())
    k = 2 * len(places) + 1
    d = _costs(*shape, k=k, dtype=dtype, seed=1)
    for slot, place in enumerate(places):
        d[(*place(*shape), 2 * slot + 1)] = np.nan  # odd indices get a NaN, even stay clean
    want = np.isnan(d).any(axis=(0, 1))
    got = impl("shortest_dist", d)
    np.testing.assert_array_equal(np.isnan(got), want, err_msg=f"{impl.name}: NaN pattern")
    assert_bitwise(got, ref("shortest_dist", d), impl, "shortest_dist", [d])


@st.composite
def _matrices_with_nans(draw):
    d = draw(cost_matrices(min_side=1, max_side=8, batch=True))
    # Mostly clean cells, so that some trailing indices stay free of NaN.
    sparse = st.sampled_from([False, False, False, True])
    mask = draw(hnp.arrays(np.bool_, d.shape, elements=sparse))
    d[mask] = np.nan
    return d


@pytest.mark.uses("shortest_dist")
@given(d=_matrices_with_nans())
def test_shortest_dist_nan_exactly_where_planted(impl, d):
    got = impl("shortest_dist", d)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(d).any(axis=(0, 1)),
                                  err_msg=f"{impl.name}: NaN pattern of shortest_dist")


def test_oracle_triplet_loss_vjp_rejects_array_grad_out():
    # The loss is a scalar, so its grad_out has shape ().
    loss = reference.TripletLoss(0.3)
    loss.vjp(arr(3), arr(3), 1.0)  # a scalar is accepted: the failure below is the shape's
    with pytest.raises(ValueError, match=_names_pattern(["grad_out"])):
        loss.vjp(arr(3), arr(3), np.ones((2, 1)))
