"""Inverse-stability experiments: how far apart are parameters whose realizations are close?

Ratios r_alpha = d_P / d_W^alpha (alpha = 1/2: the theorem's rate on Omega_N; alpha = 1,
which fails even there). Three sources of pairs (docs/science.md):

- ``pathology_table``: the fixtures P0-P4 (and P1b) along n = 2^1 .. 2^k;
- ``seed_pair_table``: end points of one cell trained from different seeds whose
  realizations are close;
- ``perturb`` + retraining: a trained Gamma, a nearby target g at d_W = delta, and the
  distance the parameters travel when training moves from R(Gamma) to g
  (``retrain_distances``; the training itself is ``realspace.train``).

"raw" distances compare the parametrizations as they are (d_P, permutations only);
"canonical" ones take the fibre distance on Omega_N (canonical forms, permutations and
orientation flips). All numbers are float64 and exact in d = 1, except fibre distances
above 64 live neurons or where the MILP stopped (an upper bound, reported in the
``*_bound`` columns).

The math: docs/science.md#inverse-stability-experiments.
"""

from __future__ import annotations

import operator
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from .canonical import canonical_form
from .distances import fibre_distance, param_distance, sobolev_distance, uniform_distance
from .nearest import closest_pairs
from .nets import ShallowNet
from .pathologies import PATHOLOGIES, pathology

__all__ = [
    "ratios",
    "pathology_table",
    "seed_pair_table",
    "PERTURBATIONS",
    "perturb",
    "restricted_start",
    "retrain_distances",
    "fit_slope",
    "bootstrap_slope",
    "SlopeInterval",
]

PERTURBATIONS = ("add", "scale", "kink")


def ratios(d_p: float, d_w: float) -> dict:
    """r_1/2 = d_P / d_W^(1/2) and r_1 = d_P / d_W (inf when d_W = 0 < d_P)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "r_half": float(np.divide(d_p, np.sqrt(d_w))),
            "r_one": float(np.divide(d_p, d_w)),
        }


# x values closer than this in log (a factor 1 + 1e-9) are one point: a slope across them
# is rounding noise, so a set of such x has no slope (polyfit warns "poorly conditioned")
SAME_X = 1e-9


def fit_slope(x, y, tail: float = 1.0) -> float:
    """Least-squares slope of log y against log x over the finite, positive points: the
    exponent p of y ~ x^p. NaN with fewer than two distinct x (log x spread at most
    ``SAME_X``). ``tail`` < 1 fits only the points with the largest x (that fraction of
    them, at least two): the asymptotic rate, without the pre-asymptotic start of a
    family."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if tail < 1 and np.count_nonzero(ok) > 2:
        keep = max(2, int(np.ceil(tail * np.count_nonzero(ok))))
        cut = np.sort(x[ok])[-keep]
        ok &= x >= cut
    if np.count_nonzero(ok) < 2:
        return float("nan")
    lx, ly = np.log(x[ok]), np.log(y[ok])
    if np.ptp(lx) <= SAME_X:
        return float("nan")
    dx = lx - lx.mean()  # centred: the normal equations' closed form is well conditioned
    return float(dx @ (ly - ly.mean()) / (dx @ dx))


class SlopeInterval(NamedTuple):
    """``bootstrap_slope``'s answer: the slope, its interval, and how many resamples had
    no slope (all their x one point: an expected case with few networks, counted)."""

    p: float
    lo: float
    hi: float
    degenerate: int


