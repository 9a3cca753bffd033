"""Hard-example mining: the farthest positive and nearest negative per anchor."""

import torch

from . import _checks
from ._autocast import float32_under_autocast


def _first_extreme(values, mask, largest):
    """Index of the first (lowest-index) extreme entry of each row among
    ``mask``, vectorised over rows.

    ``torch.max``/``argmax`` do not promise the first index on every device,
    so the extreme value is found first and then the smallest column index
    holding it.  NaN counts as the extreme (as ``np.argmax`` treats it), so a
    NaN distance is never skipped silently.
    """
    fill = float("-inf") if largest else float("inf")
    masked = values.masked_fill(~mask, fill)
    best = masked.amax(dim=1, keepdim=True) if largest else \
        masked.amin(dim=1, keepdim=True)
    hit = (masked == best) | (torch.isnan(masked) & torch.isnan(best))
    hit &= mask
    cols = torch.arange(values.shape[1], device=values.device)
    big = torch.full_like(cols, values.shape[1])
    return torch.where(hit, cols, big).amin(dim=1)


@float32_under_autocast
def hard_example_mining(dist_mat, labels, return_inds=False):
    """Hardest positive and hardest negative of every anchor.

    Parameters
    ----------
    dist_mat : Tensor, shape (N, N)
        Distances between all pairs of the N samples.
    labels : Tensor, shape (N,)
        Integer identity labels; identities may have any number of samples.
    return_inds : bool, default False
        Also return the indices of the chosen samples.

    Returns
    -------
    dist_ap : Tensor, shape (N,)
        Largest distance to a sample with the same label (the anchor counts).
    dist_an : Tensor, shape (N,)
        Smallest distance to a sample with another label.
    p_inds, n_inds : Tensor of torch.long, shape (N,)
        Only with ``return_inds``.  Ties go to the lowest index.

    Raises
    ------
    ValueError
        If some anchor has no negative (all samples share its label).

    Examples
    --------
    >>> import torch, torch_impl
    >>> d = torch.tensor([[0.0, 1.0, 3.0], [1.0, 0.0, 2.0], [3.0, 2.0, 0.0]])
    >>> ap, an = torch_impl.hard_example_mining(d, torch.tensor([0, 0, 1]))
    >>> ap, an
    (tensor([1., 1., 0.]), tensor([3., 2., 2.]))
    """
    fn = "hard_example_mining"
    _checks.check_square(fn, "dist_mat", dist_mat)
    _checks.check_labels(fn, labels, dist_mat.shape[0])
    # As int64: torch has few operations for uint16..uint64.  The cast is one
    # to one (uint64 wraps), so it keeps equal labels equal and others apart.
    labels = labels.to(dist_mat.device, torch.long)
    is_pos = labels.unsqueeze(0) == labels.unsqueeze(1)
    _checks.check_has_negative(fn, (~is_pos).any(dim=1))
    p_inds = _first_extreme(dist_mat, is_pos, largest=True)
    n_inds = _first_extreme(dist_mat, ~is_pos, largest=False)
    # Gather (not max/min) so each gradient goes to the chosen entry only.
    dist_ap = dist_mat.gather(1, p_inds.unsqueeze(1)).squeeze(1)
    dist_an = dist_mat.gather(1, n_inds.unsqueeze(1)).squeeze(1)
    if return_inds:
        return dist_ap, dist_an, p_inds, n_inds
    return dist_ap, dist_an
