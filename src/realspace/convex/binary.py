"""The exact weight-decay optimum of a scalar-output network (MSE or binary logistic loss).

The weight-decay problem

    J(theta) = (1/n) sum_k (f(x_k) - y_k)^2 + (lam/2) sum_i (c_i^2 + ||a_i||^2)

(biases and, in the restricted parametrization, the linear part w free) has its exact
global optimum over all widths in the convex reformulation of Pilanci & Ergen (ICML
2020). Rescaling (a, b, c) -> (t a, t b, c / t) leaves f unchanged, and minimizing the
penalty over t gives lam |c| ||a||; with u = |c| (a, b) a neuron is sign(c) rho(<u, x~>)
(x~ = (x, 1)) at cost lam ||u_a||. On the data, rho(X~ u) = D_j X~ u for the activation
pattern D_j = diag(1[X~ u >= 0]), a linear map under the cone constraint
(2 D_j - I) X~ u >= 0. Neurons of one pattern and one sign add up without raising the
cost (triangle inequality), so the problem over all widths is the group lasso

    min_{u_j, v_j in K_j, e, w}  (1/n) ||sum_j D_j X~ (u_j - v_j) + e + X w - y||^2
                                 + lam sum_j (||u_j,a|| + ||v_j,a||)

over the patterns j of the data (``patterns``), solved with cvxpy (``solvers``). The
binary logistic loss (labels y in {-1, +1}) gives the same program with
(1/n) sum_k log(1 + exp(-y_k f_k)) in place of the squared error (Pilanci & Ergen's
derivation holds for any convex loss: only the penalty and the patterns enter it). Its
value is the optimum at every width >= the solution's neuron count m (exact there) and a
lower bound below m; with sampled patterns it is attained by a network, an upper bound.

Every number here is float64. The math: docs/science.md#global-optimum-references.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..core.nets import ShallowNet
from ..core.targets import logistic_loss, mse, weight_decay_penalty
from .networks import balanced_network
from .patterns import activation_patterns, cone_matrix
from .solvers import PRUNE_LEVELS, solve_program

__all__ = ["ConvexOptimum", "convex_optimum", "free_part_separates"]


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
    G = cone_matrix(X, patterns)

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


def _network(U, V, e, w, d, rel_tol: float = 1e-7) -> ShallowNet:
    """The balanced scalar-output network of the solution U, V (P, d + 1), bias e: the
    one-output case of ``networks.balanced_network``."""
    a, b, c, e = balanced_network([U], [V], [e], d, rel_tol)
    return ShallowNet(a, b, c[:, 0], float(e[0]), None if w is None else np.asarray(w))
