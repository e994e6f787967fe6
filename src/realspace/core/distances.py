"""Distances between realizations and between parametrizations.

- ``sobolev_distance``: d_W(f, g) = max(sup_Q |f - g|, max_j sup_Q |d_j f - d_j g|),
  the W^{1,inf}(Q) norm of the difference. Exact for d = 1; a lower-bound estimate
  for d >= 2.
- ``uniform_distance``: d_inf(f, g) = sup_Q |f - g| (same exactness).
- ``param_distance``: d_P = min over neuron permutations of the largest absolute
  parameter difference, affine parts included (exact bottleneck assignment).
- ``fibre_distance``: distance from Gamma (f, or its canonical form when f is not in
  Omega_N) to the parametrizations of g inside Omega_N: d_P minimized also over
  orientation flips of g's canonical neurons (exact by enumeration or a MILP up to
  64 live neurons, an upper bound above).

Every value is returned as a :class:`Distance`, a float that says whether it is
exact, a lower bound or an upper bound.

Vector outputs (m >= 2): d_W and d_inf are the largest of the m component distances
(each component a scalar network on the shared (a, b), so d = 1 stays exact); d_P and the
fibre distance stack (a_i, b_i, c_i) per neuron and compare (W, e) entry by entry, and a
flip moves the block c_i (a_i, b_i)^T into (W, e).

Why one module of about 420 lines: the two halves are the numerator and denominator of
every inverse-stability ratio r = d_P / d_W^alpha and share the ``Distance`` type and its
exactness labels; a reader checking a ratio's label needs both side by side.

The math: docs/science.md#distances.
"""

from __future__ import annotations

import itertools

import numpy as np

from .canonical import affine_shift, canonical_form
from .matching import (
    FlipAssignment,
    bottleneck_assignment,
    enumerate_flips,
    flip_objective,
    milp_flips,
)
from .nets import ShallowNet, check_domain
from .restricted import DEFAULT_TOL, in_restricted_set, live_neurons

__all__ = [
    "Distance",
    "sobolev_distance",
    "uniform_distance",
    "param_distance",
    "fibre_distance",
    "flip_neurons",
    "sup_norms_1d",
]


class Distance(float):
    """A distance value that carries its status.

    ``bound`` is ``"exact"``, ``"lower"`` (an estimate from below: the true value
    is at least this) or ``"upper"`` (a feasible value: the true one is at most
    this). ``method`` says how it was obtained. Arithmetic gives plain floats.
    """

    def __new__(cls, value: float, bound: str = "exact", method: str = ""):
        obj = super().__new__(cls, value)
        obj.bound = bound
        obj.method = method
        return obj

    @property
    def exact(self) -> bool:
        return self.bound == "exact"

    def __repr__(self) -> str:
        if self.exact:
            return float.__repr__(self)
        return f"{float.__repr__(self)} ({self.bound} bound: {self.method})"


def _same_dim(f: ShallowNet, g: ShallowNet) -> int:
    if f.dim != g.dim:
        raise ValueError(f"networks have different input dimensions: {f.dim} and {g.dim}")
    if f.outputs != g.outputs:
        raise ValueError(f"networks have different output counts: {f.outputs} and {g.outputs}")
    return f.dim


def _components(net: ShallowNet) -> list[ShallowNet]:
    """The m scalar networks f_k (c[:, k], e[k], W[k]) of a vector network, sharing (a, b);
    [net] itself for a scalar one."""
    if net.outputs == 1:
        return [net]
    return [
        ShallowNet(net.a, net.b, net.c[:, k], net.e[k], None if net.w is None else net.w[k])
        for k in range(net.outputs)
    ]


# ---------------------------------------------------------------------------
# Realization distances
# ---------------------------------------------------------------------------
_KINK_MERGE = 1e-12  # kinks closer than this (relative to D) are one breakpoint