def bootstrap_slope(x, y, groups, n_boot: int = 2000, seed: int = 0) -> SlopeInterval:
    """(p, lo, hi, degenerate): ``fit_slope`` of all points, the 2.5 and 97.5 percentiles
    of the slopes refitted on ``n_boot`` bootstrap samples of the ``groups`` (whole groups
    drawn with replacement, e.g. networks: points of one group are not independent), and
    the number of resamples without a slope, left out of the percentiles. lo and hi are
    NaN where fewer than two groups, or fewer than half of the resamples give a slope."""
    x, y, groups = np.asarray(x, float), np.asarray(y, float), np.asarray(groups)
    p = fit_slope(x, y)
    labels, label_of = np.unique(groups, return_inverse=True)
    if labels.size < 2:
        return SlopeInterval(p, float("nan"), float("nan"), 0)
    # each group's indices in increasing order, from one sort (a scan per group costs
    # groups x points: quadratic when the groups are the networks of a sweep)
    order = np.argsort(label_of, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(label_of, minlength=labels.size))[:-1])
    rng = np.random.default_rng(seed)
    slopes = []
    for _ in range(n_boot):
        idx = np.concatenate([members[k] for k in rng.integers(0, labels.size, labels.size)])
        slopes.append(fit_slope(x[idx], y[idx]))
    slopes = np.array(slopes)
    slopes = slopes[np.isfinite(slopes)]
    degenerate = n_boot - slopes.size
    if slopes.size < n_boot / 2:
        return SlopeInterval(p, float("nan"), float("nan"), degenerate)
    lo, hi = np.percentile(slopes, [2.5, 97.5])
    return SlopeInterval(p, float(lo), float(hi), degenerate)


def pathology_table(max_log2: int = 12, D: float = 2.0, families=PATHOLOGIES) -> list[dict]:
    """One row per (family, n = 2^1 .. 2^max_log2): d_W, d_inf, raw d_P and the fibre
    distance on Omega_N, with both ratios for each."""
    rows = []
    for name in families:
        for k in range(1, max_log2 + 1):
            n = 2.0**k
            gamma, g = pathology(name, n, D)
            d_w = float(sobolev_distance(gamma, g, D))
            d_inf = float(uniform_distance(gamma, g, D))
            raw = float(param_distance(gamma, g))
            can = fibre_distance(gamma, g, D)
            r_raw, r_can = ratios(raw, d_w), ratios(float(can), d_w)
            rows.append(
                {
                    "family": name,
                    "n": n,
                    "d_W": d_w,
                    "d_inf": d_inf,
                    "d_P_raw": raw,
                    "d_P_canonical": float(can),
                    "canonical_bound": can.bound,
                    "r_half_raw": r_raw["r_half"],
                    "r_one_raw": r_raw["r_one"],
                    "r_half_canonical": r_can["r_half"],
                    "r_one_canonical": r_can["r_one"],
                    "r_half_raw_inf": ratios(raw, d_inf)["r_half"],
                }
            )
    return rows


def seed_pair_table(nets: list[ShallowNet], D: float, closest: int = 4) -> list[dict]:
    """The ``closest`` pairs among ``nets`` (end points of one cell, d = 1) by d_W, with
    raw d_P and the fibre distance on Omega_N (Gamma = the first of the pair).

    The pairs are the first ``closest`` of all n (n - 1) / 2 sorted by (d_W, i, j), d_W
    exact, found without computing every pair (``nearest.closest_pairs``): d_W only where
    a lower bound on it (f and f' sampled, then at both networks' kinks) does not exceed
    the ``closest``-th smallest found so far. About n log n for the cells of a sweep
    (10^5 networks of width 8 in seconds, memory linear in n); quadratic only where most
    pairs are as close as the ``closest``-th, and in d >= 2 (an estimate, every pair).
    """
    closest = operator.index(closest)
    if closest < 0:
        raise ValueError(f"closest must be >= 0, got {closest}")
    pairs = closest_pairs(nets, D, closest)
    rows = []
    for d_w, i, j in pairs:
        raw = float(param_distance(nets[i], nets[j]))
        can = fibre_distance(nets[i], nets[j], D)
        rows.append(
            {
                "i": i,
                "j": j,
                "d_W": d_w,
                "d_P_raw": raw,
                "d_P_canonical": float(can),
                "canonical_bound": can.bound,
                **{f"{k}_raw": v for k, v in ratios(raw, d_w).items()},
                **{f"{k}_canonical": v for k, v in ratios(float(can), d_w).items()},
            }
        )
    return rows


