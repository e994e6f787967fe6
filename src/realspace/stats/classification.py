"""Classification cells: accuracy, margins and the cross-entropy cells' bounds."""

from __future__ import annotations

import pandas as pd

from ..core.choices import CLASSIFICATION_TARGETS
from .frames import CELL

__all__ = ["classification_table"]


def classification_table(df: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per cell of the classification runs (empty if there are none): the loss ("logistic"
    at 2 classes, "cross_entropy" above), classes, weight decay, the cell's reference and
    median gap (from ``cells``, ``cell_stats``), and over seeds the median training
    accuracy, the share of runs classifying every training point correctly, and the
    median and smallest normalized margin (``targets.classification_scores``); with
    ``j_upper`` in ``df`` (``reference_frame``), the cross-entropy cells' upper bound on the
    optimum beside their lower bound ``j_star``.

    Without weight decay the loss has no attained optimum on separable data (its gaps are
    to the best run of the cell); accuracy and margin are the numbers to read there.
    """
    if df.empty or "target" not in df or "accuracy" not in df:
        return pd.DataFrame()
    c = df[df["target"].isin(CLASSIFICATION_TARGETS)]
    if c.empty:
        return pd.DataFrame()
    classes = c["n_classes"].fillna(2).astype(int) if "n_classes" in c else 2
    c = c.assign(classes=classes)
    rows = []
    for (problem, par, width), g in c.groupby(CELL, sort=True):
        m = int(g["classes"].iloc[0])
        rows.append(
            {
                "problem": problem,
                "parametrization": par,
                "width": int(width),
                "loss": "logistic" if m == 2 else "cross_entropy",
                "classes": m,
                "weight_decay": float(g["weight_decay"].iloc[0]),
                "runs": len(g),
                "accuracy_median": float(g["accuracy"].median()),
                "all_correct": float((g["accuracy"] >= 1.0).mean()),
                "margin_median": float(g["normalized_margin"].median()),
                "margin_min": float(g["normalized_margin"].min()),
            }
        )
    out = pd.DataFrame(rows)
    if len(cells):
        keep = [*CELL, "reference", "j_star", "gap_median", "within_eps"]
        out = out.merge(cells[[k for k in keep if k in cells]], on=CELL, how="left")
    if "j_upper" in c:
        upper = c.groupby(CELL, sort=True)["j_upper"].min().rename("j_upper").reset_index()
        out = out.merge(upper, on=CELL, how="left")
    return out
