"""Claim 4's descriptions: restricted against unrestricted training at equal width, and
the expressivity of the restricted set (every unrestricted end point's canonical form)."""

from __future__ import annotations

import pandas as pd

from .frames import restricted_methods, trained_objective

__all__ = ["EXPRESSIVITY_RTOL", "at_least_as_good", "claim4_table", "expressivity_table"]


def claim4_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per problem, width and restricted method, where both parametrizations were trained:
    best and median trained objective of each, and whether the restricted best is at least
    as low (up to a relative 1e-3 and an absolute 1e-9, float32 training noise).

    Columns: problem, width, method, best_unrestricted, best_restricted,
    median_unrestricted, median_restricted, restricted_as_good, median_ratio (median
    restricted / median unrestricted); empty when no width was trained in both
    parametrizations. A description per method beside claim 4's paired test
    (``report.verdict_tables.paired_table``), which decides it.
    """
    j = trained_objective(df)
    method = restricted_methods(df)
    frame = df.assign(j=j, method=method)
    u = frame[method == ""].groupby(["problem", "width"])["j"].agg(["min", "median"])
    r = frame[method != ""].groupby(["problem", "width", "method"])["j"].agg(["min", "median"])
    if u.empty or r.empty:
        return pd.DataFrame()
    out = r.reset_index().merge(u.reset_index(), on=["problem", "width"], suffixes=("_r", "_u"))
    if out.empty:
        return pd.DataFrame()
    out = pd.DataFrame(
        {
            "problem": out["problem"],
            "width": out["width"],
            "method": out["method"],
            "best_unrestricted": out["min_u"],
            "best_restricted": out["min_r"],
            "median_unrestricted": out["median_u"],
            "median_restricted": out["median_r"],
        }
    ).dropna()
    out["restricted_as_good"] = at_least_as_good(out["best_restricted"], out["best_unrestricted"])
    out["median_ratio"] = out["median_restricted"] / out["median_unrestricted"]
    return out.sort_values(["problem", "width", "method"]).reset_index(drop=True)


def at_least_as_good(restricted, unrestricted):
    """Claim 4's comparison: restricted <= unrestricted up to a relative 1e-3 and an
    absolute 1e-9 (float32 training noise). Broadcasts."""
    return restricted <= unrestricted * (1 + 1e-3) + 1e-9


EXPRESSIVITY_RTOL = 1e-6  # canonical objective vs the trained one: rounding, not science


def expressivity_table(df: pd.DataFrame) -> pd.DataFrame:
    """Claim 4's expressivity, per problem and width of unrestricted end points: how many
    have a canonical form in Omega_N (``canonical_member``) whose objective on the run's
    data is at most the run's own (relative ``EXPRESSIVITY_RTOL``; the realization is the
    same, and a balanced form's penalty is at most the run's), and the largest relative
    change (canonical - trained) / |trained|. Empty without the columns (older records).

    Columns: problem, width, runs, in_omega, as_good, max_rel_change.
    """
    if "canonical_objective" not in df or "parametrization" not in df:
        return pd.DataFrame()
    u = df[df["parametrization"] == "unrestricted"]
    u = u[u["canonical_objective"].notna()]
    if u.empty:
        return pd.DataFrame()
    j = trained_objective(u)
    rel = (u["canonical_objective"] - j) / j.abs().clip(lower=1e-300)
    frame = u.assign(
        in_omega=u["canonical_member"].astype(bool),
        as_good=u["canonical_member"].astype(bool) & (rel <= EXPRESSIVITY_RTOL),
        rel=rel,
    )
    out = frame.groupby(["problem", "width"]).agg(
        runs=("rel", "size"),
        in_omega=("in_omega", "sum"),
        as_good=("as_good", "sum"),
        max_rel_change=("rel", "max"),
    )
    return out.reset_index()
