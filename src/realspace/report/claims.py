"""Verdicts on the four claims (docs/science.md), computed from a sweep's numbers.

Each verdict is "supported", "not supported" or "inconclusive", with the evidence it
rests on spelled out; the rules are written here, before any data is seen:

1. near-optimality of the regularized problem (``verdict_tables.claim1_table``): weight-
   decay cells whose reference is the exact convex optimum or a lower bound, converged
   end points only (float64 gradient norm <= 1e-6), restricted ones (the
   realization-space minima). Supported when at each problem's widest width the 90th
   percentile gap is <= eps; not supported when some problem, at its two widest widths
   with the exact optimum, has more than 10 % of them above 10 eps, not falling with
   width; otherwise inconclusive. Unregularized cells do not decide it.
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
4. restricted loses nothing (``verdict_tables.paired_table``): expressivity (every
   unrestricted end point's canonical form in Omega_N is as good), and per (problem,
   width) restricted against unrestricted runs of the same seed, the one-sided 95 %
   bounds of the median paired difference of gaps (objective ratio without a reference)
   against the margin (eps; a factor 2 on ratios). Not supported: unrestricted better
   beyond the margin somewhere (lower bound above it). Supported: expressivity, and
   non-inferiority (upper bound within it) everywhere with at least 16 pairs against the
   unrestricted model with the same free linear term. Otherwise inconclusive.

The math: docs/science.md#the-claims-and-their-verdicts.
"""

from __future__ import annotations

import pandas as pd

from .verdict_tables import MIN_PAIRS, RATIO_MARGIN
from .witnesses import best_witness

__all__ = ["claim_verdicts", "classification_claim1"]

# claim 1: the share of converged restricted end points above 10 eps that says "not
# supported" at the two widest widths
FAR_SHARE = 0.1


def _claim1(table: pd.DataFrame, eps: float) -> dict:
    """Claim 1 on ``claim1_table`` (weight-decay cells with a deciding reference, converged
    end points only). Per problem, the restricted rows at its widest width: supported when
    every problem's gap_p90 <= eps there; not supported when some problem, at its two
    widest widths with the exact optimum as reference, has more than ``FAR_SHARE`` of its
    converged restricted end points above 10 eps at both, not falling with width;
    otherwise inconclusive (no regularized cell with a deciding reference, no converged
    end point at the widest width, or gaps to a lower bound above eps)."""
    if table.empty:
        return {
            "verdict": "inconclusive",
            "evidence": "no weight-decay cell with the exact convex optimum or a lower bound "
            "as reference: near-optimality of the unregularized problem is reported in its "
            "table and does not decide claim 1",
        }
    r = table[table["parametrization"] == "restricted"]
    lines, ok, unconverged, failing, p90s = [], [], [], [], []
    for problem, g in r.groupby("problem"):
        g = g.sort_values("width")
        top = g.iloc[-1]
        unrestricted = table[
            (table["problem"] == problem)
            & (table["parametrization"] == "unrestricted")
            & (table["width"] == top["width"])
        ]
        beside = (
            f"; unrestricted beside it: p90 {unrestricted['gap_p90'].iloc[0]:.2e} over "
            f"{int(unrestricted['converged'].iloc[0])} converged"
            if len(unrestricted)
            else ""
        )
        lines.append(
            f"{problem}: width {int(top['width'])} ({top['reference']}), "
            f"{int(top['converged'])} of {int(top['runs'])} restricted end points converged "
            f"(median gradient norm {top['median_grad_norm']:.1e}, "
            f"{top.get('near_kink', float('nan')):.0%} with a sample on a kink), p90 gap "
            f"{top['gap_p90']:.2e}, within eps {top['within_eps']:.0%} "
            f"[{top['within_lo']:.0%}, {top['within_hi']:.0%}]{beside}"
        )
        if top["converged"] == 0:
            unconverged.append(problem)
        elif top["gap_p90"] <= eps:
            ok.append(problem)
            p90s.append(top["gap_p90"])
        else:
            p90s.append(top["gap_p90"])
        exact = g[(g["reference"] == "convex_exact") & (g["converged"] > 0)].tail(2)
        if (
            len(exact) == 2
            and (exact["above_10eps"] > FAR_SHARE).all()
            and exact["above_10eps"].iloc[1] >= exact["above_10eps"].iloc[0]
        ):
            failing.append(problem)
    problems = r["problem"].nunique()
    if failing:
        verdict = "not supported"
    elif problems and len(ok) == problems:
        verdict = "supported"
    else:
        verdict = "inconclusive"
    if unconverged:
        lines.append(
            f"no converged restricted end point at the widest width of {', '.join(unconverged)}"
            " (none reached the gradient tolerance: a constant step stalls above it, which "
            "the float64 polish removes, and at a minimum with a sample on a kink the "
            "one-sided gradient need not vanish)"
        )
    if failing:
        lines.append(
            f"{', '.join(failing)}: more than {FAR_SHARE:.0%} of converged restricted end "
            "points above 10 eps at the two widest widths, not falling with width"
        )
    number = (
        f"largest p90 gap of converged restricted end points at the widest width "
        f"{max(p90s):.2e} (eps {eps:g}); {len(ok)} of {problems} regularized problems within"
        if p90s
        else f"no converged restricted end point at the widest width (eps {eps:g})"
    )
    return {"verdict": verdict, "number": number, "evidence": "; ".join(lines)}


