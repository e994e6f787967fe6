"""What the report says, section by section: the prose, the table and the figure of each,
read from one ``Evidence``. The format (Markdown, HTML) is ``report.render``."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from ..core.choices import DEFAULT_RESTRICTED_METHOD
from ..core.restricted import MERGE_ANGLE
from ..core.spurious import SPURIOUS_REL_LOSS
from .evidence import Evidence

__all__ = ["Section", "FIGURES", "report_sections"]

# the figures a report draws, by file name (report.build draws them)
FIGURES = (
    "gap_vs_width.png",
    "spurious_vs_width.png",
    "inverse_stability.png",
    "census_vs_width.png",
    "gallery.png",
    "witness.png",
)

# the columns of stats.cell_stats shown in the near-optimality table
CELL_TABLE = [
    "problem",
    "parametrization",
    "width",
    "runs",
    "reference",
    "j_star",
    "gap_median",
    "gap_p90",
    "gap_max",
    "within_eps",
    "certified",
    "spurious",
    "undecided",
    "spurious_share",
]


class Section(NamedTuple):
    heading: str
    text: str | None  # paragraphs separated by blank lines
    table: pd.DataFrame | None
    figure: str | None  # one of FIGURES


# where the evidence of each claim is: its section and figure
CLAIM_SECTIONS = {
    1: ("Claim 1: the regularized problem", "gap_vs_width.png"),
    2: ("Claim 2: witnesses", "witness.png"),
    3: ("Inverse stability on trained networks", "inverse_stability.png"),
    4: ("Claim 4: paired non-inferiority", ""),
}


def claims_at_a_glance(verdicts: list[dict]) -> pd.DataFrame:
    """One row per claim: verdict, the one number it rests on, the section and figure that
    hold its evidence, the statement."""
    return pd.DataFrame(
        [
            {
                "claim": v["claim"],
                "verdict": v["verdict"],
                "rests on": v.get("number", ""),
                "section": CLAIM_SECTIONS[v["claim"]][0],
                "figure": CLAIM_SECTIONS[v["claim"]][1],
                "statement": v["statement"],
            }
            for v in verdicts
        ]
    )


def report_sections(ev: Evidence) -> list[Section]:
    """The sections in order: the claims at a glance, then the evidence; the
    inverse-stability ones only for the stages that ran."""
    sections = [
        Section("Claims at a glance", None, claims_at_a_glance(ev.verdicts), None),
        Section("Summary", _summary(ev), None, None),
        Section("Claims: the evidence", _claim_evidence(ev.verdicts), None, None),
        Section(
            "Near-optimality",
            "Per cell; the band in the figure is the 10-90 % range over seeds.",
            ev.cells[CELL_TABLE] if len(ev.cells) else pd.DataFrame(),
            "gap_vs_width.png",
        ),
        Section(
            "Gap decay with width",
            "Least-squares exponent p of median gap ~ width^p (widths with a positive median gap).",
            ev.rates,
            None,
        ),
        *_witnesses(ev),
        Section(
            "Non-global (spurious) minima",
            "Not claim 2's evidence: a non-global minimum can still be a minimum in "
            "realization space. Certified = gradient norm and negative curvature below tolerance "
            "(float64). A certified minimum is spurious when a network of its width attains "
            "an objective lower by more than eps: another end point of its cell (same "
            "problem, parametrization and width), or the width's exact optimum "
            "(teacher_realizable, convex_exact). Against a lower bound alone "
            "(convex_lower_bound: the optimum over all widths; "
            "convex_relaxation_lower_bound: below even that) it is undecided, counted "
            "apart in the table above; within eps of a lower bound it is optimal.",
            None,
            "spurious_vs_width.png",
        ),
        *_teacher_student(ev),
        *_classification(ev),
        *_claim1(ev),
        *_claim4(ev),
        Section(
            "Claim 4: best and median per method",
            "Per problem, width and restricted method (how restricted runs stay in Omega_N: "
            "intrinsic coordinates, or projection after every step): best and median "
            "trained objective over seeds against the unrestricted runs of the same width "
            f"and budget. A description; the verdict rests on the paired test above, of the "
            f"default method ({DEFAULT_RESTRICTED_METHOD}) where it was trained.",
            ev.claim4,
            None,
        ),
        Section(
            "Claim 4: expressivity",
            "Per problem and width, the unrestricted end points whose canonical form (the "
            "same realization, a restricted network) lies in Omega_N (in_omega) and has an "
            "objective at most theirs up to a relative 1e-6 (as_good); max_rel_change: "
            "the largest (canonical - trained) / |trained|. What Omega_N can express; the "
            "table above is what restricted training finds.",
            ev.expressivity,
            None,
        ),
        Section(
            "Degeneracy census",
            "Mean shares of neurons over seeds; effective width = live neurons of the "
            "canonical form. The definitions are those of the restricted set: imbalance "
            "|log(|c_i| / ||a_i||_2)| (R1); duplicates and opposites are pairs whose (a, b) "
            f"lie within {MERGE_ANGLE:g} rad of parallel or antiparallel, the angle at which "
            "the restricted trainer merges them. A network in Omega_N reads 0 in both.",
            ev.census,
            "census_vs_width.png",
        ),
    ]
    if not ev.stability_exponents.empty:
        sections.append(
            Section(
                "Inverse stability on trained networks",
                "Claim 3's evidence. Restricted end points (canonical, d = 1) perturbed at "
                "sizes delta: add (a new neuron of d_W = delta in an all-zero padding "
                "neuron, width N + 1), scale (one neuron, d_W = delta), shift (a small "
                "neuron of size delta added, then its kink moved by D/4). x = the exact "
                "d_W(R Gamma, g), y = the exact fibre distance from Gamma to the "
                "Omega_N-parametrizations of g; p of y ~ x^p with its 95 % bootstrap "
                "interval over networks (2000 resamples, seed 0). Inverse stability on "
                "Omega_N predicts p >= 1/2 for every kind, and p = 1/2 for add and shift "
                "(sharp). Unrestricted end points with a free neuron of size >= 1e-3 "
                "(new kink): y = a lower bound on the distance to every width-N "
                "parametrization of g = R Theta + delta rho(s (x - t)) (g has a kink more "
                "than R Theta uses, so some neuron must reach t); p near 0 means inverse "
                "stability fails there. fitted: d_W spans a decade.",
                ev.stability_exponents,
                None,
            )
        )
    if not ev.pathology.empty:
        sections.append(
            Section(
                "Checks of the distances: pathology fixtures",
                "Closed-form families P0-P4 whose exponents are known before any network "
                "is trained: they check d_W, d_P and the fibre distance, and decide no "
                "claim. D = 2, n = 2^1 .. 2^max; exponents fitted in log-log.",
                ev.pathology_exponents,
                "inverse_stability.png",
            )
        )
    if not ev.seed_pairs.empty:
        sections.append(
            Section(
                "Inverse stability: seed pairs",
                "The closest pairs (in W^1,inf) of each "
                "cell: raw d_P vs the fibre distance on Omega_N.",
                ev.seed_pair_summary,
                None,
            )
        )
    if not ev.retrain.empty:
        sections.append(
            Section(
                "Retraining: does training find the nearby parametrization?",
                "Median over retrained networks. Retraining fits g without weight decay, "
                "at width N + 1; d_W_travel: the exact d_W(R(start), R(end)); floor: the "
                "distance travelled when retraining toward R(Gamma) itself (the control, "
                "delta = 0) from the same start; fit_d_inf: sup |R(end) - g|; reached_g: "
                "rows with fit_d_inf <= d_W / 10. A question of its own, beside claim 3.",
                ev.retrain_summary,
                None,
            )
        )
        sections.append(
            Section(
                "Retraining exponents",
                "Per kind, the exponent p of d_P ~ d_W_travel^p over every row (none left "
                "out) with its 95 % bootstrap interval (networks resampled, 2000 times, "
                "seed 0).",
                ev.retrain_exponents,
                None,
            )
        )
    sections.append(Section("Realizations", None, None, "gallery.png"))
    return sections


def _claim1(ev: Evidence) -> list[Section]:
    """Claim 1's table: the regularized problem's converged end points."""
    if ev.near_optimality.empty:
        return []
    text = (
        "Weight-decay cells whose reference decides: the exact convex optimum "
        "(convex_exact), or a lower bound (convex_lower_bound, "
        "convex_relaxation_lower_bound), within eps of which an end point is within eps "
        "of the optimum. Converged: float64 gradient norm <= 1e-6 (a stalled optimizer "
        "leaves none: median_grad_norm says where it stopped). gap_p90 over converged "
        "end points; within_eps with its 95 % Clopper-Pearson interval [within_lo, "
        "within_hi]; above_10eps. Restricted end points (the default method) are the "
        "realization-space minima and decide; unrestricted ones are shown beside them. "
        "Cells without weight decay are in the near-optimality table and decide nothing."
    )
    return [Section("Claim 1: the regularized problem", text, ev.near_optimality, None)]


def _claim4(ev: Evidence) -> list[Section]:
    """Claim 4's paired table."""
    if ev.paired.empty:
        return []
    text = (
        "Per problem and width, restricted runs (the default method) and unrestricted runs "
        "of the same seed (the same initial realization) at equal budgets: the median "
        "paired difference of gaps to the width's reference (scale gap; the objective "
        "ratio J_r / J_u where no reference exists, scale ratio), with one-sided 95 % "
        "bounds (lower, upper: order statistics of the sign test, no assumption on the "
        "distribution). non_inferior: upper <= margin (eps on gaps, 2 on ratios); "
        "unrestricted_better: lower > margin. linear_term: the unrestricted runs carry the "
        "restricted model's free linear term, so both realize the same functions at equal "
        "width (without it the unrestricted class is smaller, and the comparison unequal)."
    )
    return [Section("Claim 4: paired non-inferiority", text, ev.paired, None)]


