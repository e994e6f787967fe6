"""Statistics of the retraining experiment (pandas in, pandas out): which rows measure
inverse stability, and the exponent of distance travelled against d_W with a bootstrap
confidence interval over networks.

A row of ``train.retrain.retrain_table`` enters the exponent only when it is *controlled*:

- ``kink`` rows stay out: moving a kink costs |c a| in W^{1,inf} whatever delta is, so
  their d_W does not follow delta;
- the travel distance must be exact (``d_P_bound``), not an upper bound;
- *fit*: retraining reached its target, ``fit_d_inf <= FIT_RATIO d_W``; otherwise the end
  point is not a parametrization of g and its distance measures something else;
- *floor*: the distance travelled exceeds ``FLOOR_RATIO`` times the control's (retraining
  toward R(Gamma) itself from the same start): below, it is optimizer noise.

The math: docs/science.md#inverse-stability-experiments.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..inverse import bootstrap_slope

__all__ = [
    "FIT_RATIO",
    "FLOOR_RATIO",
    "BOOTSTRAP_SAMPLES",
    "exclusion",
    "retrain_exponents",
]

FIT_RATIO = 0.1  # "well below": the fit error at most a tenth of the distance to fit
FLOOR_RATIO = 2.0  # travel at least twice the control's to count as a measurement
BOOTSTRAP_SAMPLES = 2000  # resamples of the networks; seed 0: the same interval every time


def exclusion(retrain: pd.DataFrame) -> pd.Series:
    """Per row, why it stays out of the exponent ("" when it is controlled): ``kink``,
    ``bound`` (an upper-bound distance), ``no control`` (rows stored without a control),
    ``fit`` or ``floor``, the first that applies."""
    if "floor" not in retrain or "fit_d_inf" not in retrain:
        return pd.Series("no control", index=retrain.index, dtype=object)
    out = pd.Series("", index=retrain.index, dtype=object)
    out = out.mask(retrain["d_P"] <= FLOOR_RATIO * retrain["floor"], "floor")
    out = out.mask(~(retrain["fit_d_inf"] <= FIT_RATIO * retrain["d_W"]), "fit")
    out = out.mask(retrain["d_P_bound"] != "exact", "bound")
    return out.mask(retrain["kind"] == "kink", "kink")


def retrain_exponents(retrain: pd.DataFrame) -> pd.DataFrame:
    """Per parametrization: the exponent p of d_P ~ d_W^p over the controlled rows
    (``fit_slope``, least squares in log-log), its 95 % bootstrap interval over networks
    (``bootstrap_slope``, ``BOOTSTRAP_SAMPLES`` resamples, seed 0), the networks and rows
    it rests on, the rows left out by reason, and the median floor and r_1/2 of the
    controlled rows.

    Columns: parametrization, networks, rows, exponent, ci_low, ci_high, floor_median,
    r_half_median, r_half_max, excluded_fit, excluded_floor, excluded_other.
    """
    if retrain.empty:
        return pd.DataFrame()
    why = exclusion(retrain)
    network = retrain["network"] if "network" in retrain else retrain["width"].astype(str)
    rows = []
    for par, g in retrain.groupby("parametrization"):
        keep = g[why.loc[g.index] == ""]
        p, lo, hi = bootstrap_slope(
            keep["d_W"], keep["d_P"], network.loc[keep.index], BOOTSTRAP_SAMPLES, seed=0
        )
        reason = why.loc[g.index]
        rows.append(
            {
                "parametrization": par,
                "networks": int(network.loc[keep.index].nunique()),
                "rows": len(keep),
                "exponent": p,
                "ci_low": lo,
                "ci_high": hi,
                "floor_median": float(g["floor"].median()) if "floor" in g else np.nan,
                "r_half_median": float(keep["r_half"].median()) if len(keep) else np.nan,
                "r_half_max": float(keep["r_half"].max()) if len(keep) else np.nan,
                "excluded_fit": int((reason == "fit").sum()),
                "excluded_floor": int((reason == "floor").sum()),
                "excluded_other": int(reason.isin(["kink", "bound", "no control"]).sum()),
            }
        )
    return pd.DataFrame(rows)
