"""Verdicts on the four claims (docs/science.md), computed from a sweep's numbers.

Each verdict is "supported", "not supported" or "inconclusive", with the evidence it
rests on spelled out; the rules are written here, before any data is seen:

1. near-optimality: for every problem with a certified reference (a realizable teacher,
   or the convex optimum where it is exact) look at the widest width. Supported when the
   median gap there is <= eps for all such problems; not supported when it is > eps for
   all of them and the fitted gap exponent is >= 0 (no decay); otherwise inconclusive
   (mixed, or no certified reference at all).
2. degenerate parametrizations, and parameter-space minima that are not realization-space
   minima: both existence claims. Not supported when no unrestricted end point carries
   degenerate neurons (dead, affine on Q, duplicate or opposite; or a canonical form
   narrower than the network); supported when some does and some certified local minimum
   is spurious against what its width attains (``stats.minimum_verdicts``: another end
   point of its cell, or the width's exact optimum, better by more than eps);
   inconclusive when degenerate end points exist but no minimum is shown spurious (a gap
   to a lower bound alone is undecided, and reported as such).
3. inverse stability: supported when (a) along some raw family P1-P4 the ratio r_1/2
   grows with n (exponent > 0.25, fitted over the larger half of n), (b) along P0 the
   ratio against the uniform norm grows, (c) on Omega_N (fibre distances of canonical
   forms) r_1/2 stays bounded along every family (exponent <= 0.1), and (d) controlled
   restricted retraining (``report.retraining``) does not contradict exponent 1/2: where it
   rests on at least two networks, the 95 % bootstrap interval of p in d_P ~ d_W^p
   reaches 1/2 (p < 1/2 throughout would mean distances shrinking slower than
   d_W^(1/2)). Not supported when (c) fails; otherwise inconclusive. Seed pairs are
   reported as further evidence.
4. restricted loses nothing: the share of (problem, width) pairs where the restricted
   best objective is at least as low as the unrestricted best (relative 1e-3), for the
   default restricted method (all rows when it was not trained). Supported at >= 90 %,
   not supported below 50 %, inconclusive between; the other methods are reported.

The math: docs/science.md#the-claims-and-their-verdicts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..inverse import fit_slope
from ..stats import claim4_verdict_rows
from .retraining import retrain_exponents

__all__ = ["claim_verdicts", "classification_claim1"]

CERTIFIED = ("teacher_realizable", "convex_exact")
RETRAIN_RATE = 0.5  # the theorem's exponent: d_P <= C d_W^(1/2) on Omega_N
RETRAIN_MIN_NETWORKS = 2  # a bootstrap interval over fewer networks is no interval


def _claim1(
    cells: pd.DataFrame, rates: pd.DataFrame, eps: float, certified: tuple = CERTIFIED
) -> dict:
    """Claim 1's rule over the problems whose references are in ``certified``. A reference
    that is only a lower bound on the optimum (in ``certified`` but not in ``CERTIFIED``)
    certifies a gap <= eps (J - J* <= J - bound) but never a gap above it: such a problem
    counts for "supported" when within eps and otherwise for neither verdict."""
    if cells.empty:
        return {"verdict": "inconclusive", "evidence": "no finished runs"}
    results = []
    for (problem, par), g in cells.groupby(["problem", "parametrization"]):
        cert = g[g["reference"].isin(certified)]
        if cert.empty:
            continue
        widest = cert.loc[cert["width"].idxmax()]
        exp = rates.query("problem == @problem and parametrization == @par")["exponent"]
        exp = float(exp.iloc[0]) if len(exp) else float("nan")
        results.append(
            (
                problem,
                par,
                int(widest["width"]),
                float(widest["gap_median"]),
                exp,
                widest["reference"],
            )
        )
    if not results:
        return {
            "verdict": "inconclusive",
            "evidence": "no cell has a certified optimum (no realizable teacher, no exact "
            "convex reference): gaps are measured against the best run of each cell only",
        }
    ok = [r for r in results if r[3] <= eps]
    flat = [r for r in results if r[3] > eps and not (r[4] < 0) and r[5] in CERTIFIED]
    lines = [
        f"{p} / {par}: median gap {gap:.2e} at width {w} ({ref}; eps {eps:g}), "
        f"gap ~ width^{exp:.2f}"
        for p, par, w, gap, exp, ref in results
    ]
    if len(ok) == len(results):
        verdict = "supported"
    elif len(flat) == len(results):
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    return {
        "verdict": verdict,
        "number": f"largest median gap at the widest width {max(r[3] for r in results):.2e} "
        f"(eps {eps:g})",
        "evidence": f"{len(ok)} of {len(results)} certified problems within eps at their "
        "widest width. " + "; ".join(lines),
    }


# references that bound the optimum from below: a gap to them <= eps certifies near-optimality
LOWER_BOUND_REFERENCES = ("convex_lower_bound", "convex_relaxation_lower_bound")


def classification_claim1(cells: pd.DataFrame, rates: pd.DataFrame, eps: float, problems) -> dict:
    """Claim 1 for the classification losses (logistic, cross-entropy): the rule of claim
    1 over the cells of ``problems`` only, where a lower bound on the optimum (the
    multiclass convex relaxation, or the convex program's bound below its width) also
    certifies a gap within eps, and a gap above eps to a bound decides nothing."""
    sub = cells[cells["problem"].isin(list(problems))] if len(cells) else cells
    if sub.empty:
        return {"verdict": "inconclusive", "evidence": "no classification runs"}
    return _claim1(sub, rates, eps, certified=(*CERTIFIED, *LOWER_BOUND_REFERENCES))


def _claim2(df: pd.DataFrame, cells: pd.DataFrame) -> dict:
    u = df[df["parametrization"] == "unrestricted"] if "parametrization" in df else df
    if u.empty or "census_dead" not in u:
        return {"verdict": "inconclusive", "evidence": "no unrestricted end points"}
    shares = u[["census_dead", "census_affine", "census_duplicate", "census_opposite"]]
    degenerate = (shares.sum(axis=1) > 0) | (u["census_effective_width"] < u["width"])

    def total(col):
        return int(cells[col].sum()) if col in cells else 0

    spurious, undecided, certified = total("spurious"), total("undecided"), total("certified")
    evidence = (
        f"{int(degenerate.sum())} of {len(u)} unrestricted end points are degenerate "
        f"(mean shares: dead {shares['census_dead'].mean():.3f}, affine "
        f"{shares['census_affine'].mean():.3f}, duplicate {shares['census_duplicate'].mean():.3f},"
        f" opposite {shares['census_opposite'].mean():.3f}); of {certified} certified local "
        f"minima (both parametrizations), {spurious} are spurious (a network of the same "
        f"width attains an objective lower by more than eps), {undecided} undecided (only a "
        f"lower bound, the optimum over all widths, is below them) and "
        f"{certified - spurious - undecided} within eps of their width's optimum"
    )
    if not degenerate.any():
        verdict = "not supported"
    elif spurious:
        verdict = "supported"
    else:
        verdict = "inconclusive"
    return {
        "verdict": verdict,
        "number": f"{int(degenerate.sum())} of {len(u)} unrestricted end points degenerate; "
        f"{spurious} of {certified} certified minima spurious",
        "evidence": evidence,
    }


def _retrain_lines(retrain: pd.DataFrame) -> tuple[list[str], bool]:
    """The retraining evidence, one line per parametrization, and whether the restricted
    rows contradict exponent 1/2 (rule (d))."""
    exps = retrain_exponents(retrain)
    lines, contradicts = [], False
    for _, e in exps.iterrows():
        lines.append(
            f"retraining ({e['parametrization']}, {e['rows']} controlled rows of "
            f"{e['networks']} networks; left out: {e['excluded_fit']} not fitted, "
            f"{e['excluded_floor']} at the control's floor, {e['excluded_other']} kink or "
            f"bound): d_P ~ d_W^{e['exponent']:.2f} (95 % interval [{e['ci_low']:.2f}, "
            f"{e['ci_high']:.2f}]), median r_1/2 {e['r_half_median']:.3g}, max "
            f"{e['r_half_max']:.3g}, median floor {e['floor_median']:.2g}"
        )
        if (
            e["parametrization"] == "restricted"
            and e["networks"] >= RETRAIN_MIN_NETWORKS
            and e["ci_high"] < RETRAIN_RATE
        ):
            contradicts = True
    return lines, contradicts


def _claim3(pathology: pd.DataFrame, seed_pairs: pd.DataFrame, retrain: pd.DataFrame) -> dict:
    if pathology.empty:
        return {"verdict": "inconclusive", "evidence": "the pathology stage has not run"}
    exps = {
        fam: (
            fit_slope(g["n"], g["r_half_raw"], tail=0.5),
            fit_slope(g["n"], g["r_half_canonical"], tail=0.5),
            fit_slope(g["n"], g["r_half_raw_inf"], tail=0.5),
        )
        for fam, g in pathology.groupby("family")
    }
    raw_grows = [f for f in ("P1", "P2", "P3", "P4") if f in exps and exps[f][0] > 0.25]
    uniform_grows = "P0" in exps and exps["P0"][2] > 0.25
    bounded = all(not (e[1] > 0.1) for e in exps.values())
    lines = [
        f"{f}: r_1/2 ~ n^{e[0]:.2f} raw, n^{e[1]:.2f} on Omega_N" for f, e in sorted(exps.items())
    ]
    if "P0" in exps:
        lines.append(f"P0 against the uniform norm: r_1/2 ~ n^{exps['P0'][2]:.2f}")
    if not seed_pairs.empty:
        lines.append(
            "seed pairs (closest in W^1,inf): median r_1/2 "
            f"{seed_pairs['r_half_raw'].median():.3g} raw vs "
            f"{seed_pairs['r_half_canonical'].median():.3g} on Omega_N"
        )
    contradicts = False
    if not retrain.empty:
        more, contradicts = _retrain_lines(retrain)
        lines += more
    if contradicts:
        lines.append(
            f"restricted retraining contradicts exponent {RETRAIN_RATE:g}: its interval lies "
            "below it"
        )
    if raw_grows and uniform_grows and bounded and not contradicts:
        verdict = "supported"
    elif not bounded:
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    worst = max((e[1] for e in exps.values() if e[1] == e[1]), default=float("nan"))
    return {
        "verdict": verdict,
        "number": f"largest r_1/2 exponent on Omega_N {worst:.2f} (bounded: <= 0.1)",
        "evidence": "; ".join(lines),
    }


def _expressivity(express: pd.DataFrame | None) -> str:
    """Claim 4's first question, reported beside the verdict: can Omega_N express what the
    unrestricted runs reached?"""
    if express is None or express.empty:
        return ""
    runs, good = int(express["runs"].sum()), int(express["as_good"].sum())
    return (
        f"Expressivity: {good} of {runs} unrestricted end points have a canonical form in "
        f"Omega_N with an objective at most theirs (largest relative change "
        f"{float(express['max_rel_change'].max()):.2g}). Optimization: "
    )


def _claim4(claim4: pd.DataFrame, express: pd.DataFrame | None = None) -> dict:
    if claim4.empty:
        return {
            "verdict": "inconclusive",
            "evidence": _expressivity(express) + "no width trained in both parametrizations",
        }
    rows = claim4_verdict_rows(claim4)
    share = float(rows["restricted_as_good"].mean())
    worst = rows.loc[(rows["best_restricted"] / rows["best_unrestricted"]).idxmax()]
    verdict = "supported" if share >= 0.9 else ("not supported" if share < 0.5 else "inconclusive")
    method = f" ({worst['method']})" if "method" in rows else ""
    per_method = (
        [
            f"{m} {float(g['restricted_as_good'].mean()):.0%} of {len(g)}"
            for m, g in claim4.groupby("method")
        ]
        if "method" in claim4 and claim4["method"].nunique() > 1
        else []
    )
    return {
        "verdict": verdict,
        "number": f"restricted{method} as good at {share:.0%} of {len(rows)} (problem, width)",
        "evidence": _expressivity(express)
        + f"restricted{method} best <= unrestricted best at {share:.0%} of "
        f"{len(rows)} (problem, width) pairs; median objective ratio restricted/unrestricted "
        f"{np.nanmedian(rows['median_ratio']):.3g}; worst: {worst['problem']} width "
        f"{int(worst['width'])} ({worst['best_restricted']:.3g} vs "
        f"{worst['best_unrestricted']:.3g})"
        + (f". Per method: {'; '.join(per_method)}" if per_method else "")
        + _run_by_run(rows),
    }


def _run_by_run(rows: pd.DataFrame) -> str:
    """Beside the verdict, not in it: the comparison run by run. Where the two
    parametrizations end alike, a restricted run is as good as an unrestricted one half
    the time, and so is a best against a best: the verdict's share then sits near 50 %."""
    if "win_share" not in rows or rows["win_share"].isna().all():
        return ""
    return (
        f". Run by run: a restricted end point is as good as an unrestricted one in "
        f"{np.nanmean(rows['win_share']):.0%} of pairs (paired by seed, the same initial "
        f"realization: {np.nanmean(rows['paired_share']):.0%}; 50 % where both end alike)"
    )


def claim_verdicts(
    df: pd.DataFrame,
    cells: pd.DataFrame,
    rates: pd.DataFrame,
    claim4: pd.DataFrame,
    pathology: pd.DataFrame,
    seed_pairs: pd.DataFrame,
    retrain: pd.DataFrame,
    eps: float,
    expressivity: pd.DataFrame | None = None,
) -> list[dict]:
    """One dict per claim: number, statement, verdict, evidence.

    ``df``: load_runs rows with gaps (``stats.gap_values``); ``cells``, ``rates``,
    ``claim4``: ``stats.cell_stats``, ``stats.decay_rates`` and ``stats.claim4_table`` of
    them; ``expressivity``: ``stats.expressivity_table`` (claim 4's evidence, not its
    rule); ``pathology``, ``seed_pairs``, ``retrain``: the analysis stages' rows. Any frame
    may be empty; a claim is inconclusive when the frame it rests on is (claim 1:
    ``cells``, 2: ``df``, 3: ``pathology``, 4: ``claim4``).
    """
    statements = [
        "local minima of the regularized problem are almost optimal for large networks",
        "realizations have degenerate parametrizations; parameter-space minima need not be "
        "realization-space minima",
        "inverse stability fails in general (and for the uniform norm) but holds on Omega_N "
        "with exponent 1/2",
        "optimizing over the restricted set loses nothing",
    ]
    results = [
        _claim1(cells, rates, eps),
        _claim2(df, cells),
        _claim3(pathology, seed_pairs, retrain),
        _claim4(claim4, expressivity),
    ]
    return [
        {"claim": i + 1, "statement": s, **r}
        for i, (s, r) in enumerate(zip(statements, results, strict=True))
    ]