def _witnesses(ev: Evidence) -> list[Section]:
    """Claim 2's witnesses per cell, when the witness stage ran."""
    if ev.witness_cells.empty:
        return []
    text = (
        "Unrestricted end points per cell. minima: certified local minima (float64 "
        "gradient norm and smallest Hessian eigenvalue within 1e-6) with no sample on a "
        "kink. with_free_neuron: minima with a neuron whose contribution on the data is "
        "zero (dead on every sample, c_i = 0, or one of a duplicate pair that merges). "
        "descending: of those, with a positive realization-space descent rate at the same "
        "width, rate = max over (u, t) of |<G, rho(<u, X> - t)>| - lam, G the loss's "
        "gradient in the function values (exact in d = 1, a lower bound over candidate "
        "directions in d >= 2). witnesses: verified by construction, J(Theta'(g)) < "
        "J(Theta) for g = 1e-2 .. 1e-6 with d_W(R Theta, R Theta'(g)) <= C g. Each is a "
        "parameter-space minimum that is not a realization-space minimum. The figure "
        "draws the best one."
    )
    return [Section("Claim 2: witnesses", text, ev.witness_cells, "witness.png")]


def _teacher_student(ev: Evidence) -> list[Section]:
    """The spurious share of the Gaussian teacher-student runs, when the sweep has any."""
    if ev.spurious.empty:
        return []
    text = (
        "Gaussian teacher-student runs without weight decay (teacher of k rows, student of "
        "n, output weights 1, no biases, exact population loss L). Spurious = a certified "
        f"local minimum with L > {SPURIOUS_REL_LOSS:g} L(0), L(0) = (1/2) E[f_V^2] the loss "
        "of the zero student; the share is over certified runs, with its binomial standard "
        "error sqrt(p (1 - p) / certified). max_rel_loss_below and min_rel_loss_above: the "
        "certified L / L(0) closest to the threshold on either side, the gap it falls in."
    )
    return [Section("Spurious minima: Gaussian teacher-student", text, ev.spurious, None)]


