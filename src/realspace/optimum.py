"""Global-optimum references L* for the near-optimality gap.

Three references, the best that applies to a cell (docs/science.md, "Statistics"):

- realizable teachers without weight decay or label noise: L* = 0 once the student
  width reaches the teacher width;
- the weight-decay problem

      J(theta) = (1/n) sum_k (f(x_k) - y_k)^2 + (lam/2) sum_i (c_i^2 + ||a_i||^2)

  (biases and, in the restricted parametrization, the linear part w free): its exact
  global optimum over all widths from the convex reformulation of Pilanci & Ergen (ICML
  2020). Rescaling (a, b, c) -> (t a, t b, c / t) leaves f unchanged, and minimizing the
  penalty over t gives lam |c| ||a||; with u = |c| (a, b) a neuron is sign(c) rho(<u, x~>)
  (x~ = (x, 1)) at cost lam ||u_a||. On the data, rho(X~ u) = D_j X~ u for the activation
  pattern D_j = diag(1[X~ u >= 0]), a linear map under the cone constraint
  (2 D_j - I) X~ u >= 0. Neurons of one pattern and one sign add up without raising the
  cost (triangle inequality), so the problem over all widths is the group lasso

      min_{u_j, v_j in K_j, e, w}  (1/n) ||sum_j D_j X~ (u_j - v_j) + e + X w - y||^2
                                   + lam sum_j (||u_j,a|| + ||v_j,a||)

  over the patterns j of the data, solved with cvxpy. The binary logistic loss
  (labels y in {-1, +1}) gives the same program with (1/n) sum_k log(1 + exp(-y_k f_k))
  in place of the squared error (Pilanci & Ergen's derivation holds for any convex loss:
  only the penalty and the patterns enter it). Its value is the optimum at every
  width >= the solution's neuron count m (exact there) and a lower bound below m. The
  patterns are enumerated exactly for d = 1 and small 2-D data sets; above that they are
  sampled, which gives a value attained by a network, an upper bound on the optimum;
- otherwise the best loss observed in the cell (made in ``realspace.stats``).

Every number here is float64.

Why one module of about 300 lines: the reformulation, the pattern enumeration it rests on
and the network rebuilt from its solution (whose objective is checked against the
solver's) are one derivation; split, each part would need the others' conventions.

The math: docs/science.md#global-optimum-references.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from .nets import ShallowNet
from .targets import logistic_loss, mse, weight_decay_penalty

__all__ = [
    "ConvexOptimum",
    "activation_patterns",
    "convex_optimum",
    "reference_optima",
    "free_part_separates",
    "EXACT_2D_MAX_POINTS",
    "solve_program",
]

# the pruning's cuts on c^2, relative to the largest: tried from the sparsest on
PRUNE_LEVELS = (1e-3, 1e-4, 1e-5, 1e-6)
EXACT_2D_MAX_POINTS = 64  # exact pattern enumeration in d = 2 costs O(n^3) candidates


def _masks_from_projections(proj: np.ndarray) -> np.ndarray:
    """Every strict threshold dichotomy {k: proj_k > t} of each row of ``proj`` (R, n)."""
    out = []
    for p in proj:
        order = np.argsort(p, kind="stable")
        v = p[order]
        step = np.diff(v) > 1e-12 * (1 + np.abs(v[1:]))  # equal projections share a level
        level = np.empty(len(p), int)
        level[order] = np.concatenate([[0], np.cumsum(step)])
        out.append(level[None, :] > np.arange(-1, level.max())[:, None])
    return np.concatenate(out)


def activation_patterns(
    X: np.ndarray, max_exact_2d: int = EXACT_2D_MAX_POINTS, samples: int = 2000, seed: int = 0
) -> tuple[np.ndarray, bool]:
    """The distinct non-empty activation patterns 1[<a, x_k> + b > 0] of the data X (n, d).

    Returns (patterns (P, n) bool, exact). d = 1: the thresholds between sorted points in
    both directions (2n - 1 patterns). d = 2 with n <= ``max_exact_2d``: exact, because the
    order of the projections <a, x_k> changes only at the critical directions orthogonal
    to some x_i - x_j; one direction inside each arc between them, with every threshold,
    yields every strict dichotomy. Otherwise ``samples`` random hyperplanes (not exact).
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    if d == 1:
        dirs, exact = np.array([[1.0], [-1.0]]), True
    elif d == 2 and n <= max_exact_2d:
        diff = X[:, None, :] - X[None, :, :]
        iu = np.triu_indices(n, 1)
        dv = diff[iu]
        dv = dv[np.linalg.norm(dv, axis=1) > 0]
        crit = np.arctan2(dv[:, 1], dv[:, 0]) + np.pi / 2  # normal orthogonal to x_i - x_j
        crit = np.sort(np.mod(np.concatenate([crit, crit + np.pi]), 2 * np.pi))
        crit = np.unique(np.round(crit, 12))
        mids = (
            (crit + np.diff(np.concatenate([crit, [crit[0] + 2 * np.pi]])) / 2)
            if len(crit)
            else np.array([0.0])
        )
        dirs, exact = np.stack([np.cos(mids), np.sin(mids)], axis=1), True
    else:
        rng = np.random.default_rng(seed)
        dirs = rng.standard_normal((samples, d))
        proj = X @ dirs.T  # (n, S)
        t = proj[rng.integers(0, n, samples), np.arange(samples)] - 1e-9
        masks = (proj > t).T
        masks = np.concatenate([masks, np.ones((1, n), bool)])
        masks = np.unique(masks[masks.any(axis=1)], axis=0)
        return masks, False
    masks = _masks_from_projections(dirs @ X.T)
    masks = np.unique(masks[masks.any(axis=1)], axis=0)
    return masks, exact


