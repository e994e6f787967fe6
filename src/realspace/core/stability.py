"""Claim 3 on trained networks (d = 1, Q = [-D, D]): inverse stability on Omega_N, and its
failure at unrestricted end points with a free neuron.

A. Restricted end points: Gamma in Omega_N, perturbed by a kind at size delta into g with
   d_W(base, g) = delta exactly; x = d_W (exact, d = 1), y = fibre distance from the base to
   the Omega_N-parametrizations of g (``perturbation`` has the kinds and their closed forms:
   add and shift p = 1/2, scale p = 1). A kind's random choices come from
   ``default_rng((seed, kind index))``, the same at every delta: each kind is one family
   delta -> 0, and its exponent is the rate along one fixed direction.

B. Unrestricted end points Theta (w = 0, or w trained with ``linear_term``) with a free
   neuron: g = R Theta + s rho(sigma (x - t)), t a new kink. A width-N parametrization Phi
   of g (with or without a linear term: w has no kink) needs for every kink
   kappa of g its own neuron with (a, b) on L_kappa = {b + kappa a = 0}. The sup-norm
   distance from (a_i, b_i) to L_kappa is |r| / (1 + |kappa|), r = b_i + kappa a_i: a move
   (u, v) with max(|u|, |v|) <= m changes b + kappa a by |v + kappa u| <= m (1 + |kappa|),
   and u = -sign(kappa) r / (1 + |kappa|), v = -r / (1 + |kappa|) reaches the line (the l1
   norm of the normal (kappa, 1) is the dual of the sup norm). So d_P(Theta, Phi) is at least
   the bottleneck assignment of g's kinks to distinct neurons under these costs
   (``kink_lower_bound``); inf when g has more kinks than N.

The math: docs/science.md#inverse-stability-on-trained-networks.
"""

from __future__ import annotations

import numpy as np

from .canonical import canonical_form, classify_neurons
from .distances import Distance, fibre_distance, sobolev_distance
from .inverse import ratios
from .matching import bottleneck_assignment
from .nets import ShallowNet, check_domain
from .restricted import DEFAULT_TOL, hyperplane_angles, in_restricted_set, live_neurons

__all__ = [
    "STABILITY_KINDS",
    "STABILITY_DELTAS",
    "perturbation",
    "stability_rows",
    "kinks_1d",
    "free_neurons",
    "kink_lower_bound",
    "free_neuron_rows",
]

STABILITY_KINDS = ("add", "scale", "shift")
STABILITY_DELTAS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
KINK_MARGIN = 0.05  # a new kink keeps this fraction of D from every kink and from +-D ...
_GRID = 4001  # ... or half the best clearance on a grid of this many points, if less
SHIFT = 0.25  # the shift kind moves a kink by SHIFT * D


def _scalar_1d(net: ShallowNet) -> None:
    if net.dim != 1 or net.outputs != 1:
        raise ValueError(f"needs a scalar network on d = 1, got d = {net.dim}, m = {net.outputs}")


def kinks_1d(net: ShallowNet, D: float, tol: float = DEFAULT_TOL) -> np.ndarray:
    """Sorted interior kinks (K,) of the realization of a scalar network on [-D, D].

    A neuron c rho(a x + b) with its kink -b/a inside the open cube (``classify_neurons``)
    makes the slope jump by c |a| there (a > 0: 0 -> c a; a < 0: c a -> 0). Kinks within
    tol * D of each other are one kink and their jumps add; a kink counts when its total
    jump exceeds tol times the largest single jump |c_i a_i| (a pair that cancels, c rho(z) -
    c rho(z) or c rho(z) - c rho(-z) = c z, leaves no kink).
    """
    D = check_domain(D)
    _scalar_1d(net)
    inside = classify_neurons(net, D, tol)["inside"]
    a = net.a[inside, 0]
    if a.size == 0:
        return np.empty(0)
    kink, jump = -net.b[inside] / a, net.c[inside] * np.abs(a)
    order = np.argsort(kink)
    kink, jump = kink[order], jump[order]
    first = np.concatenate([[True], np.diff(kink) > tol * D])
    total = np.bincount(np.cumsum(first) - 1, weights=jump)
    return kink[first][np.abs(total) > tol * np.abs(jump).max()]


def _new_kink(kinks: np.ndarray, D: float, rng, span: float = 0.0) -> float:
    """A random t (uniform over a fine grid) with t and t + span at least m from every kink and
    from +-D, m = min(KINK_MARGIN D, half the best clearance): canonical_form would merge a
    kink too close to another or drop one on the boundary."""
    walls = np.concatenate([[-D, D], kinks])
    grid = np.linspace(-D, D - span, _GRID)

    def clearance(x):
        return np.abs(x[:, None] - walls[None, :]).min(axis=1)

    room = np.minimum(clearance(grid), clearance(grid + span))
    margin = min(KINK_MARGIN * D, room.max() / 2)
    return float(rng.choice(grid[room >= margin]))


