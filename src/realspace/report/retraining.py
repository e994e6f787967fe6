"""Statistics of the retraining experiment (pandas in, pandas out): does training find the
nearby parametrization? Per parametrization and perturbation kind, the exponent p of

    d_P(start, end) ~ d_W(R(start), R(end))^p

(the distance the parameters travelled against the exact distance the realization
travelled, ``d_W_travel``) with a bootstrap interval over networks. Every row enters its
kind's fit: none is dropped for its response (a filter on d_P, such as the control's
floor, would flatten the slope) or for its fit to g (how well retraining reached g is
reported beside the fit, as the share of rows with ``fit_d_inf <= FIT_RATIO d_W``).
Retraining is a question of its own, beside claim 3's verdict, which rests on the exact
distances of the stability stage (``report.stability``).

The math: docs/science.md#inverse-stability-experiments.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.inverse import bootstrap_slope

__all__ = ["FIT_RATIO", "BOOTSTRAP_SAMPLES", "retrain_exponents"]

FIT_RATIO = 0.1  # "reached g": the fit error at most a tenth of the distance to fit
BOOTSTRAP_SAMPLES = 2000  # resamples of the networks; seed 0: the same interval every time


def retrain_exponents(retrain: pd.DataFrame) -> pd.DataFrame:
    """Per (parametrization, kind): the exponent p of d_P ~ d_W_travel^p over all its
    rows (``fit_slope``, least squares in log-log), its 95 % bootstrap interval over
    networks (``bootstrap_slope``, ``BOOTSTRAP_SAMPLES`` resamples, seed 0), the networks
    and rows it rests on, rows whose travel is only an upper bound, the share that reached
    g, the median control floor and the median r_1/2 = d_P / d_W_travel^(1/2).

    Columns: parametrization, kind, networks, rows, exponent, ci_low, ci_high,
    degenerate_resamples (resamples without a slope: all their x one point), fitted
    (x spans at least a decade), upper_bounds, reached_g, floor_median, r_half_median.
    Empty without ``d_W_travel`` (rows written before it was measured).
    """
    if retrain.empty or "d_W_travel" not in retrain:
        return pd.DataFrame()
    if "network" not in retrain:
        retrain = retrain.assign(network=retrain["width"].astype(str))
    rows = []
    for (par, kind), g in retrain.groupby(["parametrization", "kind"]):
        network = g["network"].to_numpy()
        p, lo, hi, degenerate = bootstrap_slope(
            g["d_W_travel"].to_numpy(), g["d_P"].to_numpy(), network, BOOTSTRAP_SAMPLES, seed=0
        )
        x = g["d_W_travel"].to_numpy(float)
        x = x[np.isfinite(x) & (x > 0)]
        with np.errstate(divide="ignore", invalid="ignore"):
            r_half = g["d_P"] / np.sqrt(g["d_W_travel"])
        rows.append(
            {
                "parametrization": par,
                "kind": kind,
                "networks": int(pd.unique(network).size),
                "rows": len(g),
                "exponent": p,
                "ci_low": lo,
                "ci_high": hi,
                "degenerate_resamples": degenerate,
                # a kink moved by training costs its slope jump in W^{1,inf} however
                # small the move: then x sits near |c a| and does not follow delta
                "fitted": bool(x.size > 1 and np.log10(x.max() / x.min()) >= 1.0),
                "upper_bounds": int((g["d_P_bound"] != "exact").sum()),
                "reached_g": float((g["fit_d_inf"] <= FIT_RATIO * g["d_W"]).mean()),
                "floor_median": float(g["floor"].median()) if "floor" in g else np.nan,
                "r_half_median": float(r_half.median()),
            }
        )
    return pd.DataFrame(rows)