@dataclass(frozen=True)
class ConvexOptimum:
    """The convex program's solution for one data set and lam.

    value: the optimal objective J* (solver value); attained: J of ``net`` evaluated
    directly (equal to ``value`` up to solver tolerance); width: neurons of ``net`` (m);
    exact: the patterns were enumerated exactly (else sampled: ``value`` is an upper
    bound on the optimum, attained by ``net``).
    """

    value: float
    attained: float
    net: ShallowNet
    width: int
    exact: bool
    patterns: int
    lam: float
    restricted: bool

    def reference(self, width: int) -> tuple[float, str]:
        """(L*, label) for a network of ``width`` neurons."""
        if not self.exact:
            return self.value, "convex_sampled_upper_bound"
        return self.value, ("convex_exact" if width >= self.width else "convex_lower_bound")


def _cone_rows(X: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose sign constraints imply the whole cone (2 D - I) X~ u >= 0.

    In d = 1 an affine function is >= 0 on a set iff it is at the set's extreme points,
    so two rows per side suffice; in d >= 2 every row is kept.
    """
    idx = np.arange(len(mask))
    if X.shape[1] == 1:
        x = X[:, 0]

        def ends(sel):
            sel = idx[sel]
            return sel[[np.argmin(x[sel]), np.argmax(x[sel])]] if len(sel) else sel

        return np.unique(ends(mask)), np.unique(ends(~mask))
    return idx[mask], idx[~mask]


def _hull_rows(X: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose sign constraints imply the whole cone (2 D - I) X~ u >= 0: an affine
    function is >= 0 on a finite set iff it is >= 0 on the vertices of its convex hull,
    so per side the hull's vertices suffice (all rows when the hull is degenerate). In the
    plane only: in d >= 3 a hull's size and cost grow fast with d, and every row is kept."""
    if X.shape[1] != 2:  # d = 1: the two ends; d >= 3: hulls grow costly, every row kept
        return _cone_rows(X, mask)
    from scipy.spatial import ConvexHull, QhullError

    idx = np.arange(len(mask))

    def vertices(sel):
        sel = idx[sel]
        if len(sel) <= X.shape[1] + 1:
            return sel
        try:
            return sel[ConvexHull(X[sel]).vertices]
        except QhullError:  # collinear (flat) sets: keep every row
            return sel

    return np.sort(vertices(mask)), np.sort(vertices(~mask))


def _cone_matrix(X: np.ndarray, patterns: np.ndarray):
    """Sparse G with G @ vec(U) >= 0 iff every row u_j of U (P, d + 1) lies in K_j."""
    import scipy.sparse as sp

    n, d = X.shape
    Xt = np.hstack([X, np.ones((n, 1))])
    rows, cols, vals, r = [], [], [], 0
    for j, mask in enumerate(patterns):
        on, off = _hull_rows(X, mask)
        for k, sign in [(k, 1.0) for k in on] + [(k, -1.0) for k in off]:
            rows += [r] * (d + 1)
            cols += list(range(j * (d + 1), (j + 1) * (d + 1)))
            vals += list(sign * Xt[k])
            r += 1
    return sp.csr_matrix((vals, (rows, cols)), shape=(r, len(patterns) * (d + 1)))


def free_part_separates(X: np.ndarray, y: np.ndarray, restricted: bool) -> bool:
    """Whether the unpenalized part of the network alone classifies labels y (n,) in
    {-1, +1} on X (n, d) without error: the constant e (one class only) or, restricted,
    the affine <w, x> + e (an LP: y_k (<w, x_k> + e) >= 1 for all k is feasible).

    Then the logistic loss tends to 0 along (t w, t e), t -> inf, at no penalty: the
    weight-decay objective has infimum 0, which no network attains.
    """
    from scipy.optimize import linprog

    y = np.asarray(y, dtype=np.float64)
    if np.all(y == y[0]):
        return True
    if not restricted:
        return False
    A = -y[:, None] * np.hstack([X, np.ones((len(y), 1))])
    res = linprog(np.zeros(X.shape[1] + 1), A_ub=A, b_ub=-np.ones(len(y)), bounds=(None, None))
    return res.status == 0


def convex_optimum(
    X: np.ndarray,
    y: np.ndarray,
    lam: float,
    restricted: bool = False,
    patterns: np.ndarray | None = None,
    solver: str | None = None,
    samples: int = 2000,
    loss: str = "mse",
) -> ConvexOptimum:
    """Exact global optimum of the weight-decay problem on data X (n, d), y (n,), lam > 0.

    ``loss``: "mse" (1/n) sum_k (f_k - y_k)^2, or "logistic" (1/n) sum_k log(1 +
    exp(-y_k f_k)) with labels y_k in {-1, +1}.

    ``restricted``: the network carries a free linear part w (the restricted
    parametrization); otherwise only the output bias e is free. Returns the optimum, a
    ShallowNet attaining it and the labels (see ``ConvexOptimum``).

    ``patterns`` (P, n) bool: the activation patterns to use instead of enumerating or
    sampling them. Nothing says they are all of them, so the value is labelled like a
    sampled one: attained by the network, an upper bound on the optimum.
    """
    import cvxpy as cp

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"need X (n, d) and y (n,), got {X.shape} and {y.shape}")
    if loss not in ("mse", "logistic"):
        raise ValueError(f"loss must be 'mse' or 'logistic', got {loss!r}")
    if loss == "logistic" and not np.all(np.abs(y) == 1):
        raise ValueError("the logistic loss needs labels in {-1, +1}")
    if loss == "logistic" and free_part_separates(X, y, restricted):
        raise ValueError(
            "the unpenalized part (e, and w when restricted) separates these labels: the "
            "infimum 0 of the logistic objective is not attained"
        )
    if not lam > 0:
        raise ValueError(f"the convex reformulation needs weight decay lam > 0, got {lam}")
    n, d = X.shape
    exact = False  # given patterns may be a subset: the program's value is an upper bound
    if patterns is None:
        patterns, exact = activation_patterns(X, samples=samples)
    P = len(patterns)
    Xt = np.hstack([X, np.ones((n, 1))])  # (n, d + 1)
    # A @ vec(U) = sum_j D_j X~ u_j, with vec(U) row-major over (P, d + 1)
    A = (patterns[:, :, None] * Xt[None, :, :]).transpose(1, 0, 2).reshape(n, P * (d + 1))
    G = _cone_matrix(X, patterns)

    U = cp.Variable((P, d + 1))
    V = cp.Variable((P, d + 1))
    e = cp.Variable()
    pred = A @ cp.vec(U, order="C") - A @ cp.vec(V, order="C") + e
    w = None
    if restricted:
        w = cp.Variable(d)
        pred = pred + X @ w
    norms = cp.norm(U[:, :d], 2, axis=1) + cp.norm(V[:, :d], 2, axis=1)
    if loss == "logistic":
        fit = cp.sum(cp.logistic(-cp.multiply(y, pred))) / n
    else:
        fit = cp.sum_squares(pred - y) / n
    objective = fit + lam * cp.sum(norms)
    constraints = [G @ cp.vec(U, order="C") >= 0, G @ cp.vec(V, order="C") >= 0]
    problem = cp.Problem(cp.Minimize(objective), constraints)
    solve_program(problem, solver)

    net = _network(U.value, V.value, float(e.value), None if w is None else w.value, d)

    data_loss = logistic_loss if loss == "logistic" else mse

    def J(net):
        return data_loss(net, X, y) + weight_decay_penalty(net, lam)

    # the sparsest pruning that still attains the value (interior-point solutions carry
    # many tiny neurons; the solution's width m is what decides where the value is exact)
    attained, tol = J(net), 1e-9 + 1e-7 * abs(problem.value)
    gamma = net.c**2
    top = gamma.max(initial=0.0)  # 0 where the weight decay leaves no neuron at all
    for cut in (np.inf, *(level * top for level in PRUNE_LEVELS)):  # inf: no neuron at all
        keep = gamma > cut
        pruned = replace(net, a=net.a[keep], b=net.b[keep], c=net.c[keep])
        if J(pruned) <= problem.value + tol:
            net, attained = pruned, J(pruned)
            break
    return ConvexOptimum(
        value=float(problem.value),
        attained=float(attained),
        net=net,
        width=net.width,
        exact=exact,
        patterns=P,
        lam=float(lam),
        restricted=restricted,
    )