def _kinks_1d(net: ShallowNet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kinks t_i = -b_i / a_i, slopes c_i a_i and signs a_i > 0 of the neurons with a_i != 0."""
    a = net.a[:, 0]
    nz = a != 0
    return -net.b[nz] / a[nz], net.c[nz] * a[nz], a[nz] > 0


def _piece_slopes(net: ShallowNet, points: np.ndarray) -> np.ndarray:
    """Slope of a 1-D network on each piece (points[k], points[k+1]).

    A neuron with a_i > 0 is active on the piece iff its kink lies left of the piece's
    midpoint; one with a_i < 0 iff right of it. Kinks inside the cube are among the
    points (up to the merging tolerance of ``sup_norms_1d``), so this is exact, and it
    never decides activity by comparing a kink with itself.
    """
    t, s, pos = _kinks_1d(net)
    mid = (points[:-1] + points[1:]) / 2
    slope = np.full(mid.shape, net.linear[0])
    tp, sp = t[pos], s[pos]
    order = np.argsort(tp)
    cum = np.concatenate([[0.0], np.cumsum(sp[order])])
    slope += cum[np.searchsorted(tp[order], mid, side="right")]
    tn, sn = t[~pos], s[~pos]
    order = np.argsort(tn)
    cum = np.concatenate([[0.0], np.cumsum(sn[order])])
    slope += cum[-1] - cum[np.searchsorted(tn[order], mid, side="left")]
    return slope


def sup_norms_1d(f: ShallowNet, g: ShallowNet, D: float) -> tuple[float, float]:
    """Exact (sup_Q |f - g|, sup_Q |f' - g'|) for d = 1, Q = [-D, D].

    f - g is piecewise affine with breakpoints among the kinks of both networks:
    its sup is attained at a kink or an endpoint, its derivative is constant on each
    piece between consecutive breakpoints. With m >= 2 outputs each of the two is the
    largest over the components: (max_k sup|f_k - g_k|, max_k sup|f_k' - g_k'|).
    """
    D = check_domain(D)
    if _same_dim(f, g) != 1:
        raise ValueError("sup_norms_1d needs input dimension 1")
    pairs = [
        _sup_norms_1d(fk, gk, D) for fk, gk in zip(_components(f), _components(g), strict=True)
    ]
    return max(p[0] for p in pairs), max(p[1] for p in pairs)


def _sup_norms_1d(f: ShallowNet, g: ShallowNet, D: float) -> tuple[float, float]:
    """sup_norms_1d of two scalar networks."""
    t = np.concatenate([_kinks_1d(f)[0], _kinks_1d(g)[0]])
    points = np.unique(np.concatenate([[-D, D], t[(t > -D) & (t < D)]]))
    # one kink computed two ways (a network and its canonical form) differs by rounding:
    # a piece of width ~1e-16 between the two copies has no measure and must not count
    points = points[np.concatenate([[True], np.diff(points) > _KINK_MERGE * D])]
    points[-1] = D
    values = np.abs(f(points[:, None]) - g(points[:, None]))
    slopes = np.abs(_piece_slopes(f, points) - _piece_slopes(g, points))
    return float(values.max()), float(slopes.max())


def _cell_lp(planes_a, planes_b, x0, direction, D):
    """Maximize <direction, y> over the activation cell of x0 inside the cube."""
    s = np.where(x0 @ planes_a.T + planes_b >= 0, 1.0, -1.0)
    from scipy.optimize import linprog  # see matching.py: scipy is loaded where used

    res = linprog(
        -direction,
        A_ub=-(s[:, None] * planes_a),
        b_ub=s * planes_b,
        bounds=[(-D, D)] * x0.size,
        method="highs",
    )
    return res.x if res.status == 0 else None


def _estimate_sup(f, g, D, derivative, n_samples, refine, seed):
    """Lower-bound estimates of sup|f - g| (and of max_j sup|d_j(f - g)|) for d >= 2.

    Every number is the difference evaluated at a point of Q, so both are lower
    bounds. Points: a jittered grid (or uniform samples in high d), cube corners,
    points on every kink hyperplane and just off it on both sides (to reach thin
    cells); then, from the best points, the exact maximum of |f - g| over their
    activation cell (a linear program; f - g is affine there), followed by a walk
    to neighbouring cells while that improves.
    """
    d = f.dim
    rng = np.random.default_rng(seed)
    m = int(np.floor(n_samples ** (1.0 / d)))
    if m >= 2:
        grid = np.stack(np.meshgrid(*[np.arange(m)] * d, indexing="ij"), -1).reshape(-1, d)
        cells = -D + (grid + rng.random(grid.shape)) * (2 * D / m)
    else:
        cells = rng.uniform(-D, D, (n_samples, d))
    corners = np.array(list(itertools.product([-D, D], repeat=d))) if d <= 12 else np.empty((0, d))
    planes_a = np.vstack([f.a, g.a])
    planes_b = np.concatenate([f.b, g.b])
    nz = np.linalg.norm(planes_a, axis=1) > 0
    pa, pb = planes_a[nz], planes_b[nz]
    on_planes, off_planes = [np.empty((0, d))], [np.empty((0, d))]
    if len(pa):
        per = max(8, n_samples // (4 * len(pa)))
        for a_i, b_i in zip(pa, pb, strict=True):
            x = rng.uniform(-D, D, (per, d))
            unit = a_i / np.linalg.norm(a_i)
            x = x - ((x @ a_i + b_i) / (a_i @ a_i))[:, None] * a_i
            x = x[np.all(np.abs(x) <= D, axis=1)]
            on_planes.append(x)
            for eps in (1e-3 * D, 1e-7 * D):
                off_planes.append(np.clip(x + eps * unit, -D, D))
                off_planes.append(np.clip(x - eps * unit, -D, D))
    smooth = np.vstack([cells] + off_planes)  # points off every kink (almost surely)
    allpts = np.vstack([smooth, corners] + on_planes)

    def diff(x):
        return f(x) - g(x)

    def grad_sup(x):
        # interior points only: on the boundary a point may sit on a kink lying in a face of
        # Q, where gradient() takes the slope of the kink's inactive side, outside Q
        x = x[np.all(np.abs(x) < D, axis=1)]
        return np.abs(f.gradient(x) - g.gradient(x)).max() if len(x) else 0.0

    vals = np.abs(diff(allpts))
    best_val = float(vals.max())
    best_grad = float(grad_sup(smooth)) if derivative else 0.0
    scale = max(best_val, 1e-300)
    for start in allpts[np.argsort(vals)[::-1][:refine]]:
        x = start
        for _ in range(10):
            sign = np.sign(diff(x[None])[0]) or 1.0
            y = _cell_lp(pa, pb, x, sign * (f.gradient(x[None]) - g.gradient(x[None]))[0], D)
            if y is None:
                break
            vy = abs(diff(y[None])[0])
            best_val = max(best_val, vy)
            probes = np.clip(y + 1e-6 * D * rng.standard_normal((8 * d, d)), -D, D)
            if derivative:
                best_grad = max(best_grad, grad_sup(probes))
            pv = np.abs(diff(probes))
            if pv.max() <= vy + 1e-12 * scale:
                break
            x = probes[np.argmax(pv)]
    return best_val, best_grad


def _realization_distance(f, g, D, derivative, n_samples, refine, seed) -> Distance:
    D = check_domain(D)
    if _same_dim(f, g) == 1:
        val, slope = sup_norms_1d(f, g, D)
        return Distance(max(val, slope) if derivative else val, "exact", "kinks and pieces")
    # each component's estimate is attained in Q, so their max is a lower bound too
    found = [
        _estimate_sup(fk, gk, D, derivative, n_samples, refine, seed)
        for fk, gk in zip(_components(f), _components(g), strict=True)
    ]
    val, slope = max(v for v, _ in found), max(s for _, s in found)
    method = f"{n_samples} jittered samples + kink-plane probes + cell LPs"
    return Distance(max(val, slope) if derivative else val, "lower", method)


def sobolev_distance(
    f: ShallowNet,
    g: ShallowNet,
    D: float,
    *,
    n_samples: int = 20000,
    refine: int = 8,
    seed: int = 0,
) -> Distance:
    """d_W(f, g) = ||f - g||_{W^{1,inf}([-D, D]^d)} = max(sup|f-g|, max_j sup|d_j f - d_j g|).

    Exact for d = 1 (kinks and pieces). For d >= 2 a lower-bound estimate labelled
    ``bound == "lower"``; ``n_samples``, ``refine`` and ``seed`` steer it. With m >= 2
    outputs: max_k d_W(f_k, g_k), the largest output component (m estimates for d >= 2).
    """
    return _realization_distance(f, g, D, True, n_samples, refine, seed)


def uniform_distance(
    f: ShallowNet,
    g: ShallowNet,
    D: float,
    *,
    n_samples: int = 20000,
    refine: int = 8,
    seed: int = 0,
) -> Distance:
    """d_inf(f, g) = sup_{[-D, D]^d} |f - g|; exact for d = 1, a lower bound for d >= 2.
    With m >= 2 outputs: max_k d_inf(f_k, g_k)."""
    return _realization_distance(f, g, D, False, n_samples, refine, seed)


# ---------------------------------------------------------------------------
# Parameter distances
# ---------------------------------------------------------------------------
def _neuron_costs(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """cost[i, j] = max_k |theta[i, k] - phi[j, k]|, built coordinate by coordinate."""
    cost = np.zeros((theta.shape[0], phi.shape[0]))
    for k in range(theta.shape[1]):
        np.maximum(cost, np.abs(theta[:, k, None] - phi[None, :, k]), out=cost)
    return cost


def _common_width(f: ShallowNet, g: ShallowNet) -> tuple[ShallowNet, ShallowNet]:
    n = max(f.width, g.width)
    return f.padded(n), g.padded(n)


def param_distance(f: ShallowNet, g: ShallowNet) -> Distance:
    """d_P(f, g) = min_pi max(max_i |theta_i - phi_pi(i)|_inf, |(w,e)_f - (w,e)_g|_inf).

    theta_i = (a_i, b_i, c_i) (with m >= 2 outputs the stacked row of R^{d+1+m}, and
    (W, e) compared entry by entry); the narrower network is padded with zero neurons;
    an unrestricted network's w counts as 0. Solved exactly as a bottleneck
    assignment. Permutations are the only symmetry taken into account.
    """
    _same_dim(f, g)
    f, g = _common_width(f, g)
    affine = float(np.abs(f.affine() - g.affine()).max())
    value, _ = bottleneck_assignment(_neuron_costs(f.neurons(), g.neurons()), floor=affine)
    return Distance(value, "exact", "bottleneck assignment")


def flip_neurons(net: ShallowNet, flips: np.ndarray) -> ShallowNet:
    """Flip the orientation of the neurons in mask ``flips`` without changing the realization.

    c rho(<a,x> + b) = c rho(<-a,x> - b) + c (<a,x> + b): (a, b, c) -> (-a, -b, c) and
    (w, e) += c (a, b) (with m >= 2 outputs W += c a^T, e += c b). The result carries an
    explicit w (restricted parametrization).
    """
    flips = np.asarray(flips, dtype=bool)
    sign = np.where(flips, -1.0, 1.0)
    dw, de = affine_shift(net.c[flips], net.a[flips], net.b[flips])
    w = net.linear + dw
    e = net.e + de
    return ShallowNet(sign[:, None] * net.a, sign * net.b, net.c, e, w)


def fibre_distance(
    f: ShallowNet,
    g: ShallowNet,
    D: float,
    *,
    tol: float = DEFAULT_TOL,
    exact_width: int = 8,
    milp_width: int = 64,
    time_limit: float = 60.0,
) -> Distance:
    """Distance from Gamma to the parametrizations of g's realization in Omega_N.

    Gamma is ``f`` itself when f lies in Omega_N (a point of the restricted set, as
    the inverse-stability theorem takes it), else ``canonical_form(f)``. The
    parametrizations of g inside Omega_N are its canonical form up to neuron
    permutations and orientation flips (each flip moves c (a, b) into the affine
    part), so

        fibre_distance(f, g) = min over flip sets S of d_P(Gamma, flip_S(canonical_form(g))).

    Gamma is not replaced by its own canonical form when it is already in Omega_N:
    the orientation rule would move it to another point of its fibre, and a sum of
    small per-neuron differences over the flipped neurons would then separate two
    nearby networks through their affine parts.

    With k live neurons in g's canonical form: k <= ``exact_width``, all 2^k flip sets
    are enumerated (exact); k <= ``milp_width``, a mixed-integer linear program over flips
    and assignments (``matching.milp_flips``, exact unless HiGHS stops at ``time_limit``
    seconds: then the best value found, an upper bound). Wider, or when the program stops:
    each neuron of g is oriented like the neuron of Gamma it is matched to (flipped when
    their (a, b) point in opposite directions) and d_P of the result is returned, an upper
    bound, labelled so.
    """
    D = check_domain(D)
    _same_dim(f, g)
    gamma = f if in_restricted_set(f, D, tol) else canonical_form(f, D, tol)
    gamma, phi = _common_width(gamma, canonical_form(g, D, tol))
    live = live_neurons(phi)
    theta, rows = gamma.neurons(), phi.neurons()
    flipped = rows.copy()
    flipped[:, : phi.dim + 1] *= -1.0
    cost = np.stack([_neuron_costs(theta, rows), _neuron_costs(theta, flipped)])
    shift = _flip_shifts(phi)
    base = phi.affine() - gamma.affine()

    k = int(live.sum())
    if k <= exact_width:
        found = enumerate_flips(cost, shift, base, live)
        return Distance(found.value, "exact", found.method)
    upper = _oriented_alike(gamma, phi, cost, shift, base)
    if k <= milp_width:
        found = milp_flips(cost, shift, base, live, upper, time_limit)
        if found.optimal:
            return Distance(found.value, "exact", found.method)
        upper = found if found.value < upper.value else upper
    return Distance(upper.value, "upper", upper.method)


def _flip_shifts(phi: ShallowNet) -> np.ndarray:
    """What flipping neuron j adds to phi.affine(), row j of shape (N, d + 1): c_j (a_j, b_j);
    with m >= 2 outputs the block c_j (a_j, b_j)^T laid out row by row as affine() lays out
    (W, e), shape (N, m (d + 1))."""
    ab = np.column_stack([phi.a, phi.b])
    if phi.outputs == 1:
        return phi.c[:, None] * ab
    return (phi.c[:, :, None] * ab[:, None, :]).reshape(phi.width, -1)


def _oriented_alike(gamma, phi, cost, shift, base) -> FlipAssignment:
    """A feasible flip set: each neuron of phi oriented like its bottleneck partner in
    gamma (flipped when their (a, b) point in opposite directions)."""
    dot = np.column_stack([gamma.a, gamma.b]) @ np.column_stack([phi.a, phi.b]).T
    opposite = dot < 0
    _, perm = bottleneck_assignment(np.where(opposite, cost[1], cost[0]))
    flips = np.zeros(phi.width, dtype=bool)
    flips[perm[opposite[np.arange(phi.width), perm]]] = True
    value, perm = flip_objective(cost, shift, base, flips)
    return FlipAssignment(
        value, flips, perm, False, "partners oriented alike + bottleneck assignment"
    )