def _with_neuron(net: ShallowNet, j: int, s: float, t: float) -> ShallowNet:
    """``net`` with neuron j set to the balanced s rho(x - t): a = sqrt|s|, b = -sqrt|s| t,
    c = sign(s) sqrt|s| (its own slot, not added to what was there)."""
    r = np.sqrt(abs(s))
    a, b, c = net.a.copy(), net.b.copy(), net.c.copy()
    a[j, 0], b[j], c[j] = r, -r * t, np.copysign(r, s)
    return ShallowNet(a, b, c, net.e, net.w)


def perturbation(
    gamma: ShallowNet, kind: str, delta: float, D: float, rng
) -> tuple[ShallowNet, ShallowNet, dict]:
    """(base, g, info) of one perturbation of Gamma in Omega_N, d_W(base, g) = delta exactly.

    - ``add``: base = Gamma padded to N + 1, g = base + s rho(x - t) in the padding slot, t a
      new kink, s = +-delta / max(D - t, 1) (sup of rho(x - t) on Q is D - t, its slope 1).
      The balanced new neuron has |a| = |c| = sqrt|s|: y = sqrt|s| max(1, |t|), p = 1/2.
    - ``scale``: base = Gamma, one live neuron's gamma_i times 1 + u, u = delta / (|c_i|
      max(|a_i| D + b_i, |a_i|)) (d_W of c_i rho(a_i x + b_i)); balanced, (a_i, b_i, c_i)
      times sqrt(1 + u): y = (sqrt(1 + u) - 1) |theta_i|_inf, p = 1.
    - ``shift``: base = Gamma' = Gamma + a small balanced s rho(x - t) in the padding slot, g
      the same with the kink at t + Delta, Delta = SHIFT D, s = +-delta / max(Delta, 1): the
      difference is a ramp of slope s on [t, t + Delta], d_W = |s| max(Delta, 1) = delta and
      y = sqrt|s| Delta (b moves, a and c stay): p = 1/2.

    info: ``t`` (the new or moved kink; the scaled neuron's kink) and ``neuron`` (the slot that
    changes).
    """
    D = check_domain(D)
    n = gamma.width
    if kind == "add":
        t = _new_kink(kinks_1d(gamma, D), D, rng)
        s = float(rng.choice([-1.0, 1.0])) * delta / max(D - t, 1.0)
        base = gamma.padded(n + 1)
        return base, _with_neuron(base, n, s, t), {"t": t, "neuron": n}
    if kind == "scale":
        live = np.flatnonzero(live_neurons(gamma))
        if live.size == 0:
            raise ValueError("the scale perturbation needs a live neuron")
        i = int(rng.choice(live))
        a, b, c = gamma.a[i, 0], gamma.b[i], gamma.c[i]
        u = delta / (abs(c) * max(abs(a) * D + b, abs(a)))
        k = np.sqrt(1.0 + u)  # balanced: k^2 gamma_i = (1 + u) gamma_i
        aa, bb, cc = gamma.a.copy(), gamma.b.copy(), gamma.c.copy()
        aa[i], bb[i], cc[i] = k * a, k * b, k * c
        return gamma, ShallowNet(aa, bb, cc, gamma.e, gamma.w), {"t": -b / a, "neuron": i}
    if kind == "shift":
        step = SHIFT * D
        t = _new_kink(kinks_1d(gamma, D), D, rng, span=step)
        s = float(rng.choice([-1.0, 1.0])) * delta / max(step, 1.0)
        padded = gamma.padded(n + 1)
        base = _with_neuron(padded, n, s, t)
        return base, _with_neuron(padded, n, s, t + step), {"t": t, "neuron": n}
    raise ValueError(f"unknown kind {kind!r}; known: {', '.join(STABILITY_KINDS)}")


def stability_rows(
    gamma: ShallowNet,
    D: float,
    kinds=STABILITY_KINDS,
    deltas=STABILITY_DELTAS,
    seed: int = 0,
) -> list[dict]:
    """One row per (kind, delta): x = d_W(base, g) (exact), y = d_P = fibre distance from the
    base to the Omega_N-parametrizations of g (exact up to 64 live neurons, else an upper
    bound: ``d_P_bound``), r_half = y / x^(1/2), r_one = y / x.

    ``gamma`` is used as it is when it lies in Omega_N, else its canonical form. Keys: kind,
    delta, d_W, d_W_bound, d_P, d_P_bound, r_half, r_one, width (N of Gamma), base ("gamma",
    "gamma padded", or "gamma + small neuron" for shift), t, neuron.
    """
    D = check_domain(D)
    _scalar_1d(gamma)
    if not in_restricted_set(gamma, D):
        gamma = canonical_form(gamma, D)
    base_name = {"add": "gamma padded", "scale": "gamma", "shift": "gamma + small neuron"}
    rows = []
    for kind in kinds:
        index = STABILITY_KINDS.index(kind) if kind in STABILITY_KINDS else len(STABILITY_KINDS)
        for delta in deltas:
            # a fresh generator per delta with the kind's seed: the same draws at every delta
            rng = np.random.default_rng((seed, index))
            base, g, info = perturbation(gamma, kind, float(delta), D, rng)
            d_w = sobolev_distance(base, g, D)
            if not d_w.exact:
                raise RuntimeError(f"d_W is not exact ({d_w!r}): claim 3 needs d = 1")
            d_p = fibre_distance(base, g, D)
            rows.append(
                {
                    "kind": kind,
                    "delta": float(delta),
                    "d_W": float(d_w),
                    "d_W_bound": d_w.bound,
                    "d_P": float(d_p),
                    "d_P_bound": d_p.bound,
                    **ratios(float(d_p), float(d_w)),
                    "width": gamma.width,
                    "base": base_name[kind],
                    **info,
                }
            )
    return rows


