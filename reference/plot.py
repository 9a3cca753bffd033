"""The picture that explains AlignedReID: the stripe distances, the path, the matching."""
import numpy as np


def plot_alignment(dist_mat, path=None, ax=None):
    """Draw formula 1's matrix with the shortest path over it, and the stripe matching.

    Parameters
    ----------
    dist_mat : ndarray, shape (m, n)
        Stripe distances of image A (rows) against image B (columns).
    path : list of (int, int), optional
        The alignment; by default ``reference.shortest_path(dist_mat)[2]``.
    ax : pair of matplotlib Axes, optional
        Where to draw the matrix and the matching; a new figure when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, reference.plot
    >>> fig = reference.plot.plot_alignment(np.random.default_rng(0).random((7, 7)))
    >>> len(fig.axes)  # the matrix, the matching, the colour bar
    3
    """
    import matplotlib.pyplot as plt

    from .path import shortest_path

    dist, _, best = shortest_path(dist_mat)
    path = best if path is None else path
    m, n = dist_mat.shape
    if ax is None:
        fig, ax = plt.subplots(1, 2, figsize=(9, 4.2), gridspec_kw={"width_ratios": [1.2, 1]})
    matrix_ax, match_ax = ax
    fig = matrix_ax.figure

    image = matrix_ax.imshow(dist_mat, cmap="viridis", vmin=0, vmax=1)
    rows, cols = np.array(path).T
    matrix_ax.plot(cols, rows, "-o", color="white", lw=2, ms=5)
    for i in range(m):
        for j in range(n):
            matrix_ax.text(j, i + 0.32, f"{dist_mat[i, j]:.2f}", ha="center", fontsize=6,
                           color="black" if dist_mat[i, j] > 0.6 else "white")
    matrix_ax.set_xlabel("stripe j of image B")
    matrix_ax.set_ylabel("stripe i of image A")
    matrix_ax.set_title(f"formula 1 and the shortest path (length {dist:.3f})")
    fig.colorbar(image, ax=matrix_ax, fraction=0.046)

    # Two columns of stripes, top of the person at the top; one line per matched pair.
    for k in range(m):
        match_ax.add_patch(plt.Rectangle((0, m - 1 - k - 0.4), 0.3, 0.8, color="tab:blue", alpha=0.5))
        match_ax.text(-0.05, m - 1 - k, f"A{k}", ha="right", va="center")
    for k in range(n):
        match_ax.add_patch(plt.Rectangle((1.7, n - 1 - k - 0.4), 0.3, 0.8, color="tab:orange", alpha=0.5))
        match_ax.text(2.05, n - 1 - k, f"B{k}", ha="left", va="center")
    for i, j in path:
        shade = plt.cm.viridis(dist_mat[i, j])
        match_ax.plot([0.3, 1.7], [m - 1 - i, n - 1 - j], color=shade, lw=2)
    match_ax.set_xlim(-0.5, 2.5)
    match_ax.set_ylim(-1, max(m, n))
    match_ax.axis("off")
    match_ax.set_title("which stripe of A is matched with which of B")
    fig.tight_layout()
    return fig
