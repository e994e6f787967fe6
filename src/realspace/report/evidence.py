"""Everything the report states, computed once: the statistics of the end points
(``realspace.stats``), the analysis stages' tables, their summaries and the claim
verdicts (``report.claims``), gathered in one ``Evidence`` object that the sections,
the figures and the metrics read."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .. import stats
from ..core.inverse import fit_slope
from .claims import claim_verdicts, classification_claim1
from .retraining import FIT_RATIO, retrain_exponents
from .stability import stability_exponents
from .verdict_tables import claim1_table, paired_table
from .witnesses import witness_rows, witness_table

__all__ = ["Evidence", "collect_evidence"]


# eq=False: DataFrames do not compare to one bool, so neither would two Evidence objects
@dataclass(frozen=True, eq=False)
class Evidence:
    """The computed tables of one report. Every frame is empty when its input is."""

    runs: pd.DataFrame  # load_runs rows with ``problem``, ``j_star``, ``reference``, ``gap``
    eps: float  # near-optimality threshold: gap <= eps
    planned: int | None  # networks the sweep planned (None: unknown)
    cells: pd.DataFrame  # stats.cell_stats: gap quantiles and minima per cell
    rates: pd.DataFrame  # stats.decay_rates: exponent p of median gap ~ width^p
    claim4: pd.DataFrame  # stats.claim4_table: restricted vs unrestricted at equal width
    expressivity: pd.DataFrame  # stats.expressivity_table: canonical forms of unrestricted
    census: pd.DataFrame  # stats.census_table: mean degeneracy shares per cell
    pathology: pd.DataFrame  # pathology stage rows: one per (family, n)
    seed_pairs: pd.DataFrame  # seed_pairs stage rows: the closest pairs of each cell
    retrain: pd.DataFrame  # retrain stage rows: one per retrained network
    pathology_exponents: pd.DataFrame  # per family: fitted exponents of the ratios
    seed_pair_summary: pd.DataFrame  # describe() of the seed-pair columns
    retrain_summary: pd.DataFrame  # medians per (parametrization, kind, delta)
    retrain_exponents: pd.DataFrame  # retraining.retrain_exponents: per kind, with CI
    verdicts: list[dict]  # claim_verdicts: one dict per claim
    # claim 1: verdict_tables.claim1_table (regularized cells with a deciding reference)
    near_optimality: pd.DataFrame = field(default_factory=pd.DataFrame)
    # claim 4: verdict_tables.paired_table (restricted vs unrestricted, paired by seed)
    paired: pd.DataFrame = field(default_factory=pd.DataFrame)
    # claim 2: witnesses.witness_rows (one per unrestricted end point) and per cell
    witnesses: pd.DataFrame = field(default_factory=pd.DataFrame)
    witness_cells: pd.DataFrame = field(default_factory=pd.DataFrame)
    # claim 3: stability stage rows and stability.stability_exponents of them
    stability: pd.DataFrame = field(default_factory=pd.DataFrame)
    stability_exponents: pd.DataFrame = field(default_factory=pd.DataFrame)
    # stats.spurious_table: spurious share per (teacher, k, n) of the gaussian runs
    spurious: pd.DataFrame = field(default_factory=pd.DataFrame)
    # stats.classification_table and claim 1's verdict over the classification problems
    classification: pd.DataFrame = field(default_factory=pd.DataFrame)
    classification_verdict: dict = field(default_factory=dict)


def collect_evidence(
    runs: pd.DataFrame,
    stages: dict[str, list[dict]],
    eps: float,
    planned: int | None = None,
    reference: pd.DataFrame | None = None,
) -> Evidence:
    """The statistics of ``runs`` (load_runs rows) and ``stages`` (analysis rows by stage)
    with their verdicts; ``reference``: J* and its label per row (default:
    ``stats.reference_frame``)."""
    df = stats.with_problems(runs) if len(runs) else runs
    if len(df):
        ref = reference if reference is not None else stats.reference_frame(df)
        df = stats.gap_values(df, ref)
        apart = stats.with_methods(df)  # restricted methods in cells of their own
        cells = stats.cell_stats(apart, eps)
        rates = stats.decay_rates(cells)
        claim4 = stats.claim4_table(df)
        expressivity = stats.expressivity_table(df)
        census = stats.census_table(apart)
        near = claim1_table(df, eps)
        paired = paired_table(df, eps)
    else:
        cells = rates = claim4 = census = expressivity = near = paired = pd.DataFrame()
    classification = stats.classification_table(df, cells) if len(df) else pd.DataFrame()
    pathology = pd.DataFrame(stages.get("pathology", []))
    seed_pairs = pd.DataFrame(stages.get("seed_pairs", []))
    retrain = pd.DataFrame(stages.get("retrain", []))
    stability = pd.DataFrame(stages.get("stability", []))
    witnesses = witness_rows(df, pd.DataFrame(stages.get("witness", []))) if len(df) else df
    exponents = stability_exponents(stability)
    travel = retrain_exponents(retrain)
    verdicts = claim_verdicts(
        near_optimality=near,
        witnesses=witnesses,
        stability=exponents,
        retrain=travel,
        paired=paired,
        expressivity=expressivity,
        eps=eps,
    )
    return Evidence(
        runs=df,
        eps=eps,
        planned=planned,
        cells=cells,
        rates=rates,
        claim4=claim4,
        expressivity=expressivity,
        census=census,
        pathology=pathology,
        seed_pairs=seed_pairs,
        retrain=retrain,
        pathology_exponents=pathology_exponents(pathology),
        seed_pair_summary=seed_pair_summary(seed_pairs),
        retrain_summary=retrain_summary(retrain),
        retrain_exponents=travel,
        verdicts=verdicts,
        witnesses=witnesses,
        witness_cells=witness_table(witnesses),
        stability=stability,
        stability_exponents=exponents,
        spurious=stats.spurious_table(df) if len(df) else pd.DataFrame(),
        classification=classification,
        classification_verdict=classification_claim1(near, eps, set(classification["problem"]))
        if len(classification)
        else {},
        near_optimality=near,
        paired=paired,
    )


def pathology_exponents(pathology: pd.DataFrame) -> pd.DataFrame:
    """Per family P0-P4: exponents p of the ratios ~ n^p, fitted over the larger half of
    n, and the ratios at the largest n."""
    if pathology.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        [
            {
                "family": family,
                "r_half_raw ~ n^p": fit_slope(g["n"], g["r_half_raw"], tail=0.5),
                "r_half_Omega ~ n^p": fit_slope(g["n"], g["r_half_canonical"], tail=0.5),
                "r_one_raw ~ n^p": fit_slope(g["n"], g["r_one_raw"], tail=0.5),
                "r_half_raw(d_inf) ~ n^p": fit_slope(g["n"], g["r_half_raw_inf"], tail=0.5),
                "r_half_raw at max n": g.loc[g["n"].idxmax(), "r_half_raw"],
                "r_half_Omega at max n": g.loc[g["n"].idxmax(), "r_half_canonical"],
            }
            for family, g in pathology.groupby("family")
        ]
    )


def seed_pair_summary(seed_pairs: pd.DataFrame) -> pd.DataFrame:
    """count, mean, std and quantiles of every seed-pair column, one row per column."""
    if seed_pairs.empty:
        return pd.DataFrame()
    return seed_pairs.describe().T.reset_index().rename(columns={"index": "column"})


def retrain_summary(retrain: pd.DataFrame) -> pd.DataFrame:
    """Median d_W (to g), d_W_travel (start to end), d_P, the control's floor beside it and
    the fit error per (parametrization, perturbation kind, delta), with the rows and how
    many reached g (``fit_d_inf <= FIT_RATIO d_W``)."""
    if retrain.empty:
        return pd.DataFrame()
    columns = [
        c for c in ("d_W", "d_W_travel", "d_P", "floor", "fit_d_inf", "r_half") if c in retrain
    ]
    frame = retrain.assign(reached_g=retrain["fit_d_inf"] <= FIT_RATIO * retrain["d_W"])
    keys = ["parametrization", "kind", "delta"]
    out = frame.groupby(keys)[columns].median()
    out["rows"] = frame.groupby(keys).size()
    out["reached_g"] = frame.groupby(keys)["reached_g"].sum()
    return out.reset_index()
