"""The Gaussian teacher-student problem's spurious minima, by the rule of
``realspace.core.spurious``: shares per problem and student width."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.choices import DEFAULT_TEACHER_ROWS
from ..core.spurious import SPURIOUS_REL_LOSS, teacher_zero_loss

__all__ = ["relative_losses", "spurious_table", "teacher_kinds"]


def teacher_kinds(df: pd.DataFrame) -> pd.Series:
    """Each row's teacher rows; a row written without the column has the default."""
    given = df["teacher_rows"] if "teacher_rows" in df else pd.Series(index=df.index)
    return given.where(given.map(lambda v: isinstance(v, str) and v != ""), DEFAULT_TEACHER_ROWS)


def relative_losses(df: pd.DataFrame) -> pd.Series:
    """L(W) / L(0) of each gaussian-target row of ``df`` (columns: the spec fields
    target, teacher_width, d, teacher_seed, optionally teacher_rows, and ``loss``)."""
    kind = teacher_kinds(df)
    zero = [
        teacher_zero_loss(r, int(k), int(d), int(s))
        for r, k, d, s in zip(kind, df["teacher_width"], df["d"], df["teacher_seed"], strict=True)
    ]
    return df["loss"] / np.asarray(zero, dtype=float)


def spurious_table(df: pd.DataFrame, rel_threshold: float = SPURIOUS_REL_LOSS) -> pd.DataFrame:
    """Per problem and student width n, the spurious share among certified minima of the
    gaussian-target runs without weight decay (empty if there are none), by the rule of
    ``realspace.core.spurious``: certified and L > ``rel_threshold`` L(0). With m certified runs
    and s spurious, the share p = s / m and its binomial standard error sqrt(p (1 - p) / m).

    ``df``: one row per run, with a ``problem`` label (``stats.with_problems``), the spec
    fields (target, teacher_width, teacher_seed, d, width, weight_decay; teacher_rows where
    written), ``loss``, ``certified`` and optionally ``run_status`` (a diverged run is never
    a certified minimum).

    Columns: problem, teacher_rows, k, n, d, runs, certified, spurious, spurious_share,
    spurious_se (sqrt(p (1 - p) / certified)), max_rel_loss_below (the largest certified
    L / L(0) at or below ``rel_threshold``), min_rel_loss_above (the smallest above it).
    """
    wd = df["weight_decay"] if "weight_decay" in df else pd.Series(0.0, index=df.index)
    g = df[(df["target"] == "gaussian") & (wd == 0)]
    if g.empty:
        return pd.DataFrame()
    diverged = g["run_status"].eq("diverged") if "run_status" in g else False
    g = g.assign(
        teacher_kind=teacher_kinds(g),
        rel_loss=relative_losses(g),
        cert=g["certified"].astype(bool) & ~diverged,
    )
    g = g.assign(bad=g["cert"] & (g["rel_loss"] > rel_threshold))
    rows = []
    keys = ["problem", "teacher_kind", "teacher_width", "width", "d"]
    for (problem, kind, k, n, d), cell in g.groupby(keys, sort=True):
        m, s = int(cell["cert"].sum()), int(cell["bad"].sum())
        p = s / m if m else np.nan
        below = cell.loc[cell["cert"] & ~cell["bad"], "rel_loss"]
        above = cell.loc[cell["bad"], "rel_loss"]
        rows.append(
            {
                "problem": problem,
                "teacher_rows": kind,
                "k": int(k),
                "n": int(n),
                "d": int(d),
                "runs": len(cell),
                "certified": m,
                "spurious": s,
                "spurious_share": p,
                "spurious_se": float(np.sqrt(p * (1 - p) / m)) if m else np.nan,
                "max_rel_loss_below": below.max() if len(below) else np.nan,
                "min_rel_loss_above": above.min() if len(above) else np.nan,
            }
        )
    order = ["teacher_rows", "k", "n", "problem"]  # k = 6 before k = 10, unlike the labels
    return pd.DataFrame(rows).sort_values(order).reset_index(drop=True)
