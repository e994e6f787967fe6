"""Statistics of the stability stage (pandas in, pandas out): inverse stability measured
on trained networks, the evidence claim 3 is decided on.

Per parametrization and kind, the exponent p of y ~ x^p with a bootstrap interval over
networks, where x is the exact d_W(R Gamma, g) of each perturbation and y

- restricted rows: the exact fibre distance from Gamma to the Omega_N-parametrizations
  of g (``d_P``); inverse stability on Omega_N says p >= 1/2;
- unrestricted rows (kind ``new kink``): a lower bound on the distance from Theta to
  every width-N parametrization of g = R Theta + delta rho(s (x - t)) (``lower_bound``),
  over the networks whose free neuron is not small (``FREE_SIZE_MIN``: under weight
  decay a free neuron shrinks to zero and is no obstacle); p near 0 means inverse
  stability fails there.

The math: docs/science.md#inverse-stability-experiments.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.inverse import bootstrap_slope
from .retraining import BOOTSTRAP_SAMPLES

__all__ = ["ASYMPTOTIC_SHARE", "FREE_SIZE_MIN", "NEW_KINK", "stability_exponents"]

# a free neuron whose (a, b) are this large (inf-norm) is an obstacle worth the name;
# below it the trained network's free neuron is weight decay's near-zero leftover
FREE_SIZE_MIN = 1e-3
NEW_KINK = "new kink"  # the kind of the unrestricted rows
ASYMPTOTIC_SHARE = 0.5  # the exponent is fitted on the smallest half of each kind's x


def _measured(stability: pd.DataFrame) -> pd.DataFrame:
    """Rows as (parametrization, kind, network, x, y, exact): the unrestricted ones with
    their lower bound as y, over networks with a free neuron of at least FREE_SIZE_MIN."""
    frames = []
    par = stability["parametrization"]
    r = stability[par == "restricted"]
    if len(r):
        frames.append(
            pd.DataFrame(
                {
                    "parametrization": "restricted",
                    "kind": r["kind"],
                    "network": r["network"],
                    "x": r["d_W"],
                    "y": r["d_P"],
                    "exact": r["d_P_bound"] == "exact",
                }
            )
        )
    u = stability[par == "unrestricted"]
    if len(u) and "lower_bound" in u:
        u = u[u["free_size"] >= FREE_SIZE_MIN]
        frames.append(
            pd.DataFrame(
                {
                    "parametrization": "unrestricted",
                    "kind": NEW_KINK,
                    "network": u["network"],
                    "x": u["d_W"],
                    "y": u["lower_bound"],
                    "exact": True,
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _finite_stat(f, v: np.ndarray) -> float:
    """f over the non-NaN entries of v; NaN when there are none (a kind whose distances
    are all upper bounds has no exact ratio: an expected case, not a warning)."""
    v = v[~np.isnan(v)]
    return float(f(v)) if v.size else float("nan")


def stability_exponents(stability: pd.DataFrame) -> pd.DataFrame:
    """Per (parametrization, kind): the exponent p of y ~ x^p over the rows with the
    smallest ``ASYMPTOTIC_SHARE`` of x (the rate as delta -> 0), its 95 % bootstrap
    interval over networks (``bootstrap_slope``: NaN with fewer than two; resamples
    without a slope counted in ``degenerate_resamples``), the networks and rows,
    ``fitted`` (those x span at least a decade: a kind whose d_W does not
    follow delta has no exponent), rows whose y is only an upper bound, and the median and
    largest r_1/2 = y / x^(1/2) and r_1 = y / x.

    Columns: parametrization, kind, networks, rows, exponent, ci_low, ci_high,
    degenerate_resamples, fitted, upper_bounds, r_half_median, r_half_max, r_one_max
    (NaN where the kind has no exact y).
    """
    if stability.empty:
        return pd.DataFrame()
    m = _measured(stability)
    if m.empty:
        return pd.DataFrame()
    rows = []
    for (par, kind), g in m.groupby(["parametrization", "kind"], sort=True):
        # exact distances only: an upper bound on y can lower the slope, so it could
        # "refute" the theorem by itself (counted in upper_bounds)
        x = g["x"].to_numpy(float)
        y = g["y"].where(g["exact"]).to_numpy(float)
        # the rate as delta -> 0: the smaller half of x. At large delta a new neuron can
        # be matched more cheaply against a small neuron of Gamma, a plateau that would
        # pull the slope below the asymptotic one (the selection is on x, never on y)
        ok = (x > 0) & np.isfinite(x)
        tail = ok & (x <= np.quantile(x[ok], ASYMPTOTIC_SHARE)) if ok.any() else ok
        p, lo, hi, degenerate = bootstrap_slope(
            x[tail], y[tail], g["network"].to_numpy()[tail], BOOTSTRAP_SAMPLES, seed=0
        )
        span = np.log10(x[tail].max() / x[tail].min()) if tail.sum() > 1 else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            r_half, r_one = y / np.sqrt(x), y / x
        rows.append(
            {
                "parametrization": par,
                "kind": kind,
                "networks": int(g["network"].nunique()),
                "rows": len(g),
                "exponent": p,
                "ci_low": lo,
                "ci_high": hi,
                "degenerate_resamples": degenerate,
                "fitted": bool(span >= 1.0 and np.isfinite(p)),
                "upper_bounds": int((~g["exact"]).sum()),
                "r_half_median": _finite_stat(np.median, r_half),
                "r_half_max": _finite_stat(np.max, r_half),
                "r_one_max": _finite_stat(np.max, r_one),
            }
        )
    return pd.DataFrame(rows)
