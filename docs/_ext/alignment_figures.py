"""Draw the pictures the pages show, from the oracle, before Sphinx reads the pages.

The figures are generated on every build so that they always match the code; they are
written to ``docs/_generated/`` (build output, not tracked by git).
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a build machine


def _worked_example_matrix():
    import reference
    from reference.example import worked_example

    features_a, features_b = worked_example()
    return reference.stripe_dist(reference.euclidean_dist(features_a, features_b))


def _occluded_pair_matrix():
    """The worked example with stripes 3 and 4 of image B replaced by an occluder."""
    import numpy as np

    import reference
    from reference.example import worked_example

    features_a, features_b = worked_example()
    occluded_b = features_b.copy()
    occluded_b[2:4] = np.full_like(occluded_b[2:4], 3.0)
    return reference.stripe_dist(reference.euclidean_dist(features_a, occluded_b))


FIGURES = {
    "worked_example_alignment.png": _worked_example_matrix,
    "occluded_pair_alignment.png": _occluded_pair_matrix,
}


def generate_figures(app):
    import matplotlib.pyplot as plt

    import reference
    from reference.plot import plot_alignment

    out_dir = Path(app.srcdir) / "_generated"
    out_dir.mkdir(exist_ok=True)
    for name, make_matrix in FIGURES.items():
        dist_mat = make_matrix()
        _, _, path = reference.shortest_path(dist_mat)
        figure = plot_alignment(dist_mat, path=path)
        figure.savefig(out_dir / name, dpi=100, bbox_inches="tight")
        plt.close(figure)


def setup(app):
    app.connect("builder-inited", generate_figures)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