# SCS's residual tolerance where it stands in for the interior-point solver: the value is
# then accurate to about 1e-6 relative, two orders below the default gap eps 1e-4
SCS_EPS = 1e-7
# ... and its time limit: a program it cannot finish in this time gives no reference
SCS_SECONDS = 300.0


def solve_program(problem, solver: str | None = None, seconds: float = SCS_SECONDS) -> None:
    """Solve a cvxpy ``problem`` in place to an accurate optimum, or raise RuntimeError.

    With ``solver`` given: that solver, and "optimal" or "optimal_inaccurate" is accepted
    (the caller chose). By default: Clarabel (interior point), accepted only when it
    reports "optimal"; otherwise SCS (first order, residuals ``SCS_EPS``), accepted only
    when optimal (within ``seconds``). Why: on separable labels with small weight decay the logistic
    program's optimum has large weights and Clarabel can stop short, failing or reporting
    an inaccurate solution. Measured on 36 points in d = 2 with a cone row per point: its
    inaccurate values were 1.2e-5 (a teacher's labels, lam = 1e-2) and 9.3e-4 (two
    spirals, lam = 1e-3) above SCS's, more than trained networks then beat them by (with
    the hull's rows, ``_cone_matrix``, it solves both; a teacher at lam = 1e-3 still fails).
    """
    from cvxpy.error import SolverError

    if solver is not None:
        problem.solve(solver=solver)
        ok = ("optimal", "optimal_inaccurate")
    else:
        try:
            solve_clarabel(problem)
        except SolverError:
            pass
        ok = ("optimal",)
        if problem.status not in ok:
            solve_scs(problem, seconds)
    if problem.status not in ok:
        raise RuntimeError(f"convex program ended with status {problem.status}")