def classification_claim1(table: pd.DataFrame, eps: float, problems) -> dict:
    """Claim 1's rule over the classification problems only (logistic, cross-entropy)."""
    sub = table[table["problem"].isin(list(problems))] if len(table) else table
    if sub.empty:
        return {
            "verdict": "inconclusive",
            "evidence": "no weight-decay classification cell with a deciding reference",
        }
    return _claim1(sub, eps)


def _claim2(witnesses: pd.DataFrame) -> dict:
    """Claim 2 on ``witness_rows``: supported by one verified witness; not supported when
    certified unrestricted minima exist and none has a free neuron with a positive rate;
    otherwise (no minimum, or descents whose construction did not verify) inconclusive."""
    if witnesses.empty:
        return {"verdict": "inconclusive", "evidence": "the witness stage has not run"}
    minima = witnesses[witnesses["minimum"]]
    verified = minima[minima["witness"]]
    descending = minima[minima["descends"]]
    # a rate that is only a lower bound (d >= 2, the population loss) and not positive
    # shows no descent, and no absence of one either
    unknown = minima[
        (minima["free_neurons"] > 0) & ~minima["descends"] & (minima["rate_bound"] != "exact")
    ]
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
    if descending.empty and unknown.empty:
        return {
            "verdict": "not supported",
            "number": counts,
            "evidence": evidence + ": every certified minimum is a realization-space "
            "minimum as far as a free neuron can tell",
        }
    why = (
        ", none verified by construction"
        if len(descending)
        else f"; {len(unknown)} minima with a free neuron have only a lower bound on their "
        "rate (candidate directions), not positive: no descent found, none excluded"
    )
    return {"verdict": "inconclusive", "number": counts, "evidence": evidence + why}


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


def _expressivity(express: pd.DataFrame | None) -> tuple[bool, str]:
    """Claim 4's first question: does every unrestricted end point have a canonical form
    in Omega_N with an objective at most its own? (holds, the sentence)"""
    if express is None or express.empty:
        return False, "expressivity not measured (no canonical objectives recorded)"
    runs, good = int(express["runs"].sum()), int(express["as_good"].sum())
    return good == runs, (
        f"expressivity: {good} of {runs} unrestricted end points have a canonical form in "
        f"Omega_N with an objective at most theirs (largest relative change "
        f"{float(express['max_rel_change'].max()):.2g})"
    )


