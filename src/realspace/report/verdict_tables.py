"""The tables claims 1 and 4 are decided on (pandas in, pandas out), from ``gap_values`` rows.

- ``claim1_table``: the regularized problem's near-optimality, per problem,
  parametrization and width of weight-decay cells whose reference can decide (the exact
  convex optimum, or a lower bound, which certifies a gap within eps and nothing above):
  converged end points only (float64 gradient norm within the certificate's tolerance),
  their 90th percentile gap, the share within eps with its Clopper-Pearson interval and
  the share above 10 eps.
- ``paired_table``: claim 4's paired comparison per problem and width, restricted
  (default method) against unrestricted runs of the same seed (the same initial
  realization): the median paired difference of gaps (the objective ratio where no
  reference exists) with distribution-free one-sided 95 % bounds
  (``quantiles.median_bounds``), against the non-inferiority margin. O(n log n) per cell.

The math: docs/science.md#the-claims-and-their-verdicts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.choices import DEFAULT_RESTRICTED_METHOD
from ..stats import diverged_runs, restricted_methods
from ..stats.quantiles import median_bounds

__all__ = [
    "CONVERGED_GRAD",
    "DECIDING",
    "RATIO_MARGIN",
    "MIN_PAIRS",
    "claim1_table",
    "paired_table",
    "default_method_rows",
]

CONVERGED_GRAD = 1e-6  # the certificate's gradient tolerance (train.certify's tol)
# references that decide claim 1 on a weight-decay cell: the exact optimum, and lower
# bounds (within eps of a bound is within eps of the optimum; above it decides nothing)
DECIDING = ("convex_exact", "convex_lower_bound", "convex_relaxation_lower_bound")
RATIO_MARGIN = 2.0  # claim 4's margin on objective ratios, where no reference exists
MIN_PAIRS = 16  # claim 4: pairs per (problem, width) for "supported"


def default_method_rows(df: pd.DataFrame) -> pd.Series:
    """Mask of the restricted rows claims 1 and 4 rest on: per (problem, width), the rows
    of the one restricted method trained there (a ``by_width`` sweep trains one method per
    width), or of the default method where several were."""
    method = restricted_methods(df)
    restricted = method != ""
    keys = [df["problem"], df["width"]] if "problem" in df else [df["width"]]
    several = method.where(restricted).groupby(keys).transform("nunique") > 1
    return restricted & (~several | (method == DEFAULT_RESTRICTED_METHOD))


def _share_interval(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return np.nan, np.nan
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95)
    return float(ci.low), float(ci.high)


def claim1_table(df: pd.DataFrame, eps: float) -> pd.DataFrame:
    """Per (problem, parametrization, width) of weight-decay rows with a ``DECIDING``
    reference: runs, converged (grad_norm <= CONVERGED_GRAD, not diverged), the reference,
    the converged runs' gap_p90, within_eps with its 95 % interval (within_lo, within_hi),
    above_10eps (share of converged with gap > 10 eps), median_grad_norm (of all runs:
    what a stalled optimizer leaves) and near_kink (share with a sample on a kink, where
    the one-sided gradient of a minimum need not vanish). Restricted rows are those of
    ``default_method_rows``; the parametrization column says "restricted" or
    "unrestricted"."""
    if df.empty or "weight_decay" not in df:
        return pd.DataFrame()
    keep = (df["weight_decay"] > 0) & df["reference"].isin(DECIDING)
    restricted = default_method_rows(df)
    keep &= restricted | (restricted_methods(df) == "")
    frame = df[keep]
    if frame.empty:
        return pd.DataFrame()
    diverged = diverged_runs(frame)
    converged = (frame["grad_norm"] <= CONVERGED_GRAD) & ~diverged
    frame = frame.assign(
        converged=converged, par=np.where(restricted[keep], "restricted", "unrestricted")
    )
    rows = []
    for (problem, par, width), g in frame.groupby(["problem", "par", "width"]):
        c = g[g["converged"]]
        within = int((c["gap"] <= eps).sum())
        lo, hi = _share_interval(within, len(c))
        rows.append(
            {
                "problem": problem,
                "parametrization": par,
                "width": int(width),
                "reference": "+".join(sorted(set(g["reference"]))),
                "runs": len(g),
                "converged": len(c),
                "gap_p90": float(c["gap"].quantile(0.9)) if len(c) else np.nan,
                "within_eps": within / len(c) if len(c) else np.nan,
                "within_lo": lo,
                "within_hi": hi,
                "above_10eps": float((c["gap"] > 10 * eps).mean()) if len(c) else np.nan,
                "median_grad_norm": float(g["grad_norm"].median()),
                # a minimum with a sample on a kink: its one-sided gradient need not vanish
                "near_kink": float(g["near_kink"].astype(bool).mean())
                if "near_kink" in g
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def paired_table(df: pd.DataFrame, eps: float) -> pd.DataFrame:
    """Per (problem, width) trained both ways: restricted (``default_method_rows``) and
    unrestricted runs paired by seed. ``scale`` "gap" (both have a reference other than
    best_in_cell: difference gap_r - gap_u, margin eps) or "ratio" (J_r / J_u, margin
    ``RATIO_MARGIN``); pairs, median, lower and upper (one-sided 95 % bounds of the
    median), margin, non_inferior (upper <= margin), unrestricted_better (lower >
    margin), and linear_term (every unrestricted run carries the restricted model's
    free linear term: equal function classes). Each run enters with its trained
    objective (``objective_before_polish`` where a polish ran: claim 4 asks what training
    over Omega_N finds); a diverged run enters as +inf, losing its pair."""
    if df.empty or "seed" not in df:
        return pd.DataFrame()
    restricted = default_method_rows(df)
    unrestricted = restricted_methods(df) == ""
    # the trained end points: where a polish ran, its start (training over Omega_N is what
    # claim 4 compares; the polish optimizes a restricted run's raw parameters)
    before = df["objective_before_polish"] if "objective_before_polish" in df else np.nan
    trained = pd.Series(before, index=df.index).where(lambda v: np.isfinite(v), df["j_final"])
    diverged = diverged_runs(df)
    frame = df.assign(
        j_final=trained.where(~diverged, np.inf),  # a diverged run loses its pair
        gap=(trained - (df["j_final"] - df["gap"])).where(~diverged, np.inf),
    )
    cols = ["problem", "width", "seed", "j_final", "gap", "reference"]
    linear = df["linear_term"] if "linear_term" in df else pd.Series(False, index=df.index)
    r = frame.loc[restricted, cols]
    u = frame.loc[unrestricted, cols].assign(linear=linear[unrestricted].eq(True))
    both = r.merge(u, on=["problem", "width", "seed"], suffixes=("_r", "_u"))
    rows = []
    for (problem, width), g in both.groupby(["problem", "width"]):
        referenced = (g["reference_r"] != "best_in_cell") & (g["reference_u"] != "best_in_cell")
        if referenced.all():
            scale, margin = "gap", eps
            diff = (g["gap_r"] - g["gap_u"]).to_numpy(float)
        else:
            scale, margin = "ratio", RATIO_MARGIN
            with np.errstate(divide="ignore", invalid="ignore"):
                diff = (g["j_final_r"] / g["j_final_u"]).to_numpy(float)
        lo, hi = median_bounds(diff)
        rows.append(
            {
                "problem": problem,
                "width": int(width),
                "scale": scale,
                "pairs": int((~np.isnan(diff)).sum()),  # inf - inf and 0 / 0 decide nothing
                "median": float(np.nanmedian(diff)),
                "lower": lo,
                "upper": hi,
                "margin": margin,
                "non_inferior": bool(hi <= margin),
                "unrestricted_better": bool(lo > margin),
                "linear_term": bool(g["linear"].all()),
            }
        )
    return pd.DataFrame(rows)
