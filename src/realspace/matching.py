"""Exact bottleneck assignment: min over permutations pi of max_i cost[i, pi(i)].

The Hungarian algorithm minimizes a sum, which only bounds the bottleneck value
from above. The bottleneck value is one of the cost entries; the smallest entry t
for which the bipartite graph {(i, j): cost[i, j] <= t} has a perfect matching is
it, and feasibility is monotone in t, so a binary search over the sorted entries
with a maximum-matching test (Hopcroft-Karp) solves it exactly.

The math: docs/science.md#distances.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bottleneck_assignment"]


def _perfect_matching(allowed: np.ndarray) -> np.ndarray | None:
    # scipy takes most of a second to import: loaded where used, so that `import realspace`
    # (and every CLI call) stays light
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    match = maximum_bipartite_matching(csr_matrix(allowed), perm_type="column")
    return None if np.any(match < 0) else match


def bottleneck_assignment(cost: np.ndarray, floor: float = -np.inf) -> tuple[float, np.ndarray]:
    """Solve the bottleneck assignment problem on a square cost matrix.

    Parameters
    ----------
    cost : (n, n) array of finite costs.
    floor : the caller only needs the value when it exceeds ``floor`` (for instance
        an affine-part difference that enters a max); thresholds below it are skipped
        and the returned value is max(floor, bottleneck).

    Returns
    -------
    (value, perm) with perm (n,) such that row i is assigned to column perm[i] and
    max_i cost[i, perm[i]] <= value, value minimal (or equal to ``floor``).
    """
    cost = np.asarray(cost, dtype=np.float64)
    n = cost.shape[0]
    if cost.ndim != 2 or cost.shape[1] != n:
        raise ValueError(f"cost must be a square matrix, got shape {cost.shape}")
    if n == 0:
        return max(floor, 0.0), np.zeros(0, dtype=int)
    # Every row and every column must be matched, so the value is at least the
    # largest row minimum and the largest column minimum.
    lower = max(cost.min(axis=1).max(), cost.min(axis=0).max(), floor)
    values = np.unique(cost[cost >= lower])
    if values.size == 0 or values[0] > lower:
        values = np.concatenate([[lower], values])
    lo, hi = 0, values.size - 1
    best = _perfect_matching(cost <= values[hi])
    while lo < hi:
        mid = (lo + hi) // 2
        match = _perfect_matching(cost <= values[mid])
        if match is None:
            lo = mid + 1
        else:
            hi, best = mid, match
    return float(values[hi]), best
