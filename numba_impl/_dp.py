"""Formula 2 for one block of pairs, written once and compiled for both targets.

``cpu/jit.py`` compiles these functions with ``numba.njit`` and ``gpu/launch.py`` with
``numba.cuda.jit(device=True)`` (``_compile.for_target``), so the CPU and the GPU run the
same recurrence. They must stay plain Python that both compilers accept: no NumPy calls, no allocation, no
Python float constants (a float constant would promote float32 arithmetic to float64;
constants of the right dtype come in as arguments).

Layout: ``d[i, j, p]`` holds cell ``(i, j)`` of pair ``p``; the pairs ``p0 .. p0+count-1``
are handled together, the pair loop innermost so that the CPU can vectorise over pairs.
On the GPU ``count`` is 1 (one pair per thread).
"""


def dp_forward(d, m, n, p0, count, table):
    """Fill ``table[r, j, c]`` with ``S[i, j]`` of pair ``p0 + c``, where ``r = i % R``.

    ``d`` and ``table`` may be larger than ``m x n`` (the GPU's fixed-size local arrays);
    only the leading ``m x n`` cells are used. ``table`` has shape ``(R, >=n, >=count)``:
    ``R >= m`` keeps the whole table (for the
    reverse pass), ``R = 2`` rolls two rows (enough for the distance). Every cell is one
    IEEE minimum and one addition, in the order of the oracle, so results are bitwise
    equal to it. The distance of pair ``p0 + c`` ends in ``table[(m-1) % R, n-1, c]``.
    """
    rows = table.shape[0]
    # Inner loops run over 1-D views: the CPU compiler vectorises them, not the same
    # loops indexed in three dimensions (4x slower). On the GPU the views are free.
    first = table[0]
    for c in range(count):
        first[0, c] = d[0, 0, p0 + c]
    for j in range(1, n):
        left, cell, cost = first[j - 1], first[j], d[0, j, p0:p0 + count]
        for c in range(count):
            cell[c] = left[c] + cost[c]
    for i in range(1, m):
        above, row = table[(i - 1) % rows], table[i % rows]
        up, cell, cost = above[0], row[0], d[i, 0, p0:p0 + count]
        for c in range(count):
            cell[c] = up[c] + cost[c]
        for j in range(1, n):
            up, left, cell, cost = above[j], row[j - 1], row[j], d[i, j, p0:p0 + count]
            for c in range(count):
                # IEEE minimum (np.minimum): NaN when either side is NaN; Python's min
                # would drop a NaN held in `up`. On a tie `up` is kept, as np.minimum does.
                low = left[c] if (left[c] < up[c] or left[c] != left[c]) else up[c]
                cell[c] = low + cost[c]


def dp_backward(table, grad_out, half, m, n, p0, count, grad):
    """Reverse pass: add the gradient of ``S[m-1, n-1]`` to ``grad[:, :, p0:p0+count]``.

    ``table`` is the whole table from ``dp_forward`` (``R >= m``), ``grad`` must be zero
    on entry. The adjoint of each cell flows to the neighbour that attained the minimum,
    ``half`` of it to each on an exact tie (as ``torch.minimum``), none where the
    comparison involves NaN (as the oracle). Cells are visited in reverse order, so each
    adjoint is complete before it is passed on. ``half`` is 0.5 in the data's dtype.
    """
    zero = half - half
    for c in range(count):
        grad[m - 1, n - 1, p0 + c] = grad_out[p0 + c]
    for i in range(m - 1, -1, -1):
        for j in range(n - 1, -1, -1):
            if i == 0 and j == 0:
                continue
            # 1-D views over the pairs, as in dp_forward, so that the CPU vectorises.
            g = grad[i, j, p0:p0 + count]
            if i == 0 or j == 0:
                to = grad[0, j - 1, p0:p0 + count] if i == 0 else grad[i - 1, 0, p0:p0 + count]
                for c in range(count):
                    to[c] += g[c]
                continue
            up, left = table[i - 1, j], table[i, j - 1]
            to_up, to_left = grad[i - 1, j, p0:p0 + count], grad[i, j - 1, p0:p0 + count]
            for c in range(count):
                # Selects rather than branches (vectorisable); adding an exact zero to
                # the side that lost changes nothing (the adjoints start at +0).
                share = half * g[c]
                to_up[c] += g[c] if up[c] < left[c] else (share if up[c] == left[c] else zero)
                to_left[c] += g[c] if left[c] < up[c] else (share if up[c] == left[c] else zero)
