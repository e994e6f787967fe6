"""Near-optimality: each run's gap to the best reference that applies, and the verdict on
each certified minimum (docs/science.md, "Statistics").

gap = J(end point) - J*, J the objective that was trained (the loss, plus the
weight-decay penalty when lam > 0), J* from ``realspace.convex`` where a program
certifies it, else the best end point of the cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .frames import (
    CELL,
    best_in_cell,
    diverged_runs,
    shared_data,
    spec_groups,
    specs_of,
    trained_objective,
)

__all__ = ["EXACT_AT_WIDTH", "LOWER_BOUNDS", "gap_values", "minimum_verdicts", "reference_frame"]


def gap_values(df: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``j_final``, ``j_star``, ``reference`` (its label) and ``gap`` columns.

    ``reference``: ``j_star`` and ``reference`` columns aligned with ``df`` (NaN j_star
    where no certified reference applies; those rows fall back to the best in the cell).
    """
    out = df.copy(deep=False)  # whole columns added, none written into
    out["j_final"] = trained_objective(df)
    fallback = best_in_cell(df)
    have = reference["j_star"].notna()
    out["j_star"] = reference["j_star"].where(have, fallback)
    out["reference"] = reference["reference"].where(have, "best_in_cell")
    out["gap"] = out["j_final"] - out["j_star"]
    if "j_upper" in reference:  # an attained objective above the optimum, where known
        out["j_upper"] = reference["j_upper"]
    return out


# references whose J* is the optimum at the run's own width (attained by a network of it)
EXACT_AT_WIDTH = ("teacher_realizable", "convex_exact")


# references that bound the optimum at the run's width from below (the convex relaxation
# of the multiclass cross-entropy bounds it at every width, and is never the optimum)
LOWER_BOUNDS = (*EXACT_AT_WIDTH, "convex_lower_bound", "convex_relaxation_lower_bound")


def minimum_verdicts(df: pd.DataFrame, eps: float) -> pd.Series:
    """Per row of ``gap_values``: "" unless a certified local minimum, else

    - "spurious": a network of the same cell (width, problem, parametrization) is better
      by more than eps: another end point of the cell (not diverged; only where the
      cell's seeds share one data set, ``shared_data``), or J* where it is the optimum
      at that width (``EXACT_AT_WIDTH``, on the run's own data);
    - "optimal": not spurious, and within eps of a lower bound on the width's optimum
      (``LOWER_BOUNDS``): within eps of the optimum itself;
    - "undecided": neither; a gap to a lower bound alone (``convex_lower_bound``, the
      optimum over all widths; ``convex_relaxation_lower_bound``, below even that) or to
      nothing cannot tell a spurious minimum from the
      width's own optimum.
    """
    diverged = diverged_runs(df)
    # a diverged end point is never a certified minimum, whatever its numbers say
    certified = df["certified"].astype(bool) & ~diverged
    j = df["j_final"].where(np.isfinite(df["j_final"]) & ~diverged)
    # another seed's objective is a value on another data set unless the cell shares one:
    # then only J* (computed on the run's own data) can show a minimum spurious
    cell_best = j.groupby([df[c] for c in CELL]).transform("min").where(shared_data(df))
    exact = df["reference"].isin(EXACT_AT_WIDTH)
    attainable = np.fmin(cell_best, df["j_star"].where(exact))
    bounded = df["reference"].isin(LOWER_BOUNDS)
    spurious = df["j_final"] - attainable > eps
    optimal = ~spurious & bounded & (df["j_final"] - df["j_star"] <= eps)
    verdict = np.where(spurious, "spurious", np.where(optimal, "optimal", "undecided"))
    return pd.Series(np.where(certified, verdict, ""), index=df.index)


def reference_frame(df: pd.DataFrame, samples: int = 2000) -> pd.DataFrame:
    """``j_star`` and ``reference`` for each row from ``realspace.convex.reference_optima``
    (NaN where none applies), and ``j_upper``: for cross-entropy rows with weight decay, the
    objective the separable convex program's network attains, at widths >= that network's
    (an upper bound on the optimum there; ``convex.separable_upper_bounds``),
    else NaN."""
    from ..convex import reference_optima, separable_upper_bounds

    j_star = np.full(len(df), np.nan)
    label = np.full(len(df), "", dtype=object)
    upper = np.full(len(df), np.nan)
    codes, first = spec_groups(df)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(first) + 1))
    for g, i in enumerate(first):
        rows = order[bounds[g] : bounds[g + 1]]
        [spec] = specs_of(df.iloc[[i]])
        if spec.weight_decay == 0:
            # without weight decay J* reads the target and the widths, never the data,
            # and no upper bound applies: one answer serves every seed of the cell (no
            # RunSpec per network)
            [(j_star[rows], label[rows])] = reference_optima([spec], samples=samples)
            continue
        specs = specs_of(df.iloc[rows])
        for r, (j, lab) in zip(rows, reference_optima(specs, samples=samples), strict=True):
            j_star[r], label[r] = j, lab
        # cross-entropy: the separable program's attained objective, beside the lower
        # bound (the same solves, cached: no program runs twice)
        for r, s in zip(rows, specs, strict=True):
            if s.loss == "cross_entropy":
                value, _, width = separable_upper_bounds([s], samples)[0]
                upper[r] = value if s.width >= width else np.nan  # attained at widths >= width
    return pd.DataFrame({"j_star": j_star, "reference": label, "j_upper": upper}, index=df.index)
