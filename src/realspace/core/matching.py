"""Exact bottleneck assignment: min over permutations pi of max_i cost[i, pi(i)].

The Hungarian algorithm minimizes a sum, which only bounds the bottleneck value
from above. The bottleneck value is one of the cost entries; the smallest entry t
for which the bipartite graph {(i, j): cost[i, j] <= t} has a perfect matching is
it, and feasibility is monotone in t, so a binary search over the sorted entries
with a maximum-matching test (Hopcroft-Karp) solves it exactly.

With orientation flips (the fibre distance), each column j may also be taken flipped,
at other costs, and the flips together move an affine difference that enters the max:

    min over S, pi of max( max_i cost[S_pi(i)][i, pi(i)], |base + sum_{j in S} shift_j|_inf )

The affine term couples all flips, so no assignment algorithm alone solves it:
``enumerate_flips`` tries every flip set, ``milp_flips`` solves it as a mixed-integer
linear program (exact, because the sup norm is linear in the flips).

The math: docs/science.md#distances.
"""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "bottleneck_assignment",
    "FlipAssignment",
    "flip_objective",
    "enumerate_flips",
    "milp_flips",
]


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


# ---------------------------------------------------------------------------
# Bottleneck assignment with orientation flips (the fibre distance's minimization)
# ---------------------------------------------------------------------------
# HiGHS's defaults accept a relative gap of 1e-4 and an absolute one of 1e-6; the problem is
# scaled to values in [0, 1], so these make its optimum the optimum to about 1e-9 of the
# upper bound. The options beyond scipy's own are handed to HiGHS verbatim.
_HIGHS_OPTIONS = {
    "mip_rel_gap": 0.0,
    "mip_abs_gap": 0.0,
    "mip_feasibility_tolerance": 1e-9,
    "primal_feasibility_tolerance": 1e-9,
}


# the cap of milp_flips grows by this factor: a program just above the minimum is small,
# one far above it can be large, and a program without solution is cheap to refute
_CAP_GROWTH = 1.5


@dataclass(frozen=True)
class FlipAssignment:
    """A solution of ``min over flips S, permutations pi of max(bottleneck, affine)``.

    value: its objective; flips (n,) bool: the flipped columns; perm (n,): row i is
    assigned to column perm[i]; optimal: whether no other (S, pi) is better (to the
    method's tolerance); method: how it was found.
    """

    value: float
    flips: np.ndarray
    perm: np.ndarray
    optimal: bool
    method: str


def flip_objective(cost, shift, base, flips) -> tuple[float, np.ndarray]:
    """max(min over pi of max_i cost[S_j][i, pi(i)], |base + sum_{j in S} shift_j|_inf) for
    one flip set S (``flips``), exactly (bottleneck assignment), with its permutation.

    cost (2, n, n): cost[0][i, j] matches row i to column j as it is, cost[1] flipped;
    shift (n, k): what flipping column j adds to the affine difference ``base`` (k,).
    """
    flips = np.asarray(flips, dtype=bool)
    affine = float(np.abs(base + shift[flips].sum(axis=0)).max()) if base.size else 0.0
    return bottleneck_assignment(np.where(flips[None, :], cost[1], cost[0]), floor=affine)


def enumerate_flips(cost, shift, base, flippable) -> FlipAssignment:
    """The exact minimum by trying all 2^k flip sets of the ``flippable`` columns (k of
    them), skipping those whose affine difference alone reaches the best value so far."""
    live = np.flatnonzero(flippable)
    best, best_flips, best_perm = np.inf, np.zeros(cost.shape[2], bool), None
    for bits in itertools.product([False, True], repeat=live.size):
        flips = np.zeros(cost.shape[2], bool)
        flips[live[np.array(bits, dtype=bool)]] = True
        if base.size and float(np.abs(base + shift[flips].sum(axis=0)).max()) >= best:
            continue
        value, perm = flip_objective(cost, shift, base, flips)
        if value < best:
            best, best_flips, best_perm = value, flips, perm
    return FlipAssignment(best, best_flips, best_perm, True, f"all {2**live.size} flip sets")


