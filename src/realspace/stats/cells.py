"""Per cell and per problem: gap quantiles, minima counts, decay exponents, the census."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.inverse import fit_slope
from .frames import CELL, CENSUS
from .gaps import minimum_verdicts

__all__ = ["cell_stats", "census_table", "decay_rates"]


def cell_stats(df: pd.DataFrame, eps: float) -> pd.DataFrame:
    """Per cell: runs, gap median / p90 / max, share within eps, certified minima and
    their verdicts (``minimum_verdicts``: ``spurious``, ``undecided``; ``spurious_share``
    = spurious / certified), and the reference used (several labels joined by '+')."""
    verdicts = minimum_verdicts(df, eps)

    def agg(g):
        gap = g["gap"]
        v = verdicts.loc[g.index]
        cert = v != ""
        return pd.Series(
            {
                "runs": len(g),
                "j_star": g["j_star"].min(),
                "reference": "+".join(sorted(set(g["reference"]))),
                "gap_p10": gap.quantile(0.1),
                "gap_median": gap.median(),
                "gap_p90": gap.quantile(0.9),
                "gap_max": gap.max(),
                "within_eps": float((gap <= eps).mean()),
                "best": g["j_final"].min(),
                "median": g["j_final"].median(),
                "certified": int(cert.sum()),
                "spurious": int((v == "spurious").sum()),
                "undecided": int((v == "undecided").sum()),
                "spurious_share": float((v == "spurious").sum() / cert.sum())
                if cert.sum()
                else np.nan,
            }
        )

    return df.groupby(CELL, sort=True).apply(agg, include_groups=False).reset_index()


def decay_rates(cells: pd.DataFrame) -> pd.DataFrame:
    """Per problem and parametrization: the exponent p of median gap ~ width^p (least
    squares in log-log over widths with a positive median gap and a reference other than
    the best in the cell, whose gaps measure seed spread, not optimality) and the widths
    used."""
    rows = []
    for (problem, par), g in cells.groupby(["problem", "parametrization"]):
        pos = g[(g["gap_median"] > 0) & ~g["reference"].str.contains("best_in_cell")]
        rows.append(
            {
                "problem": problem,
                "parametrization": par,
                "exponent": fit_slope(pos["width"], pos["gap_median"]),
                "widths_fitted": len(pos),
                "widest": int(g["width"].max()),
                "gap_median_widest": float(g.loc[g["width"].idxmax(), "gap_median"]),
            }
        )
    return pd.DataFrame(rows)


def census_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per cell: the mean census shares and effective width over seeds."""
    cols = [f"census_{k}" for k in CENSUS if f"census_{k}" in df]
    out = df.groupby(CELL)[cols].mean().reset_index()
    return out.rename(columns={c: c.removeprefix("census_") for c in cols})