def free_neurons(theta: ShallowNet, D: float, tol: float = DEFAULT_TOL) -> np.ndarray:
    """Mask (N,) of the neurons whose slot a width-N network can give up without changing its
    realization on Q: dead on Q (b_j <= -D |a_j|, a_j = b_j = 0 included), c_j = 0, or one of
    a pair with positively collinear (a, b) (angle <= tol: the pair merges into one neuron);
    with a linear part (``theta.w`` given) also affine on Q (folded into (w, e))."""
    D = check_domain(D)
    kind = classify_neurons(theta, D, tol)
    free = kind["dead"] | (theta.c == 0)
    if theta.w is not None:
        free |= kind["affine"]
    nz = np.flatnonzero(np.any(np.column_stack([theta.a, theta.b]) != 0, axis=1))
    if nz.size >= 2:
        same, _ = hyperplane_angles(theta.a[nz], theta.b[nz])
        np.fill_diagonal(same, np.inf)
        free[nz[(same <= tol).any(axis=1)]] = True
    return free


def kink_lower_bound(theta: ShallowNet, g: ShallowNet, D: float, tol=DEFAULT_TOL) -> Distance:
    """A lower bound of min d_P(Theta, Phi) over the width-N parametrizations Phi of g, with
    or without a linear term (N = Theta's width, d = 1; module docstring, part B):

        LB = min over injective kinks -> neurons i of max_kappa |b_i + kappa a_i| / (1 + |kappa|)

    over the kinks kappa of g (``kinks_1d``), the kinks padded with zero-cost dummy rows to a
    square bottleneck assignment. inf when g has more kinks than N. ``bound == "lower"``.
    """
    _scalar_1d(theta)
    kinks = kinks_1d(g, D, tol)
    n = theta.width
    if kinks.size > n:
        return Distance(np.inf, "lower", f"{kinks.size} kinks > width {n}")
    cost = np.zeros((n, n))  # rows beyond the kinks: dummies, any neuron at no cost
    cost[: kinks.size] = np.abs(theta.b[None, :] + kinks[:, None] * theta.a[None, :, 0])
    cost[: kinks.size] /= (1.0 + np.abs(kinks))[:, None]
    value, _ = bottleneck_assignment(cost)
    return Distance(value, "lower", "kinks of g assigned to neurons (line distances)")


def free_neuron_rows(
    theta: ShallowNet,
    D: float,
    deltas=STABILITY_DELTAS,
    seed: int = 0,
    tol: float = DEFAULT_TOL,
) -> list[dict]:
    """One row per delta: g = R Theta + s rho(sigma (x - t)), t a new kink inside Q and sigma =
    +-1 (drawn once from ``default_rng(seed)``), s = delta / max(D - sigma t, 1): d_W(R Theta,
    g) = delta (sup of rho(sigma (x - t)) on Q is D - sigma t, its slope 1).

    Keys: kind ("new kink"), delta, d_W, lower_bound (``kink_lower_bound``), t, sigma,
    free_size (the smallest |(a_j, b_j)|_inf of a free neuron: one shrunk by weight decay is
    no obstacle, so the caller keeps networks where it is not small), width (N). [] when
    Theta has no free neuron (g is then not realizable at width N).
    """
    D = check_domain(D)
    _scalar_1d(theta)
    free = free_neurons(theta, D, tol)
    if not free.any():
        return []
    size = float(np.abs(np.column_stack([theta.a, theta.b])[free]).max(axis=1).min())
    rng = np.random.default_rng(seed)
    t = _new_kink(kinks_1d(theta, D, tol), D, rng)
    sigma = float(rng.choice([-1.0, 1.0]))
    rows = []
    for delta in deltas:
        s = float(delta) / max(D - sigma * t, 1.0)
        g = ShallowNet(
            np.vstack([theta.a, [[sigma]]]),
            np.append(theta.b, -sigma * t),
            np.append(theta.c, s),
            theta.e,
            theta.w,  # a linear_term run's trained w (None: w = 0)
        )
        d_w = sobolev_distance(theta, g, D)
        rows.append(
            {
                "kind": "new kink",
                "delta": float(delta),
                "d_W": float(d_w),
                "lower_bound": float(kink_lower_bound(theta, g, D, tol)),
                "t": t,
                "sigma": sigma,
                "free_size": size,
                "width": theta.width,
            }
        )
    return rows
