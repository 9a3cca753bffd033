"""Formula 2: the shortest monotone path through a matrix of stripe distances.

The loops below are the recurrence of the derivation page, cell by cell::

    S[0,0] = d[0,0]
    S[i,0] = S[i-1,0] + d[i,0]          S[0,j] = S[0,j-1] + d[0,j]
    S[i,j] = min(S[i-1,j], S[i,j-1]) + d[i,j]

Each cell is vectorised over the trailing batch axes ``*`` of a ``[m, n, *]`` input
only. ``np.minimum`` propagates NaN (Python's ``min`` does not), and every cell costs
one comparison and one addition, so any implementation that follows the same recurrence
agrees with this one bit for bit.
"""
import itertools

import numpy as np

from . import _checks


def _table(dist_mat):
    """The table ``S`` of formula 2, same shape as ``dist_mat`` (``[m, n, *]``)."""
    m, n = dist_mat.shape[:2]
    table = np.empty_like(dist_mat)
    table[0, 0] = dist_mat[0, 0]
    for j in range(1, n):  # first row: the only way in is from the left
        table[0, j] = table[0, j - 1] + dist_mat[0, j]
    for i in range(1, m):
        table[i, 0] = table[i - 1, 0] + dist_mat[i, 0]  # first column: only from above
        for j in range(1, n):
            table[i, j] = np.minimum(table[i - 1, j], table[i, j - 1]) + dist_mat[i, j]
    return table


def shortest_dist(dist_mat):
    """Formula 2: length of the shortest down/right path from the top-left to the bottom-right cell.

    Parameters
    ----------
    dist_mat : ndarray, shape (m, n) or (m, n, *), float32 or float64
        Stripe distances; trailing axes are independent pairs.

    Returns
    -------
    scalar or ndarray of shape (*), same dtype as ``dist_mat``
        NaN exactly where the matrix of that trailing index holds a NaN.

    Examples
    --------
    >>> import numpy as np, reference
    >>> reference.shortest_dist(np.array([[0.1, 0.9], [0.2, 0.1]]))
    np.float64(0.4)
    """
    _checks.float_array("shortest_dist", "dist_mat", dist_mat, "(m, n) or (m, n, *)", min_ndim=2)
    return _table(dist_mat)[-1, -1]


def shortest_path(dist_mat):
    """Formula 2 with its table and the optimal path, found by explicit backtracking.

    From the bottom-right cell, step back to whichever neighbour (above or to the left)
    holds the smaller ``S``; on a tie, step back to the previous row ``(i-1, j)``. On the
    first row only the left neighbour exists, on the first column only the one above, so
    the walk never leaves the grid.

    Parameters
    ----------
    dist_mat : ndarray, shape (m, n), float32 or float64

    Returns
    -------
    dist : scalar, same dtype as ``dist_mat``
        ``S[m-1, n-1]``, equal to ``shortest_dist(dist_mat)``.
    table : ndarray, shape (m, n)
        The table ``S`` of formula 2.
    path : list of (int, int)
        The cells of the path from ``(0, 0)`` to ``(m-1, n-1)``; cell ``(i, j)`` means
        stripe ``i`` of the first image is matched with stripe ``j`` of the second.

    Examples
    --------
    >>> import numpy as np, reference
    >>> dist, table, path = reference.shortest_path(np.array([[0.1, 0.9], [0.2, 0.1]]))
    >>> path
    [(0, 0), (1, 0), (1, 1)]
    """
    _checks.float_array("shortest_path", "dist_mat", dist_mat, "(m, n)", ndim=2)
    table = _table(dist_mat)
    i, j = dist_mat.shape[0] - 1, dist_mat.shape[1] - 1
    path = [(i, j)]
    while (i, j) != (0, 0):
        if j == 0 or (i > 0 and table[i - 1, j] <= table[i, j - 1]):
            i -= 1
        else:
            j -= 1
        path.append((i, j))
    path.reverse()
    return table[-1, -1], table, path


def shortest_dist_vjp(dist_mat, grad_out):
    """Gradient of formula 2 with respect to ``dist_mat``, by a reverse pass over the table.

    ``S[i,j] = min(S[i-1,j], S[i,j-1]) + d[i,j]``, so ``dS[i,j]/dd[i,j] = 1`` and the
    adjoint of ``S[i,j]`` flows on to the neighbour that attained the minimum, half to
    each on an exact tie (as ``torch.minimum`` does). Visiting the cells in reverse order
    finishes each cell's adjoint before it is passed on. The result is a unit flow from
    ``(0,0)`` to ``(m-1,n-1)`` (scaled by ``grad_out``): the indicator of the optimal path
    where that path is unique. Gradients of a matrix holding NaN are not specified.

    Parameters
    ----------
    dist_mat : ndarray, shape (m, n) or (m, n, *)
    grad_out : scalar or ndarray of shape (*), same dtype

    Returns
    -------
    grad_dist_mat : ndarray, same shape and dtype as ``dist_mat``

    Examples
    --------
    >>> import numpy as np, reference
    >>> reference.shortest_dist_vjp(np.array([[0.1, 0.9], [0.2, 0.1]]), 1.0)
    array([[1., 0.],
           [1., 1.]])
    """
    func = "shortest_dist_vjp"
    _checks.float_array(func, "dist_mat", dist_mat, "(m, n) or (m, n, *)", min_ndim=2)
    grad_out = _checks.grad_like(func, grad_out, dist_mat.shape[2:], dist_mat.dtype)
    table = _table(dist_mat)
    m, n = dist_mat.shape[:2]
    half = dist_mat.dtype.type(0.5)
    adjoint = np.zeros_like(dist_mat)  # adjoint of S[i,j] = gradient of d[i,j]
    adjoint[-1, -1] = grad_out
    for i in reversed(range(m)):
        for j in reversed(range(n)):
            g = adjoint[i, j]
            if i == 0 and j == 0:
                continue
            if i == 0:
                adjoint[0, j - 1] += g
            elif j == 0:
                adjoint[i - 1, 0] += g
            else:
                up, left = table[i - 1, j], table[i, j - 1]
                tie = up == left
                adjoint[i - 1, j] += np.where(tie, half * g, np.where(up < left, g, 0))
                adjoint[i, j - 1] += np.where(tie, half * g, np.where(left < up, g, 0))
    return adjoint


def monotone_paths(m, n):
    """Every monotone (down/right) path through an ``m x n`` grid, for brute-force checks.

    A path makes ``m+n-2`` steps, ``m-1`` of them down; choosing which steps go down
    fixes the path, so there are ``C(m+n-2, m-1)`` of them. Keep ``m`` and ``n`` small:
    already ``C(14, 7) = 3432`` for 8 x 8.

    Parameters
    ----------
    m, n : int, at least 1

    Returns
    -------
    list of list of (int, int)
        Each path from ``(0, 0)`` to ``(m-1, n-1)``, ``m+n-1`` cells long.

    Examples
    --------
    >>> import reference
    >>> reference.monotone_paths(2, 2)
    [[(0, 0), (1, 0), (1, 1)], [(0, 0), (0, 1), (1, 1)]]
    """
    for name, value in (("m", m), ("n", n)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"monotone_paths: {name} must be an int; got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"monotone_paths: {name} must be at least 1; got {value}")
    steps = m + n - 2
    paths = []
    for downs in itertools.combinations(range(steps), m - 1):
        i = j = 0
        path = [(0, 0)]
        down_steps = set(downs)
        for step in range(steps):
            if step in down_steps:
                i += 1
            else:
                j += 1
            path.append((i, j))
        paths.append(path)
    return paths