def restricted_start(net: ShallowNet, D: float) -> ShallowNet:
    """A point of Omega_N with the same realization on Q and width: the canonical form."""
    return canonical_form(net, D)


def perturb(net: ShallowNet, kind: str, delta: float, D: float, rng) -> tuple[ShallowNet, float]:
    """A realizable target g near R(net) (d = 1) and its exact d_W(R(net), g).

    - ``add``: a new neuron s rho(x - t) (t uniform in (-D, D), s = +-1 scaled) with
      d_W = delta exactly;
    - ``scale``: one live neuron's c_i multiplied by (1 + s) with d_W = delta exactly
      (d_W is linear in s);
    - ``kink``: one live neuron's kink moved by delta (in x). f' then differs by
      |c_i a_i| on the interval between the old and the new kink, so d_W >= |c_i a_i|
      however small delta is: in W^{1,inf} moving a kink is a large perturbation. The
      smallest live neuron is moved, and d_W is whatever results.
    """
    if net.dim != 1:
        raise ValueError("perturbations are defined for d = 1")
    D = float(D)
    gamma = canonical_form(net, D)
    live = np.flatnonzero(np.abs(gamma.c) > 0)
    if kind == "add" or (kind != "add" and live.size == 0):
        t = float(rng.uniform(-D, D))
        sign = float(rng.choice([-1.0, 1.0]))
        # d_W of s rho(x - t): max(sup |s|(x - t)_+, |s|) = |s| max(D - t, 1)
        s = sign * delta / max(D - t, 1.0)
        g = replace(
            gamma,
            a=np.vstack([gamma.a, [[1.0]]]),
            b=np.append(gamma.b, -t),
            c=np.append(gamma.c, s),
        )
    elif kind == "scale":
        i = int(rng.choice(live))
        unit = replace(gamma, c=np.where(np.arange(gamma.width) == i, gamma.c, 0.0), e=0.0)
        unit = replace(unit, w=np.zeros(1))
        scale = float(sobolev_distance(unit, replace(unit, c=np.zeros(gamma.width)), D))
        c = gamma.c.copy()
        c[i] *= 1.0 + delta / scale
        g = replace(gamma, c=c)
    elif kind == "kink":
        i = int(live[np.argmin(np.abs(gamma.c[live]))])
        b = gamma.b.copy()
        b[i] -= delta * gamma.a[i, 0]  # kink -b/a moves by +delta
        g = replace(gamma, b=b)
    else:
        raise ValueError(f"unknown perturbation {kind!r}; known: {', '.join(PERTURBATIONS)}")
    return g, float(sobolev_distance(net, g, D))


def retrain_distances(
    start: ShallowNet, end: ShallowNet, target: ShallowNet, D: float, restricted: bool
) -> dict:
    """How far retraining moved the parameters: d_P(start, end) (raw, unrestricted) or the
    fibre distance on Omega_N (restricted); how far it moved the realization:
    ``d_W_travel`` = d_W(R(start), R(end)) (exact in d = 1), the x against which the
    travel is fitted; and how well ``end`` fits g: sup |R(end) - g|.

    The fit is judged in the uniform norm: a kink of ``end`` a hair away from g's makes
    f' differ by |c_i a_i| on the sliver between them, so d_W(R(end), g) stays of order
    |c_i a_i| for any fit short of exact.
    """
    travel = fibre_distance(start, end, D) if restricted else param_distance(start, end)
    return {
        "d_P": float(travel),
        "d_P_bound": travel.bound,
        "d_W_travel": float(sobolev_distance(start, end, D)),
        "fit_d_inf": float(uniform_distance(end, target, D)),
    }