def milp_flips(
    cost, shift, base, flippable, incumbent: FlipAssignment, time_limit: float = 60.0
) -> FlipAssignment:
    """The exact minimum as mixed-integer linear programs (scipy's milp, HiGHS).

    Binary x[s, i, j] = 1 when row i takes column j with orientation s (s = 1 only for
    ``flippable`` j), t the objective, and a cap tau:

        min t  s.t.  sum_{s,j} x[s,i,j] = 1,  sum_{s,i} x[s,i,j] = 1,
                     cost[s][i, j] x[s,i,j] <= t,   x[s,i,j] = 0 where cost[s][i, j] > tau,
                     -t <= base_k + sum_{i,j} shift[j, k] x[1,i,j] <= t  (every k),
                     lower <= t <= tau.

    The sup norm makes the affine term linear in the flips, so each program is exact. A
    program with a solution found the global minimum: a better (S, pi) would have every
    cost below t <= tau, so it is in the program. Without one, every (S, pi) exceeds tau,
    and tau grows by ``_CAP_GROWTH`` (1.5), from that factor times the flip-free lower
    bound (bottleneck of min(cost[0], cost[1])) to the ``incumbent``'s value, where a
    solution exists. Small
    caps keep the programs small. The flip set found is scored again exactly by
    ``flip_objective``. ``optimal`` is False (the incumbent or the best found, whichever
    is lower) when HiGHS stops at ``time_limit`` seconds in all or fails.
    """
    upper = incumbent.value
    lower, _ = bottleneck_assignment(np.minimum(cost[0], cost[1]))
    if upper <= lower:  # the incumbent attains a lower bound
        return replace(incumbent, optimal=True)
    deadline = time.monotonic() + time_limit
    tau = _CAP_GROWTH * lower if lower > 0 else upper / 1024
    while True:
        tau = min(tau, upper)
        flips, status = _capped_program(cost, shift, base, flippable, lower, tau, deadline)
        if flips is None and status == "infeasible" and tau < upper:
            tau *= _CAP_GROWTH
            continue
        if flips is None:
            return replace(incumbent, optimal=False)
        value, perm = flip_objective(cost, shift, base, flips)
        if value > upper:
            return replace(incumbent, optimal=False)
        return FlipAssignment(value, flips, perm, status == "optimal", "MILP (HiGHS)")


def _capped_program(cost, shift, base, flippable, lower, tau, deadline):
    """(flips, status) of the program of ``milp_flips`` at cap ``tau`` (values scaled by
    tau to [0, 1]); flips None when it found no solution. status: optimal, infeasible or
    stopped."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix

    n = cost.shape[2]
    allowed = cost <= tau
    allowed[1][:, ~np.asarray(flippable, bool)] = False
    s, i, j = np.nonzero(allowed)
    m = s.size  # variables: x (m), then t
    scaled = cost[s, i, j] / tau
    flipped = np.flatnonzero(s == 1)
    k = base.size
    # rows: n row sums, n column sums, the pairs above the lower bound, 2k affine bounds
    heavy = np.flatnonzero(scaled > lower / tau)
    r_edge = 2 * n + np.arange(heavy.size)
    r_aff = 2 * n + heavy.size
    rows = [i, n + j, r_edge, r_edge]
    cols = [np.arange(m), np.arange(m), heavy, np.full(heavy.size, m)]
    vals = [np.ones(m), np.ones(m), scaled[heavy], -np.ones(heavy.size)]
    for q in range(k):
        for side in (0, 1):  # base + sum shift x - t <= 0, base + sum shift x + t >= 0
            r = r_aff + 2 * q + side
            rows += [np.full(flipped.size, r), [r]]
            cols += [flipped, [m]]
            vals += [shift[j[flipped], q] / tau, [1.0 if side else -1.0]]
    A = csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(r_aff + 2 * k, m + 1),
    )
    b = base / tau
    lo = np.concatenate(
        [np.ones(2 * n), np.full(heavy.size, -np.inf), np.ravel([[-np.inf, -bq] for bq in b])]
    )
    hi = np.concatenate(
        [np.ones(2 * n), np.zeros(heavy.size), np.ravel([[-bq, np.inf] for bq in b])]
    )
    objective = np.zeros(m + 1)
    objective[m] = 1.0
    integrality = np.ones(m + 1)
    integrality[m] = 0
    # 1e-9 above the cap: the incumbent's own affine sum, rounded another way, must fit
    bounds = Bounds(np.append(np.zeros(m), lower / tau), np.append(np.ones(m), 1.0 + 1e-9))
    options = {**_HIGHS_OPTIONS, "time_limit": max(deadline - time.monotonic(), 0.1)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unrecognized options", RuntimeWarning)
        res = milp(
            objective,
            constraints=LinearConstraint(A, lo, hi),
            integrality=integrality,
            bounds=bounds,
            options=options,
        )
    status = {0: "optimal", 2: "infeasible"}.get(res.status, "stopped")
    if res.x is None:
        return None, status
    flips = np.zeros(n, bool)
    flips[j[(res.x[:m] > 0.5) & (s == 1)]] = True
    return flips, status
