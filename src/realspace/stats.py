"""Statistics of a sweep's end points (pandas in, pandas out; no tracking store here).

The input is a frame with one row per network, as ``realspace.tracking.load_runs`` returns it:
RunSpec columns (``target_label``, ``parametrization``, ``width``, ``seed``,
``weight_decay``, ...) and the end-point metrics (``loss``, ``objective``,
``certified``, ``census_*``).

A *problem* is everything but the parametrization, width and seed (target, weight
decay and any other axis the sweep varies); a *cell* is problem x parametrization x
width. Per cell (docs/science.md, "Statistics"):

- near-optimality: gap = J(end point) - J* (J the objective that was trained: the loss,
  plus the weight-decay penalty when lam > 0), J* from ``reference_optima``; median,
  90th percentile, max, share within ``eps``; per problem and parametrization a fitted
  exponent p of median gap ~ width^p;
- minima: certified local minima, each judged against what a network of its width
  attains (``minimum_verdicts``): spurious, optimal or undecided;
- the degeneracy census (means over seeds);
- claim 4: restricted vs unrestricted best and median objective at equal width.

The math: docs/science.md#statistics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .core.inverse import fit_slope
from .core.spec import (
    CLASSIFICATION_TARGETS,
    DEFAULT_TEACHER_ROWS,
    RunSpec,
    shares_data,
)
from .core.spurious import SPURIOUS_REL_LOSS, teacher_zero_loss

__all__ = [
    "PROBLEM_AXES",
    "with_problems",
    "gap_values",
    "minimum_verdicts",
    "shared_data",
    "diverged_runs",
    "EXACT_AT_WIDTH",
    "cell_stats",
    "decay_rates",
    "claim4_table",
    "at_least_as_good",
    "census_table",
    "expressivity_table",
    "best_in_cell",
    "restricted_methods",
    "with_methods",
    "specs_of",
    "reference_frame",
    "trained_objective",
    "teacher_kinds",
    "relative_losses",
    "spurious_table",
    "classification_table",
]

# axes that, besides the target label, tell problems apart when a sweep varies them (the
# label already names weight decay)
PROBLEM_AXES = ("weight_decay", "optimizer", "lr", "steps", "n_samples", "noise", "d")
CELL = ["problem", "parametrization", "width"]
CENSUS = ("dead", "affine", "duplicate", "opposite", "imbalance_mean", "effective_width")


def with_problems(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with a ``problem`` label: the target label (which names a nonzero weight
    decay) and every other axis the frame varies, e.g. ``sin wd=0.01 lr=0.001``."""
    df = df.copy()
    varying = [a for a in PROBLEM_AXES[1:] if a in df and df[a].nunique() > 1]

    def label(row):
        parts = [str(row["target_label"])]
        for a in varying:
            v = row[a]
            parts.append(f"{a}={v:g}" if isinstance(v, int | float) else f"{a}={v}")
        return " ".join(parts)

    df["problem"] = df.apply(label, axis=1) if len(df) else pd.Series(dtype=str)
    return df


def restricted_methods(df: pd.DataFrame) -> pd.Series:
    """Each row's restricted method ("" for unrestricted rows). Restricted rows stored
    before the method was a field (no value) were trained by projection."""
    par = df["parametrization"] if "parametrization" in df else pd.Series("", index=df.index)
    given = df["restricted_method"] if "restricted_method" in df else pd.Series(index=df.index)
    given = given.where(given.map(lambda v: isinstance(v, str) and v != ""), "projection")
    return given.where(par == "restricted", "")


def with_methods(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose restricted rows' ``parametrization`` names their method
    (``restricted-intrinsic``) when the frame holds more than one, so that every table
    and figure grouped by parametrization keeps the methods apart; unchanged otherwise."""
    method = restricted_methods(df)
    if method[method != ""].nunique() <= 1:
        return df
    out = df.copy()
    out["parametrization"] = df["parametrization"].where(method == "", "restricted-" + method)
    return out


def trained_objective(df: pd.DataFrame) -> pd.Series:
    """What each run minimized: the objective with weight decay, the loss without."""
    wd = df["weight_decay"] if "weight_decay" in df else pd.Series(0.0, index=df.index)
    return df["objective"].where(wd > 0, df["loss"])


def best_in_cell(df: pd.DataFrame) -> pd.Series:
    """The smallest trained objective in each run's cell, restricted methods apart (the
    fallback reference)."""
    keys = [df[c] for c in CELL] + [restricted_methods(df)]
    return trained_objective(df).groupby(keys).transform("min")


def gap_values(df: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``j_final``, ``j_star``, ``reference`` (its label) and ``gap`` columns.

    ``reference``: ``j_star`` and ``reference`` columns aligned with ``df`` (NaN j_star
    where no certified reference applies; those rows fall back to the best in the cell).
    """
    out = df.copy()
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


def diverged_runs(df: pd.DataFrame) -> pd.Series:
    """A boolean mask, one per row: the run diverged (all False without ``run_status``)."""
    if "run_status" not in df:
        return pd.Series(False, index=df.index)
    return df["run_status"].eq("diverged")


def shared_data(df: pd.DataFrame) -> pd.Series:
    """Per row, whether the seeds of its cell train on one data set (``spec.shares_data``;
    rows without the columns have the defaults: grid points, no noise)."""

    def col(name, default):
        return df[name] if name in df else pd.Series(default, index=df.index)

    shared = shares_data(col("target", ""), col("sampling", "grid"), col("noise", 0.0))
    return pd.Series(shared, index=df.index)


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


def census_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per cell: the mean census shares and effective width over seeds."""
    cols = [f"census_{k}" for k in CENSUS if f"census_{k}" in df]
    out = df.groupby(CELL)[cols].mean().reset_index()
    return out.rename(columns={c: c.removeprefix("census_") for c in cols})


def specs_of(df: pd.DataFrame) -> list:
    """The RunSpec of each row (read column-wise: a row at a time costs a millisecond,
    20 s on a sweep of 20,000 networks)."""
    fields = [f for f in RunSpec.__dataclass_fields__ if f in df]
    return [RunSpec.from_dict(r) for r in df[fields].to_dict("records")]


def reference_frame(df: pd.DataFrame, samples: int = 2000) -> pd.DataFrame:
    """``j_star`` and ``reference`` for each row from ``realspace.convex.reference_optima``
    (NaN where none applies), and ``j_upper``: for cross-entropy rows with weight decay, the
    objective the separable convex program's network attains, at widths >= that network's
    (an upper bound on the optimum there; ``convex.separable_upper_bounds``),
    else NaN."""
    from .convex import reference_optima, separable_upper_bounds

    specs = specs_of(df)
    out = pd.DataFrame(
        reference_optima(specs, samples=samples), columns=["j_star", "reference"], index=df.index
    )
    # cross-entropy: the separable program's attained objective, beside the lower bound
    # (the same solves, cached: no program runs twice)
    upper = []
    for s in specs:
        value, _, width = (
            separable_upper_bounds([s], samples)[0]
            if s.loss == "cross_entropy"
            else (np.nan, "", 0)
        )
        upper.append(value if s.width >= width else np.nan)  # attained at widths >= width
    return out.assign(j_upper=upper)


# -- the Gaussian teacher-student problem's spurious minima (realspace.core.spurious) --------
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
