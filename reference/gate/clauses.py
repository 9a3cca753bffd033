"""The clauses of the contract that the gate's verdict is given by, and which test checks which.

Every test of the suite that runs on an implementation (the ``impl`` fixture) belongs to
exactly one clause, named here, in one place, by its module and function: a new test
needs a line here only when its module's default clause does not fit
(``tests/test_gate.py`` checks that every such test is placed).

Each failure is one of these kinds, from the worst down (``verdict.classify``):

- ``wrong``: a silent wrong result on valid input (a value, a NaN, a dtype, an index);
- ``crash``: valid input, and the module raised;
- ``accepted``: bad input that the contract refuses was taken without an error;
- ``refusal``: bad input refused loudly, but with another exception type or a message
  that does not name the argument;
- ``convention``: a convention of the contract (the ``1e-12`` clamp, normalize's eps)
  not followed; every other check then compares with the oracle under the module's own
  conventions (``conventions.py``), so a convention is reported once, here;
- ``error``: the suite could not judge (a fixture or Hypothesis itself failed).

``wrong`` and ``crash`` are the defects.
"""
from dataclasses import dataclass, field

KINDS = ("wrong", "crash", "accepted", "refusal", "convention", "error")
DEFECTS = ("wrong", "crash")
#: The column of the verdict table each kind is counted in.
SEVERITY = {"wrong": "defect", "crash": "defect", "accepted": "accepted", "refusal": "refusal",
            "convention": "convention", "error": "error"}


@dataclass(frozen=True)
class Clause:
    key: str
    title: str
    #: One plain line per kind of failure: what it means for training or evaluation.
    meaning: dict = field(default_factory=dict)


_GENERIC = {
    "accepted": "bad input is taken without an error: a bug upstream (a wrong shape, labels "
                "of the wrong length, mixed precision) gives numbers instead of a stop",
    "refusal": "bad input stops the run, as it should, but with another exception type or "
               "a message that does not name the argument: harmless, only harder to debug",
    "error": "the suite could not judge this (see the message): fix the setup and run again",
}

CLAUSES = (
    Clause("distances", "formula 1, distances: values, overflow", {
        "wrong": "distances are off the oracle (or NaN past the overflow threshold): ranking "
                 "and the losses see wrong numbers, and one NaN spoils a whole training step",
        "crash": "computing distances stops with an error on valid features: evaluation or "
                 "training cannot run on such batches",
    }),
    Clause("formula2", "formula 2, bitwise", {
        "wrong": "the shortest path is not formula 2's: local distances, hence rankings and "
                 "the local loss, differ from AlignedReID's",
        "crash": "formula 2 stops with an error on a valid matrix: those pairs cannot be scored",
    }),
    Clause("nan", "NaN propagation", {
        "wrong": "a NaN is lost or spreads to other pairs: a broken input is silently scored "
                 "as a number, or poisons results that do not depend on it",
        "crash": "a NaN in the input stops the run instead of giving NaN where it belongs",
    }),
    Clause("dtypes", "dtypes of every output", {
        "wrong": "an output has another dtype than the input (float32 in, float64 out): "
                 "silent casts cost memory and time, and mixed dtypes fail later in training",
        "crash": "the function stops with an error for one of the two float dtypes",
    }),
    Clause("gradients", "gradients", {
        "wrong": "the gradient differs from the oracle's (zero, NaN, a path not split on a "
                 "tie, an input left without one): training follows a wrong direction",
        "crash": "the backward pass stops with an error: training cannot run in this setup",
    }),
    Clause("mining", "mining: ties, unbalanced identities", {
        "wrong": "the mined examples are not the hardest (wrong distances or indices): the "
                 "triplet loss trains on other triplets than AlignedReID's",
        "crash": "mining stops with an error on a valid batch (identities with unequal image "
                 "counts, a single image): training crashes on such batches",
    }),
    Clause("losses", "losses", {
        "wrong": "loss values differ from the oracle's (inf or NaN at large differences, a "
                 "wrong mean): the training signal is wrong or destroyed",
        "crash": "the loss stops with an error on valid input: training cannot run",
    }),
    Clause("inputs", "input forms: views, integer dtypes, autocast", {
        "wrong": "results change with how the input is handed over (a transposed or sliced "
                 "view, labels in another integer dtype, autocast): real batches get other "
                 "numbers than contiguous test arrays",
        "crash": "a valid form of input (a view, an integer dtype, autocast, a keyword of the "
                 "contract) stops the run with an error",
    }),
    Clause("validation", "input validation", {}),
    Clause("conventions", "conventions: 1e-12 clamp, normalize's eps", {
        "convention": "the module follows another convention than the contract: its values "
                      "differ from AlignedReID's by about 1e-7 or less; every other check "
                      "compares it under its own convention",
    }),
    Clause("unclassified", "tests not yet placed in a clause", {
        "wrong": "a check failed that tests/test_gate.py should have placed in a clause",
        "crash": "a check failed that tests/test_gate.py should have placed in a clause",
    }),
)
BY_KEY = {clause.key: clause for clause in CLAUSES}