def _classification(ev: Evidence) -> list[Section]:
    """Claim 1 for the classification losses and their accuracy and margins, when the sweep
    has classification runs."""
    if ev.classification.empty:
        return []
    v = ev.classification_verdict
    text = (
        f"Claim 1 for the logistic (2 classes) and cross-entropy (3 or more) losses "
        f"({v.get('verdict', 'inconclusive')}): {v.get('evidence', '')}\n\n"
        "Both losses are convex in the realization. The references: the exact convex "
        "program for the binary logistic loss with weight decay (convex_exact where the "
        "activation patterns are enumerated and the width suffices); for cross-entropy, the "
        "convex relaxation's lower bound on the optimum (convex_relaxation_lower_bound), "
        "which certifies a gap within eps and decides nothing above it, never an optimum; "
        "beside it j_upper, the objective a network of the separable convex program attains "
        "(shown at widths >= that network's): the optimum lies between j_star and j_upper. "
        "Without weight decay the loss on separable data has no attained optimum (it falls "
        "as the output grows): those gaps are to the best run of the cell (best_in_cell), "
        "and accuracy and margin are the numbers to read. accuracy_median and all_correct "
        "(share of runs classifying every training point): training data; margin: the "
        "smallest class margin over the path norm (scale-free)."
    )
    return [
        Section(
            "Classification: claim 1 for the logistic and cross-entropy losses",
            text,
            ev.classification,
            None,
        )
    ]


def _summary(ev: Evidence) -> str:
    n = len(ev.runs)
    done = f"{n} of {ev.planned} planned networks" if ev.planned else f"{n} networks"
    return (
        f"{done} finished. Gap = J(end point) - J*, where J is the trained objective (the "
        f"loss, plus the weight-decay penalty when lam > 0) and J* the best reference that "
        f"applies (its label is in each row). Near-optimal: gap <= eps = {ev.eps:g}. Training "
        "ran in the dtype recorded with each run (float32 by default); every statistic here "
        "is computed in float64."
    )


def _claim_evidence(verdicts: list[dict]) -> str:
    """One paragraph per claim: its verdict and the evidence it rests on."""
    return "\n\n".join(f"Claim {v['claim']} ({v['verdict']}): {v['evidence']}" for v in verdicts)
