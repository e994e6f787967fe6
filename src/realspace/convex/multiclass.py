"""Certified bounds on the weight-decay optimum of the multiclass cross-entropy (m >= 2).

The problem over all widths: a vector-output network f(x) = sum_i c_i rho(<a_i, x> + b_i)
+ W x + e (c_i, e in R^m, W in R^{m x d}; W = 0 unrestricted), outputs F (n, m) on the
data X (n, d), labels y_k in {0, ..., m - 1}, and

    J(theta) = CE(F) + (lam/2) sum_i (||c_i||^2 + ||a_i||^2),
    CE(F) = (1/n) sum_k (log sum_l exp F_kl - F_{k, y_k})

(biases, W and e free). Rescaling neurons makes the penalty lam sum_i ||c_i|| ||a_i||;
with u_i = ||c_i|| (a_i, b_i) and the unit c^_i = c_i / ||c_i||, neuron i contributes
rho(X~ u_i) c^_i^T to F at cost lam ||u_i,a|| (X~ = [X, 1]; the bias coordinate is not
penalized). For m >= 2 the problem over all widths is CE(F) + lam g(F) with g the gauge
of the atoms rho(X~ u) c^T, ||u_a|| <= 1, ||c|| <= 1: not a group lasso. Two convex
programs bracket it, each over per-column group-lasso variables: for pattern j (D_j, cone
K_j: (2 D_j - I) X~ u >= 0) and class k, u_jk, v_jk in K_j with

    F_k = sum_j D_j X~ (u_jk - v_jk) + X W_k + e_k,    R_k = sum_j ||u_jk,a|| + ||v_jk,a||.

Softmax is shift invariant: F and F + t 1^T (t in R^n) give the same CE. So replacing
every c_i by its centered part P c_i (P = I - 1 1^T / m) keeps CE and cannot raise the
penalty: the infimum is the same over networks with every c_i orthogonal to 1, and the
bounds below need to hold only for those.

Lower bound (``convex_relaxation_lower_bound``): min CE(F) + lam max(sqrt(m / (m - 1))
max_k R_k, (1/kappa_m) sum_k R_k), kappa_m = 2 sqrt(floor(m/2) ceil(m/2) / m) (<= sqrt m).
For a centered network, column k of F is the scalar network with output weights c_ik,
and |c_ik| = |<c_i, P e_k>| <= sqrt((m - 1) / m) ||c_i||, sum_k |c_ik| <= kappa_m ||c_i||
(the largest l1 norm of a unit vector orthogonal to 1): its neurons, grouped by pattern
and sign (triangle inequality), give a feasible point with both terms of the max at most
sum_i ||u_i,a||. So the program's value is at most J of every network of every width. It
needs every pattern of the data: with sampled patterns a network's neuron may have a
pattern the program lacks, and no lower bound follows. At m = 2 it is exact (the binary
logistic optimum at lam / sqrt 2).

Upper bound (``convex_separable_upper_bound``): min CE(F) + lam sum_k R_k, attained by
the network with one neuron per nonzero (pattern, class, sign) group, c = +-||u_a||^(1/2)
e_k, (a, b) = u / ||u_a||^(1/2) (balanced: cost lam ||u_a||). Merging the neurons of one
hyperplane across classes into one vector c (cost lam ||gamma||_2 <= lam ||gamma||_1) and
centering c can only lower J; the bound reported is J of that network, evaluated
directly. Any set of patterns gives a network, so sampled patterns keep it.

Neither bound assumes a unique F, and the programs fix e_0 = 0 and W_0 = 0 (adding one
affine function to every class changes neither CE nor the penalty).

Every number here is float64. The math: docs/science.md#global-optimum-references.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.nets import ShallowNet
from ..core.targets import weight_decay_penalty
from .networks import balanced_network
from .patterns import activation_patterns, cone_matrix
from .solvers import LADDER, PRUNE_LEVELS, SCS_SECONDS_MULTICLASS, solve_program

__all__ = [
    "MulticlassBounds",
    "cross_entropy",
    "multiclass_bounds",
    "free_part_recedes",
]


def cross_entropy(net: ShallowNet, x, labels) -> float:
    """(1/n) sum_k (log sum_l exp f_l(x_k) - f_{y_k}(x_k)) for a vector-output network on
    x (n, d), labels (n,) in {0, ..., m - 1} (floats or integers)."""
    from scipy.special import logsumexp

    F = net(x)
    y = _labels(labels, F.shape[1], len(F))
    return float(np.mean(logsumexp(F, axis=1) - F[np.arange(len(F)), y]))


def _labels(labels, m: int, n: int) -> np.ndarray:
    y = np.asarray(labels, dtype=np.float64)
    if y.shape != (n,) or np.any(y != np.round(y)) or y.min() < 0 or y.max() > m - 1:
        raise ValueError(f"labels must be (n,) = ({n},) class indices in 0..{m - 1}")
    return y.astype(np.int64)


def free_part_recedes(X: np.ndarray, labels, m: int, restricted: bool) -> bool:
    """Whether the unpenalized part has a direction that lowers CE without end: (W, e)
    (W = 0 unrestricted) with every margin (W_{y_k} - W_l) x_k + e_{y_k} - e_l >= 0
    (k a point, l != y_k) and some margin > 0. Along t (W, e), t -> inf, CE then
    decreases strictly at no cost, so the objective has no minimizer: a class without
    points (unrestricted), or restricted, a class that a line cuts from the others (all
    classes separable: the infimum is 0). Decided by an LP: the largest sum of margins
    with all margins >= 0 and (W, e) in [-1, 1]^(m (d + 1))."""
    from scipy.optimize import linprog

    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    y = _labels(labels, m, n)
    Xt = np.hstack([X, np.ones((n, 1))])
    if not restricted:
        Xt = Xt[:, d:]  # e only
    q = Xt.shape[1]
    rows = []
    for k in range(n):
        for c in range(m):
            if c != y[k]:
                r = np.zeros((m, q))
                r[y[k]], r[c] = Xt[k], -Xt[k]  # the margin of point k over class c
                rows.append(r.ravel())
    M = np.array(rows)
    res = linprog(-M.sum(axis=0), A_ub=-M, b_ub=np.zeros(len(M)), bounds=(-1, 1))
    return bool(res.status == 0 and -res.fun > 1e-9 * (1 + np.abs(M).sum()))


@dataclass(frozen=True)
class MulticlassBounds:
    """Both bounds for one data set, lam and parametrization.

    lower: the relaxation's value (a lower bound on the optimum at every width), None
    when the patterns were sampled; upper: J of ``net`` evaluated directly (an objective
    attained by a network of ``width`` neurons, so an upper bound on the optimum at every
    width >= ``width``); separable_value: the upper program's solver value (J of the
    per-class network ``separable_net``, one class per neuron, equal to it up to solver
    tolerance; upper <= it); net: ``separable_net`` with the neurons of one hyperplane
    merged across classes (the same realization);
    exact: patterns enumerated exactly; seconds: time spent in the two solves.
    """

    lower: float | None
    lower_slack: float | None
    upper: float
    separable_value: float
    separable_net: ShallowNet
    net: ShallowNet
    width: int
    exact: bool
    patterns: int
    lam: float
    restricted: bool
    seconds: float

    LOWER_LABEL = "convex_relaxation_lower_bound"
    UPPER_LABEL = "convex_separable_upper_bound"


def multiclass_bounds(
    x: np.ndarray,
    labels,
    lam: float,
    restricted: bool = False,
    m: int | None = None,
    samples: int = 2000,
    patterns: np.ndarray | None = None,
    solver: str | None = None,
    rounds: int = 4,
    patterns_exact: bool = False,
) -> MulticlassBounds:
    """Lower and upper bounds on min_theta CE + weight decay over all widths (see the
    module docstring) on data x (n, d), labels (n,) in 0..m-1 (m defaults to the largest
    label + 1), lam > 0.

    Patterns (``activation_patterns``) are exact in d = 1 and for small 2-D data sets,
    else ``samples`` random hyperplanes; then only the upper bound is returned (lower is
    None; so are given ``patterns`` unless ``patterns_exact``). ``rounds``: solves over
    the class weightings of the relaxation (``_relaxation``; each is a lower bound, the
    best is kept). Raises ValueError when the objective has no minimizer
    (``free_part_recedes``).
    """
    import time

    import cvxpy as cp
    import scipy.sparse as sp

    X = np.asarray(x, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"need x (n, d), got {X.shape}")
    n, d = X.shape
    m = int(np.max(labels)) + 1 if m is None else int(m)
    if m < 2:
        raise ValueError(f"need m >= 2 classes, got {m}")
    y = _labels(labels, m, n)
    if not lam > 0:
        raise ValueError(f"the bounds need weight decay lam > 0, got {lam}")
    if free_part_recedes(X, y, m, restricted):
        raise ValueError(
            "the unpenalized part (e, and W when restricted) lowers the cross-entropy "
            "without end: the objective's infimum is not attained"
        )
    # given patterns count as all of them only when the caller says so: a subset gives
    # no lower bound
    exact = patterns_exact
    if patterns is None:
        patterns, exact = activation_patterns(X, samples=samples)
    P = len(patterns)
    Xt = np.hstack([X, np.ones((n, 1))])
    # A @ vec(U) = sum_j D_j X~ u_j, vec row-major over (P, d + 1)
    A = sp.csr_matrix(
        (patterns[:, :, None] * Xt[None, :, :]).transpose(1, 0, 2).reshape(n, P * (d + 1))
    )
    G = cone_matrix(X, patterns)
    Y = np.eye(m)[y]  # one-hot (n, m)

    U = [cp.Variable((P, d + 1)) for _ in range(m)]
    V = [cp.Variable((P, d + 1)) for _ in range(m)]
    # e_0 = 0 and W_0 = 0: shifting every class by one affine function changes nothing
    e = cp.Variable(m - 1)
    W = cp.Variable((m - 1, d)) if restricted else None
    cols = []
    for k in range(m):
        col = A @ cp.vec(U[k], order="C") - A @ cp.vec(V[k], order="C")
        if k:
            col = col + e[k - 1]
            if W is not None:
                col = col + X @ W[k - 1]
        cols.append(col)
    F = cp.vstack(cols).T  # (n, m)
    fit = (cp.sum(cp.log_sum_exp(F, axis=1)) - cp.sum(cp.multiply(Y, F))) / n
    R = cp.hstack(
        [
            cp.sum(cp.norm(U[k][:, :d], 2, axis=1) + cp.norm(V[k][:, :d], 2, axis=1))
            for k in range(m)
        ]
    )
    cones = [G @ cp.vec(Z, order="C") >= 0 for Z in U + V]
    # one compiled program for every class weighting: penalty sum_k w_k R_k
    weights = cp.Parameter(m, nonneg=True)
    problem = cp.Problem(cp.Minimize(fit + lam * (weights @ R)), cones)

    def solve(w):
        weights.value = np.asarray(w, dtype=np.float64)
        solve_program(problem, solver, SCS_SECONDS_MULTICLASS, LADDER)
        return float(problem.value), np.asarray(R.value, dtype=np.float64)

    t0 = time.perf_counter()
    lower, lower_gap = None, None
    if exact:
        lower, lower_gap = _relaxation(solve, m, lam, rounds)
    separable, _ = solve(np.ones(m))
    seconds = time.perf_counter() - t0

    e_full = np.concatenate([[0.0], e.value])
    W_full = None if W is None else np.vstack([np.zeros((1, d)), W.value])
    net = ShallowNet(
        *balanced_network([u.value for u in U], [v.value for v in V], e_full, d), W_full
    )

    def J(net):
        return cross_entropy(net, X, y) + weight_decay_penalty(net, lam)

    # the sparsest pruning that stays within tolerance of the solver's value
    # (interior-point solutions carry many tiny neurons)
    tol = 1e-9 + 1e-7 * abs(separable)
    gamma = np.sum(net.c**2, axis=1)
    top = gamma.max(initial=0.0)  # 0 where the weight decay leaves no neuron at all
    cuts = (np.inf, *(level * top for level in PRUNE_LEVELS), -np.inf)  # none ... every one
    for cut in cuts:
        keep = gamma > cut
        pruned = ShallowNet(net.a[keep], net.b[keep], net.c[keep], net.e, net.w)
        if J(pruned) <= separable + tol or cut == -np.inf:
            net = pruned
            break
    merged = _merge_classes(net, center=True)
    return MulticlassBounds(
        lower=lower,
        lower_slack=lower_gap,
        upper=J(merged),
        separable_value=separable,
        separable_net=net,
        net=merged,
        width=merged.width,
        exact=exact,
        patterns=P,
        lam=float(lam),
        restricted=restricted,
        seconds=seconds,
    )


def _vertices(m: int) -> np.ndarray:
    """The weightings w (rows, (m + 1, m)) whose max_w sum_k w_k R_k the relaxation
    charges: sqrt(m / (m - 1)) e_k and (1 / kappa_m) 1, kappa_m = 2 sqrt(floor(m/2)
    ceil(m/2) / m) the largest ||c||_1 of a unit c orthogonal to 1 (p entries +a and
    m - p entries -b with p a = (m - p) b, p = floor(m/2)); kappa_m <= sqrt(m)."""
    p = m // 2
    kappa = 2.0 * np.sqrt(p * (m - p) / m)
    return np.vstack([np.sqrt(m / (m - 1)) * np.eye(m), np.full((1, m), 1.0 / kappa)])


def _relaxation(solve, m: int, lam: float, rounds: int) -> tuple[float, float]:
    """The relaxation min_F CE(F) + lam max_{s in S} <s, R>, from below, S the rows of
    ``_vertices(m)`` (module docstring).

    The max is max_{w in W} sum_k w_k R_k over W = conv(S), so
    (Sion's minimax theorem: convex in the variables, linear in w, W compact) the value is
    max_{w in W} L(w) with L(w) = min CE(F) + lam sum_k w_k R_k, and every L(w) is itself
    a lower bound (it is at most the max over W inside). L is concave with supergradient
    lam R(w) (the R_k of L(w)'s solution), so L(w') <= L(w) + lam <R(w), w' - w>: the
    relaxation is at most L(w) + lam (max_{vertex s} <R, s> - <R, w>) (the returned slack).

    Start at w = (1/kappa_m) 1 (the sum bound; when no vertex charges more than it this
    is already the relaxation's value), then ``rounds - 1`` steps towards
    the best vertex, from the best w so far, the step quartered after each one that does
    not improve (full steps to a vertex e_k would leave the other columns free, where
    CE's infimum is not attained). ``solve(w)`` returns (L(w), R at its solution).
    Returns (the best L(w) found, the most by which it can lie below the relaxation).
    """
    vertices = _vertices(m)
    w = vertices[-1].copy()
    best, R = solve(w)
    ceiling = best + lam * ((vertices @ R).max() - w @ R)
    step = 0.25
    for _ in range(rounds - 1):
        if ceiling - best <= 1e-9 * (1 + abs(best)):
            break
        trial = w + step * (vertices[np.argmax(vertices @ R)] - w)
        value, R_trial = solve(trial)
        ceiling = min(ceiling, value + lam * ((vertices @ R_trial).max() - trial @ R_trial))
        if value > best:
            w, best, R = trial, value, R_trial
        else:
            step /= 4
    return best, max(ceiling - best, 0.0)


def _merge_classes(net: ShallowNet, center: bool = False) -> ShallowNet:
    """One neuron per hyperplane and orientation: gamma_i = c_i ||a_i|| (in R^m) of the
    neurons with the same unit (a_i, b_i) / ||a_i|| add up, and the sum is rebalanced,
    (a, b) = unit ||gamma||^(1/2), c = gamma / ||gamma||^(1/2). The realization is unchanged
    and the cost lam ||sum gamma||_2 is at most lam sum ||gamma_i||_2 (triangle inequality).

    ``center``: also replace gamma by its part orthogonal to 1 (gamma - mean(gamma) 1):
    the outputs move by a multiple of 1 at each point, which leaves CE unchanged, and the
    cost cannot rise (a projection); neurons left with gamma = 0 go."""
    norms = np.linalg.norm(net.a, axis=1)
    units = np.column_stack([net.a, net.b]) / norms[:, None]
    gamma = net.c * norms[:, None]
    keys, index = np.unique(np.round(units, 7), axis=0, return_inverse=True)
    index = index.reshape(-1)
    total = np.zeros((len(keys), net.outputs))
    np.add.at(total, index, gamma)
    if center:
        total -= total.mean(axis=1, keepdims=True)
    first = np.array([np.flatnonzero(index == g)[0] for g in range(len(keys))], dtype=int)
    root = np.sqrt(np.linalg.norm(total, axis=1))
    keep = root > 1e-12 * root.max(initial=0)
    unit, root = units[first[keep]], root[keep]
    return ShallowNet(
        unit[:, :-1] * root[:, None], unit[:, -1] * root, total[keep] / root[:, None], net.e, net.w
    )