def solve_clarabel(problem, **opts) -> None:
    """Clarabel (interior point) with ``opts``, whose "optimal_inaccurate" the callers
    refuse and hand to SCS: cvxpy's warning about it would only mislead, so it is hidden."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Solution may be inaccurate")
        problem.solve(solver="CLARABEL", **opts)


def solve_scs(problem, seconds: float) -> None:
    """SCS at residuals ``SCS_EPS`` within ``seconds``: the fallback of every program here."""
    problem.solve(
        solver="SCS",
        eps_abs=SCS_EPS,
        eps_rel=SCS_EPS,
        max_iters=10_000_000,
        time_limit_secs=seconds,
    )


def _network(U, V, e, w, d, rel_tol: float = 1e-7) -> ShallowNet:
    """The balanced network of the convex solution.

    Each u becomes the neuron +-rho(<u, x~>) = c rho(<a, x> + b) with (a, b) = u / sqrt||u_a||
    and c = +-sqrt||u_a|| (balanced, so (lam/2)(c^2 + ||a||^2) = lam ||u_a||). Interior-point
    solutions spread one neuron over neighbouring patterns (a kink on a data point is
    feasible for both sides) and leave ~1e-9 entries elsewhere: neurons with the same
    hyperplane and orientation are merged (gammas add: the realization is unchanged, the
    cost cannot rise), and neurons below ``rel_tol`` of the largest are dropped. Neurons
    with u_a = 0 are constants on the data (rho(u_b) = u_b >= 0) and go into e.
    """
    gammas: dict[tuple, float] = {}
    directions: dict[tuple, np.ndarray] = {}
    scale = max(np.abs(U).max(initial=0), np.abs(V).max(initial=0), 1e-300)
    for M, sign in ((U, 1.0), (V, -1.0)):
        for u in M:
            na = float(np.linalg.norm(u[:d]))
            if na > 1e-12 * scale:
                unit = u / na
                key = tuple(np.round(unit, 7))
                gammas[key] = gammas.get(key, 0.0) + sign * na
                directions.setdefault(key, unit)
            elif u[d] > 0:
                e += sign * u[d]
    top = max((abs(g) for g in gammas.values()), default=0.0)
    keep = [k for k, g in gammas.items() if abs(g) > rel_tol * top]
    a = np.array([directions[k][:d] * np.sqrt(abs(gammas[k])) for k in keep]).reshape(-1, d)
    b = np.array([directions[k][d] * np.sqrt(abs(gammas[k])) for k in keep])
    c = np.array([np.sign(gammas[k]) * np.sqrt(abs(gammas[k])) for k in keep])
    return ShallowNet(a, b, c, float(e), None if w is None else np.asarray(w))


def reference_optima(specs, samples: int = 2000) -> list[tuple[float, str]]:
    """(J*, label) for each RunSpec; (nan, "") where no certified reference applies.

    Labels: ``teacher_realizable`` (J* = 0: a noiseless teacher, no weight decay, student
    width >= teacher width), ``convex_exact`` / ``convex_lower_bound`` /
    ``convex_sampled_upper_bound`` (weight decay > 0 on sampled data, MSE or logistic
    loss, see ``ConvexOptimum.reference``). One convex program per distinct data set,
    loss, lam and parametrization. A classification target without weight decay has none:
    its infimum 0 is not attained. Cross-entropy (m >= 3 classes) with weight decay:
    ``convex_relaxation_lower_bound`` where the patterns are exact (a lower bound on the
    optimum at every width, never the optimum), else none (``realspace.optimum_multiclass``).
    """
    import hashlib

    from .problem import make_data

    solved: dict[str, ConvexOptimum] = {}
    out = []
    for spec in specs:
        realizable = spec.target in ("teacher", "gaussian") and not spec.noise
        if spec.weight_decay == 0:
            if realizable and spec.width >= spec.teacher_width:
                out.append((0.0, "teacher_realizable"))
            else:
                out.append((float("nan"), ""))
            continue
        if spec.loss == "cross_entropy":
            out.append(_multiclass_reference(spec, samples))
            continue
        if spec.loss not in ("mse", "logistic"):
            out.append((float("nan"), ""))
            continue
        x, y = make_data(spec)
        if spec.loss == "logistic" and free_part_separates(x, y, spec.has_linear):
            out.append((float("nan"), ""))  # infimum 0, not attained: no optimum
            continue
        h = hashlib.sha256(x.tobytes() + y.tobytes())
        h.update(repr((spec.weight_decay, spec.has_linear, spec.loss)).encode())
        key = h.hexdigest()
        if key not in solved:
            try:
                solved[key] = convex_optimum(
                    x, y, spec.weight_decay, spec.has_linear, samples=samples, loss=spec.loss
                )
            except RuntimeError:  # no solver reached an accurate optimum: no reference
                solved[key] = None
        out.append((float("nan"), "") if solved[key] is None else solved[key].reference(spec.width))
    return out


def _multiclass_reference(spec, samples: int) -> tuple[float, str]:
    """The relaxation's lower bound for a cross-entropy spec; sampled patterns give none
    (so their programs are not solved here)."""
    from .optimum_multiclass import MulticlassBounds, multiclass_references

    if not (spec.d == 1 or (spec.d == 2 and spec.n_samples <= EXACT_2D_MAX_POINTS)):
        return float("nan"), ""
    (bounds,) = multiclass_references([spec], samples)
    if bounds is None or bounds.lower is None:
        return float("nan"), ""
    return bounds.lower, MulticlassBounds.LOWER_LABEL
