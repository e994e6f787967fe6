"""Verdicts on the four claims (docs/science.md), computed from a sweep's numbers.

Each verdict is "supported", "not supported" or "inconclusive", with the evidence it
rests on spelled out; the rules are written here, before any data is seen:

1. near-optimality: for every problem with a certified reference (a realizable teacher,
   or the convex optimum where it is exact) look at the widest width. Supported when the
   median gap there is <= eps for all such problems; not supported when it is > eps for
   all of them and the fitted gap exponent is >= 0 (no decay); otherwise inconclusive
   (mixed, or no certified reference at all).
2. a parameter-space minimum need not be a realization-space minimum: supported by one
   verified *witness* (``report.witnesses``: a certified unrestricted minimum, no sample
   on a kink, with a free neuron whose slot, given a new balanced neuron, lowers J at a
   positive first-order rate, checked by construction at g = 1e-2 .. 1e-6); not
   supported when certified unrestricted minima exist and none has a free neuron with a
   positive rate; otherwise inconclusive. Spurious (non-global) minima are another
   statement, reported apart.
3. inverse stability, on trained networks (``report.stability``): per perturbation kind,
   the exponent p of the exact fibre distance ~ d_W^p with a bootstrap interval over
   networks. Holds on Omega_N: every kind's interval reaches 1/2; sharp: some kind's
   interval lies at or below 0.6; fails in general: the lower bound for unrestricted end
   points with a free neuron has an interval below 1/2. Supported: all three; not
   supported: some restricted kind's interval lies wholly below 1/2; otherwise
   inconclusive. The pathology fixtures check the distances and decide nothing;
   retraining is reported beside the verdict.
4. restricted loses nothing: the share of (problem, width) pairs where the restricted
   best objective is at least as low as the unrestricted best (relative 1e-3), for the
   default restricted method (all rows when it was not trained). Supported at >= 90 %,
   not supported below 50 %, inconclusive between; the other methods are reported.

The math: docs/science.md#the-claims-and-their-verdicts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import claim4_verdict_rows
from .witnesses import best_witness

__all__ = ["claim_verdicts", "classification_claim1"]

CERTIFIED = ("teacher_realizable", "convex_exact")


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


def _claim2(witnesses: pd.DataFrame) -> dict:
    """Claim 2 on ``witness_rows``: supported by one verified witness; not supported when
    certified unrestricted minima exist and none has a free neuron with a positive rate;
    otherwise (no minimum, or descents whose construction did not verify) inconclusive."""
    if witnesses.empty:
        return {"verdict": "inconclusive", "evidence": "the witness stage has not run"}
    minima = witnesses[witnesses["minimum"]]
    verified = minima[minima["witness"]]
    descending = minima[minima["descends"]]
    free = int((minima["free_neurons"] > 0).sum())
    counts = (
        f"{len(verified)} of {len(minima)} certified unrestricted minima (of "
        f"{len(witnesses)} end points) are verified witnesses"
    )
    evidence = (
        f"{counts}; {free} minima have a free neuron, {len(descending)} with a positive "
        "realization-space descent rate at their width"
    )
    best = best_witness(witnesses)
    if best is not None:
        best_text = (
            f"best: {best['problem']} width {int(best['width'])} seed {int(best['seed'])}, "
            f"rate {best['descent_rate']:.3g} ({best['rate_bound']}), C {best['witness_C']:.3g}"
        )
        evidence += f"; {best_text}: J falls at every g in 1e-2 .. 1e-6 while the "
        evidence += "realization moves by at most C g"
        return {"verdict": "supported", "number": f"{counts}; {best_text}", "evidence": evidence}
    if minima.empty:
        return {
            "verdict": "inconclusive",
            "number": counts,
            "evidence": evidence + ": no certified unrestricted minimum to test",
        }
    if descending.empty:
        return {
            "verdict": "not supported",
            "number": counts,
            "evidence": evidence + ": every certified minimum is a realization-space "
            "minimum as far as a free neuron can tell",
        }
    return {
        "verdict": "inconclusive",
        "number": counts,
        "evidence": evidence + ", none verified by construction",
    }


# claim 3: the theorem's exponent, and the float slack of a fit that should give it exactly
STABILITY_RATE = 0.5
RATE_SLACK = 0.02
SHARP_MARGIN = 0.1  # sharp: some kind's interval at or below 1/2 + this
MIN_NETWORKS = 2  # a bootstrap interval over fewer networks is no interval


def _two(v: float) -> str:
    return f"{round(v, 2) + 0.0:.2f}"  # + 0.0: no "-0.00" for a fit that is 0 up to rounding


def _interval(e) -> str:
    return f"{_two(e['exponent'])} [{_two(e['ci_low'])}, {_two(e['ci_high'])}]"


def _claim3(stability: pd.DataFrame, retrain: pd.DataFrame) -> dict:
    """Claim 3 on ``stability_exponents`` (and ``retrain_exponents``, reported only).

    On Omega_N (restricted rows; kinds fitted over a decade of d_W, at least
    ``MIN_NETWORKS`` networks): *holds* when every kind's interval reaches 1/2
    (``ci_high >= 1/2 - RATE_SLACK``), *sharp* when some kind's lies at or below
    1/2 + ``SHARP_MARGIN``; *fails in general* when the unrestricted lower bound's interval
    lies below 1/2. Supported: all three. Not supported: some restricted kind's interval
    lies wholly below 1/2. Otherwise inconclusive."""
    if stability.empty:
        return {"verdict": "inconclusive", "evidence": "the stability stage has not run"}
    usable = stability[stability["fitted"] & (stability["networks"] >= MIN_NETWORKS)]
    omega = usable[usable["parametrization"] == "restricted"]
    free = usable[usable["parametrization"] == "unrestricted"]
    low = STABILITY_RATE - RATE_SLACK
    holds = len(omega) > 0 and bool((omega["ci_high"] >= low).all())
    sharp = bool((omega["ci_high"] <= STABILITY_RATE + SHARP_MARGIN).any())
    fails = len(free) > 0 and bool((free["ci_high"] < low).all())
    below = omega[omega["ci_high"] < low]
    lines = [
        f"{e['parametrization']} {e['kind']}: p {_interval(e)} over {e['networks']} "
        f"networks, {e['rows']} rows; max r_1/2 {e['r_half_max']:.3g}, max r_1 "
        f"{e['r_one_max']:.3g}" + ("" if e["fitted"] else " (d_W spans less than a decade)")
        for _, e in stability.iterrows()
    ]
    lines.append(
        f"holds on Omega_N: {'yes' if holds else 'no'}; sharp (some kind p <= "
        f"{STABILITY_RATE + SHARP_MARGIN:g}): {'yes' if sharp else 'no'}; fails for "
        f"unrestricted networks with a free neuron: {'yes' if fails else 'no'}"
    )
    for _, e in retrain.iterrows() if not retrain.empty else []:
        lines.append(
            f"retraining ({e['parametrization']}, {e['kind']}; does training find the "
            f"nearby parametrization? not in the verdict): d_P ~ d_W(start, end)^"
            f"{_interval(e)}, {e['networks']} networks, {e['reached_g']:.0%} reached g"
            + ("" if e.get("fitted", True) else " (d_W(start, end) spans less than a decade)")
        )
    if len(below):
        verdict = "not supported"
    elif holds and sharp and fails:
        verdict = "supported"
    else:
        verdict = "inconclusive"
    number = "; ".join(
        f"{e['parametrization'][0]} {e['kind']} p {_interval(e)}" for _, e in usable.iterrows()
    )
    return {
        "verdict": verdict,
        "number": number or "no kind fitted over two or more networks",
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
    cells: pd.DataFrame,
    rates: pd.DataFrame,
    claim4: pd.DataFrame,
    witnesses: pd.DataFrame,
    stability: pd.DataFrame,
    retrain: pd.DataFrame,
    eps: float,
    expressivity: pd.DataFrame | None = None,
) -> list[dict]:
    """One dict per claim: claim, statement, verdict, number, evidence.

    ``cells``, ``rates``, ``claim4``: ``stats.cell_stats``, ``stats.decay_rates`` and
    ``stats.claim4_table`` of the runs; ``witnesses``: ``witnesses.witness_rows``;
    ``stability``: ``stability.stability_exponents``; ``retrain``:
    ``retraining.retrain_exponents`` (claim 3's evidence, not its rule);
    ``expressivity``: ``stats.expressivity_table`` (claim 4's evidence, not its rule).
    Any frame may be empty; a claim is inconclusive when the frame it rests on is
    (claim 1: ``cells``, 2: ``witnesses``, 3: ``stability``, 4: ``claim4``).
    """
    statements = [
        "local minima of the regularized problem are almost optimal for large networks",
        "a parameter-space minimum need not be a realization-space minimum",
        "inverse stability fails in general but holds on Omega_N with exponent 1/2",
        "optimizing over the restricted set loses nothing",
    ]
    results = [
        _claim1(cells, rates, eps),
        _claim2(witnesses),
        _claim3(stability, retrain),
        _claim4(claim4, expressivity),
    ]
    return [
        {"claim": i + 1, "statement": s, **r}
        for i, (s, r) in enumerate(zip(statements, results, strict=True))
    ]