def _claim4(paired: pd.DataFrame, express: pd.DataFrame | None = None) -> dict:
    """Claim 4 on ``paired_table`` and ``expressivity_table``. Not supported: unrestricted
    training better beyond the margin somewhere (the lower bound of the median paired
    difference above it). Supported: expressivity holds, and in every (problem, width)
    the upper bound is within the margin with at least ``MIN_PAIRS`` pairs, against the
    unrestricted model with the same free linear term (equal function classes).
    Otherwise inconclusive."""
    holds, express_text = _expressivity(express)
    if paired.empty:
        return {
            "verdict": "inconclusive",
            "evidence": express_text + "; no width trained in both parametrizations with "
            "shared seeds",
        }
    # the worst cell by its upper bound's excess over the margin, relative to the margin
    # (gaps and ratios have margins of different sizes)
    worst = paired.loc[((paired["upper"] - paired["margin"]) / paired["margin"]).idxmax()]
    better = paired[paired["unrestricted_better"]]
    few = paired[paired["pairs"] < MIN_PAIRS]
    unequal = not paired["linear_term"].all()
    inferior = paired[~paired["non_inferior"]]
    lines = [express_text]
    lines.append(
        f"non-inferior (one-sided 95 % upper bound of the median paired difference within "
        f"the margin: eps {paired.loc[paired['scale'] == 'gap', 'margin'].max():g} on gaps, "
        f"x{RATIO_MARGIN:g} on objective ratios) at {int(paired['non_inferior'].sum())} of "
        f"{len(paired)} (problem, width), {int(paired['pairs'].min())} to "
        f"{int(paired['pairs'].max())} pairs each"
    )
    if len(better):
        b = better.iloc[0]
        lines.append(
            f"unrestricted better beyond the margin at {len(better)}: e.g. {b['problem']} "
            f"width {int(b['width'])}, median {b['scale']} difference {b['median']:.3g} "
            f"[{b['lower']:.3g}, {b['upper']:.3g}]"
        )
    if unequal:
        lines.append(
            "the unrestricted runs lack the restricted model's free linear term (a smaller "
            "function class at equal width): train them with linear_term to decide"
        )
    if len(few):
        lines.append(f"{len(few)} (problem, width) with fewer than {MIN_PAIRS} pairs")
    if len(better):
        verdict = "not supported"
    elif holds and not unequal and few.empty and inferior.empty:
        verdict = "supported"
    else:
        verdict = "inconclusive"
    what = "gap difference" if worst["scale"] == "gap" else "objective ratio J_r / J_u"
    number = (
        f"worst: {worst['problem']} width {int(worst['width'])}, median paired {what} "
        f"{worst['median']:.3g}, one-sided 95 % bounds [{worst['lower']:.3g}, "
        f"{worst['upper']:.3g}] "
        f"(margin {worst['margin']:g}, {int(worst['pairs'])} pairs)"
    )
    return {"verdict": verdict, "number": number, "evidence": "; ".join(lines)}


def claim_verdicts(
    *,
    near_optimality: pd.DataFrame,
    witnesses: pd.DataFrame,
    stability: pd.DataFrame,
    retrain: pd.DataFrame,
    paired: pd.DataFrame,
    expressivity: pd.DataFrame | None,
    eps: float,
) -> list[dict]:
    """One dict per claim: claim, statement, verdict, number, evidence.

    ``near_optimality``: ``verdict_tables.claim1_table``; ``witnesses``:
    ``witnesses.witness_rows``; ``stability``: ``stability.stability_exponents``;
    ``retrain``: ``retraining.retrain_exponents`` (claim 3's evidence, not its rule);
    ``paired``: ``verdict_tables.paired_table``; ``expressivity``:
    ``stats.expressivity_table``. Any frame may be empty; a claim is inconclusive when
    the frame it rests on is.
    """
    statements = [
        "local minima of the regularized problem are almost optimal for large networks",
        "a parameter-space minimum need not be a realization-space minimum",
        "inverse stability fails in general but holds on Omega_N with exponent 1/2",
        "optimizing over the restricted set loses nothing",
    ]
    results = [
        _claim1(near_optimality, eps),
        _claim2(witnesses),
        _claim3(stability, retrain),
        _claim4(paired, expressivity),
    ]
    return [
        {"claim": i + 1, "statement": s, **r}
        for i, (s, r) in enumerate(zip(statements, results, strict=True))
    ]
