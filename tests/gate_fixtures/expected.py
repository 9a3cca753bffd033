"""What the gate must find in each fixture, and a check of a verdict against it.

For each fixture: the defects its bugs cause, as the (clause, kind, test function) triples
in which they may show (``allowed``: a defect anywhere else is a false alarm), the
findings that must be there (``required``: deterministic tests, found in every run), and
the conventions it follows. ``python -m tests.gate_fixtures.expected VERDICT.json`` checks
a verdict file (``.ci/run`` does, on the gate run from the installed wheel).
"""
import json
import sys

_EXTREME = {"test_normalize", "test_euclidean_distances", "test_local_dist",
            "test_batch_local_dist_is_the_diagonal", "test_pair_local_dist"}

# widely_used, bug by bug (see its docstring)
_LITERAL_FORMULA_1 = {("distances", "wrong", t) for t in _EXTREME | {
    "test_formula1_no_overflow", "test_stripe_dist_is_tanh_of_half",
    "test_large_unnormalised_features_give_no_nan"}}
_EXPANSION_OVERFLOW = {("distances", "wrong", t) for t in _EXTREME | {
    "test_norm_expansion_no_overflow"}} | {("losses", "wrong", "test_losses_with_extreme_features")}
_SOFT_MARGIN = {("losses", "wrong", t) for t in (
    "test_soft_margin_does_not_overflow", "test_triplet_loss_extreme_differences",
    "test_triplet_loss_with_extreme_distances", "test_losses_with_extreme_features",
    "test_global_loss", "test_local_loss")}
_RESHAPE = {(clause, kind, t) for kind in ("crash", "wrong") for clause, t in (
    ("mining", "test_mining_is_an_exact_selection"), ("mining", "test_mining_unbalanced_identities"),
    ("mining", "test_large_mining"), ("losses", "test_global_loss"), ("losses", "test_local_loss"),
    ("losses", "test_losses_with_extreme_features"))}
_COLUMN_0 = {("formula2", "wrong", "test_local_dist_2d_uses_whole_matrix"),
             ("distances", "wrong", "test_pair_local_dist"),
             ("distances", "wrong", "test_large_local_distances"),
             ("nan", "wrong", "test_nan_in_one_pair_stays_in_its_pair")}

FIXTURES = {
    "widely_used": dict(
        array="numpy",
        allowed=_LITERAL_FORMULA_1 | _EXPANSION_OVERFLOW | _SOFT_MARGIN | _RESHAPE | _COLUMN_0,
        required={("distances", "wrong", "test_formula1_no_overflow"),
                  ("distances", "wrong", "test_norm_expansion_no_overflow"),
                  ("losses", "wrong", "test_soft_margin_does_not_overflow"),
                  ("mining", "crash", "test_mining_unbalanced_identities"),
                  ("mining", "wrong", "test_mining_unbalanced_identities"),
                  ("formula2", "wrong", "test_local_dist_2d_uses_whole_matrix")},
        conventions=["squared distances clamped at 0, not 1e-12: identical vectors are 0 apart, "
                     "not 1e-06",
                     "normalize divides by ||x|| + 1.19e-07 (float32's eps), not ||x|| + 1e-12"]),
    "chunk_tail": dict(
        array="numpy",
        allowed={("formula2", "wrong", "test_large_shortest_dist"),
                 ("distances", "wrong", "test_large_local_distances"),
                 ("distances", "wrong", "test_pair_local_dist"),  # 17 to 20 stripes
                 ("nan", "wrong", "test_nan_in_one_pair_stays_in_its_pair")},  # 65 pairs
        required={("formula2", "wrong", "test_large_shortest_dist"),
                  ("distances", "wrong", "test_large_local_distances")}),
    "nan_batch": dict(
        array="numpy",
        allowed={("nan", "wrong", "test_nan_in_one_pair_stays_in_its_pair")},
        required={("nan", "wrong", "test_nan_in_one_pair_stays_in_its_pair")}),
    "float64_outputs": dict(
        array="numpy",
        allowed={("dtypes", "wrong", "test_outputs_keep_the_dtype"),
                 ("dtypes", "wrong", "test_triplet_loss_keeps_the_dtype"),
                 ("distances", "wrong", "test_local_dist"),  # judged on its own: no partner
                 ("distances", "wrong", "test_formula1_no_overflow")},  # checks the dtype too
        required={("dtypes", "wrong", "test_outputs_keep_the_dtype"),
                  ("dtypes", "wrong", "test_triplet_loss_keeps_the_dtype"),
                  ("distances", "wrong", "test_local_dist")}),
    "partial_grad": dict(
        array="torch",
        allowed={("gradients", "wrong", "test_only_one_input_requires_grad")},
        required={("gradients", "wrong", "test_only_one_input_requires_grad")}),
    "tie_one_path": dict(
        array="torch",
        allowed={("gradients", "wrong", "test_tied_paths_between_distinct_images")},
        required={("gradients", "wrong", "test_tied_paths_between_distinct_images")}),
    "soft_margin_backward": dict(
        array="torch",
        allowed={("gradients", "wrong", "test_global_loss_gradient_far_from_the_margin")},
        required={("gradients", "wrong", "test_global_loss_gradient_far_from_the_margin")}),
}
PACKAGE = __name__.rsplit(".", 1)[0]


def module_name(fixture):
    return f"{PACKAGE}.{fixture}"


def defects(implementation):
    """``{(clause, kind, test function)}`` of the implementation's defect findings."""
    return {(clause["clause"], f["kind"], f["test"].split("::")[-1].split("[")[0])
            for clause in implementation["clauses"] for f in clause["findings"]
            if f["severity"] == "defect"}


def problems(document, fixtures=None, name_of=module_name):
    """Where a verdict ``document`` departs from the expectations: a list of messages.

    ``fixtures``: the fixtures to check (all that the document holds, by default);
    ``name_of(fixture)``: the module name under which the document lists it.
    """
    by_name = {i["name"]: i for i in document["implementations"]}
    found = []
    for fixture in fixtures or [f for f in FIXTURES if name_of(f) in by_name]:
        expect, name = FIXTURES[fixture], name_of(fixture)
        if name not in by_name:
            found.append(f"{fixture}: not in the verdict")
            continue
        implementation = by_name[name]
        got = defects(implementation)
        for extra in sorted(got - expect["allowed"]):
            found.append(f"{fixture}: a defect where its bugs do not show: {extra}")
        for missing in sorted(expect["required"] - got):
            found.append(f"{fixture}: its defect was not found: {missing}")
        if implementation["conventions"] != expect.get("conventions", []):
            found.append(f"{fixture}: conventions {implementation['conventions']}")
        conventions_clause = [c for c in implementation["clauses"] if c["clause"] == "conventions"]
        if expect.get("conventions") and not conventions_clause[0]["conventions"]:
            found.append(f"{fixture}: its conventions are not reported in their clause")
    return found


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        document = json.load(f)
    names = dict(arg.split("=", 1) for arg in sys.argv[2:])  # fixture=module as judged
    report = problems(document, list(names) or None,
                      (lambda fixture: names[fixture]) if names else module_name)
    print("\n".join(report) or "the verdict is the expected one")
    sys.exit(1 if report else 0)