def meaning(clause_key, kind):
    """The plain line for a failure of ``kind`` in clause ``clause_key``."""
    return BY_KEY[clause_key].meaning.get(kind) or _GENERIC.get(kind, "")


#: Test module -> clause, or -> {test function (or "*" for the others): clause}.
TESTS = {
    "test_bad_input": {"test_bad_input_raises": "validation", "test_memmap_is_a_plain_array": "inputs",
                       "*": "nan"},
    "test_batches": {"test_large_shortest_dist": "formula2", "test_large_mining": "mining",
                     "test_large_local_distances": "distances",
                     "test_large_local_gradients": "gradients", "*": "nan"},
    "test_conventions": "conventions",
    "test_distances": {"test_local_dist_in_chunks": "inputs",
                       "test_local_dist_progress_goes_to_stderr_only_when_asked": "inputs",
                       "test_normalize_takes_a_numpy_integer_axis": "inputs", "*": "distances"},
    "test_dtypes": "dtypes",
    "test_gradient_setups": "gradients",
    "test_gradients": "gradients",
    "test_layouts": "inputs",
    "test_mining_loss": {"test_mining_is_an_exact_selection": "mining",
                         "test_mining_ties_go_to_the_lowest_index": "mining",
                         "test_triplet_loss_refuses_non_finite_margin": "validation",
                         "test_loss_gradients": "gradients",
                         "test_labels_of_every_integer_dtype": "inputs",
                         "test_indices_of_every_integer_dtype": "inputs", "*": "losses"},
    "test_pair_local_dist": {"test_pair_local_dist_gradient": "gradients", "*": "distances"},
    "test_pitfalls": {"test_formula1_no_overflow": "distances",
                      "test_norm_expansion_no_overflow": "distances",
                      "test_mining_does_not_skip_nan": "nan",
                      "test_mining_unbalanced_identities": "mining",
                      "test_local_dist_2d_uses_whole_matrix": "formula2",
                      "test_backtracking_stays_on_grid": "formula2",
                      "test_batch_first_keeps_gradients": "gradients"},
    "test_shortest_dist": {"test_dtype_and_shape_preserved": "dtypes", "*": "formula2"},
    "test_torch_facing": {"test_double_backward_is_right_or_refused": "gradients",
                          "test_autocast_computes_in_float32": "inputs"},
}


#: Test modules that take an implementation but judge another package through it (the
#: gate's verdict is on the contract: under ``--impl`` they do not run).
OTHER_PACKAGES = {"test_retrieval": "retrieval", "test_retrieval_cluster": "retrieval",
                  "test_retrieval_inputs": "retrieval"}


def clause_of(module, function):
    """The clause key of test ``function`` in test module ``module`` (base names)."""
    entry = TESTS.get(module)
    if isinstance(entry, str):
        return entry
    if entry is None:
        return "unclassified"
    return entry.get(function, entry.get("*", "unclassified"))
