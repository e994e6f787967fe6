"""Claims 2 and 3: their verdict rules on constructed evidence, each outcome built."""

import numpy as np
import pandas as pd
import pytest
from factories import run_frame

from realspace.report.claims import (
    RATE_SLACK,
    SHARP_MARGIN,
    STABILITY_RATE,
    claim_verdicts,
)
from realspace.report.stability import FREE_SIZE_MIN, stability_exponents
from realspace.report.witnesses import witness_rows, witness_table

EMPTY = pd.DataFrame()


# -- claim 2: witnesses ---------------------------------------------------------------
def _runs(n: int, certified=True, near_kink=False, status="converged") -> pd.DataFrame:
    """``n`` unrestricted networks of width 8 keyed k0.., as the witness stage reads them."""
    return run_frame(
        {("unrestricted", 8): [0.0] * n},
        problem="sin",
        run_key=[f"k{i}" for i in range(n)],
        certified=certified,
        near_kink=near_kink,
        run_status=status,
    )


def _stage(free, rate, witness) -> pd.DataFrame:
    n = len(free)
    return pd.DataFrame(
        dict(
            run_key=[f"k{i}" for i in range(n)],
            width=8,
            seed=range(n),
            free_neurons=free,
            descent_rate=rate,
            rate_bound="exact",
            witness=witness,
            witness_C=[2.0 + i for i in range(n)],
            witness_t=0.25,
        )
    )


def _verdicts(witnesses=EMPTY, stability=EMPTY, retrain=EMPTY) -> list[dict]:
    return claim_verdicts(
        near_optimality=EMPTY,
        witnesses=witnesses,
        stability=stability,
        retrain=retrain,
        paired=EMPTY,
        expressivity=None,
        eps=1e-4,
    )


def _claim2(runs: pd.DataFrame, stage: pd.DataFrame) -> dict:
    return _verdicts(witnesses=witness_rows(runs, stage))[1]


def test_claim2_is_supported_by_one_verified_witness_and_names_the_best():
    v = _claim2(_runs(3), _stage([0, 1, 2], [np.nan, 0.01, 0.3], [False, True, True]))
    assert v["verdict"] == "supported"
    assert "2 of 3 certified unrestricted minima" in v["number"]
    assert "seed 2, rate 0.3 (exact), C 4" in v["number"]  # the larger rate is the best


def test_claim2_is_not_supported_when_no_certified_minimum_can_descend():
    """Certified minima without a free neuron, or whose free neuron has no positive rate
    (the penalty outweighs every direction): realization-space minima as far as a free
    neuron can tell."""
    v = _claim2(_runs(3), _stage([0, 1, 2], [np.nan, -0.01, 0.0], [False] * 3))
    assert v["verdict"] == "not supported"
    assert "0 of 3 certified" in v["number"]


def test_claim2_never_rests_a_no_on_a_lower_bound_of_the_rate():
    """In d >= 2 (or on the population loss) the rate is a lower bound over candidate
    directions: a non-positive one excludes nothing, so no "not supported" on it."""
    stage = _stage([1, 0], [-0.01, np.nan], [False, False]).assign(rate_bound="lower")
    v = _claim2(_runs(2), stage)
    assert v["verdict"] == "inconclusive" and "only a lower bound" in v["evidence"]
    exact = _stage([1, 0], [-0.01, np.nan], [False, False])
    assert _claim2(_runs(2), exact)["verdict"] == "not supported"


def test_claim2_is_inconclusive_without_minima_or_without_a_verified_descent():
    # a descent whose construction did not verify (e.g. d_W not O(g)) decides nothing
    v = _claim2(_runs(2), _stage([1, 0], [0.2, np.nan], [False, False]))
    assert v["verdict"] == "inconclusive" and "none verified" in v["evidence"]
    # a witness row counts only at a certified minimum, not diverged, no sample on a kink
    witness = _stage([1], [0.2], [True])
    for runs in (_runs(1, certified=False), _runs(1, near_kink=True), _runs(1, status="diverged")):
        v = _claim2(runs, witness)
        assert v["verdict"] == "inconclusive" and "0 of 0 certified" in v["number"]
    assert _claim2(_runs(1), EMPTY)["verdict"] == "inconclusive"  # the stage has not run


def _minima(free, rate, witness=None, bound="exact", minimum=True) -> pd.DataFrame:
    """``witness_rows`` as the stage leaves them: one end point per entry, a certified
    minimum unless told otherwise, descending where it has a free neuron and a positive
    rate."""
    free, rate = np.asarray(free), np.asarray(rate, dtype=float)
    n = len(free)
    return pd.DataFrame(
        dict(
            problem="sin",
            width=8,
            seed=range(n),
            free_neurons=free,
            descent_rate=rate,
            rate_bound=bound,
            witness=[False] * n if witness is None else witness,
            witness_C=[2.0 + i for i in range(n)],
            minimum=minimum,
            descends=(free > 0) & (rate > 0),
        )
    )


def test_claim2_evidence_counts_minima_free_neurons_and_descents():
    """Of minima with 0, 1 and 2 free neurons, two have a free neuron and one of those a
    positive rate; none verified: the counts and the reason are in the evidence."""
    v = _verdicts(witnesses=_minima([0, 1, 2], [np.nan, 0.2, -0.1]))[1]
    assert v["verdict"] == "inconclusive"
    counts = "0 of 3 certified unrestricted minima (of 3 end points) are verified witnesses"
    assert v["number"] == counts
    free = "2 minima have a free neuron, 1 with a positive realization-space descent rate"
    assert free in v["evidence"]
    assert "none verified by construction" in v["evidence"]


def test_claim2_a_minimum_without_a_free_neuron_is_a_realization_space_minimum():
    """Without a free neuron there is no descent to look for, whatever the rate's kind
    (d >= 2 gives lower bounds): such minima say "not supported"."""
    v = _verdicts(witnesses=_minima([0, 0], [np.nan, np.nan], bound="lower"))[1]
    assert v["verdict"] == "not supported"
    assert "0 minima have a free neuron, 0 with a positive" in v["evidence"]
    why = "every certified minimum is a realization-space minimum as far as a free neuron can"
    assert why in v["evidence"]
    # a free neuron whose rate is only a lower bound, not positive, excludes nothing
    v = _verdicts(witnesses=_minima([1], [-0.01], bound="lower"))[1]
    assert v["verdict"] == "inconclusive"
    assert "1 minima with a free neuron have only a lower bound on their rate" in v["evidence"]
    assert "no descent found, none excluded" in v["evidence"]


def test_claim2_evidence_of_a_witness_keeps_the_counts_and_states_the_construction():
    """A supported claim 2 still counts the minima, names the best witness (the larger
    rate) and states what its construction verified."""
    rows = _minima([1, 1], [0.05, 0.3], witness=[True, True])
    v = _verdicts(witnesses=rows)[1]
    assert v["verdict"] == "supported"
    assert v["evidence"].startswith("2 of 2 certified unrestricted minima (of 2 end points)")
    assert "seed 1, rate 0.3 (exact), C 3" in v["evidence"]
    assert "while the realization moves by at most C g" in v["evidence"]


def test_claim2_says_why_without_minima_or_without_the_stage():
    """A free neuron with a positive rate at a point that is no certified minimum decides
    nothing; the evidence says there was no minimum, or no stage, to test."""
    v = _verdicts(witnesses=_minima([1], [0.2], minimum=False))[1]
    assert v["verdict"] == "inconclusive" and "0 of 0 certified" in v["number"]
    assert "no certified unrestricted minimum to test" in v["evidence"]
    v = _verdicts()[1]
    assert v["verdict"] == "inconclusive" and "witness stage has not run" in v["evidence"]


def test_the_witness_table_counts_per_cell():
    runs = pd.concat([_runs(3), _runs(1).assign(run_key="k9", width=16)])
    stage = pd.concat(
        [
            _stage([0, 1, 2], [np.nan, 0.01, 0.3], [False, False, True]),
            _stage([1], [0.05], [True]).assign(run_key="k9", width=16),
        ]
    )
    t = witness_table(witness_rows(runs, stage)).set_index("width")
    assert t.loc[
        8, ["networks", "minima", "with_free_neuron", "descending", "witnesses"]
    ].tolist() == [
        3,
        3,
        2,
        2,
        1,
    ]
    assert t.loc[8, "best_rate"] == 0.3 and t.loc[8, "best_C"] == 4.0
    assert t.loc[16, "witnesses"] == 1


# -- claim 3: inverse stability on trained networks ---------------------------------------
DELTAS = np.logspace(-1, -6, 6)


def _restricted(kinds: dict[str, list[float]], seed=0) -> list[dict]:
    """Rows y = C x^p of one network per exponent of each kind (C differs by network)."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind, exponents in kinds.items():
        for n, p in enumerate(exponents):
            C = float(rng.uniform(0.5, 2.0))
            for d in DELTAS:
                rows.append(
                    dict(
                        network=f"r{n}",
                        parametrization="restricted",
                        kind=kind,
                        delta=d,
                        d_W=d,
                        d_P=C * d**p,
                        d_P_bound="exact",
                    )
                )
    return rows


def _unrestricted(sizes: list[float]) -> list[dict]:
    """Lower bounds that stay at a free neuron's own distance to the new kink: p = 0."""
    return [
        dict(
            network=f"u{n}",
            parametrization="unrestricted",
            delta=d,
            d_W=d,
            lower_bound=0.5 * size,
            free_size=size,
        )
        for n, size in enumerate(sizes)
        for d in DELTAS
    ]


GOOD = {"add": [0.5, 0.5, 0.5], "scale": [1.0, 1.0, 1.0], "shift": [0.5, 0.5, 0.5]}


def _claim3(rows: list[dict]) -> dict:
    exps = stability_exponents(pd.DataFrame(rows))
    return _verdicts(stability=exps)[2]


def test_claim3_is_supported_when_it_holds_on_omega_sharply_and_fails_outside():
    v = _claim3(_restricted(GOOD) + _unrestricted([0.5, 1.0]))
    assert v["verdict"] == "supported"
    assert "r add p 0.50 [0.50, 0.50]" in v["number"]
    assert "u new kink p 0.00 [0.00, 0.00]" in v["number"]


def test_claim3_is_not_supported_when_a_kind_shrinks_slower_than_one_half_on_omega():
    bad = {**GOOD, "scale": [0.3, 0.35, 0.4]}
    assert _claim3(_restricted(bad) + _unrestricted([0.5, 1.0]))["verdict"] == "not supported"
    # just inside the float slack below 1/2 is not "below": an exact 1/2 fitted with rounding
    close = {**GOOD, "add": [0.49, 0.49, 0.49]}
    assert _claim3(_restricted(close) + _unrestricted([0.5, 1.0]))["verdict"] == "supported"


def test_claim3_is_inconclusive_when_one_of_its_three_parts_is_not_shown():
    free = _unrestricted([0.5, 1.0])
    # not sharp: every kind shrinks like d_W (p = 1); the interval, not the point, decides
    assert _claim3(_restricted({"scale": [1.0, 1.0]}) + free)["verdict"] == "inconclusive"
    wide = {**GOOD, "add": [0.3, 0.9, 0.5], "shift": [0.8, 0.8, 0.8]}
    exps = stability_exponents(pd.DataFrame(_restricted(wide)))
    add = exps.set_index("kind").loc["add"]
    assert add["exponent"] <= 0.6 < add["ci_high"]  # the point says sharp, the interval not
    assert _claim3(_restricted(wide) + free)["verdict"] == "inconclusive"
    # fails in general not shown: no free neuron, or only weight decay's tiny ones
    assert _claim3(_restricted(GOOD))["verdict"] == "inconclusive"
    tiny = _unrestricted([FREE_SIZE_MIN / 10, FREE_SIZE_MIN / 10])
    assert _claim3(_restricted(GOOD) + tiny)["verdict"] == "inconclusive"
    # one network per kind is no interval
    one = {k: v[:1] for k, v in GOOD.items()}
    assert _claim3(_restricted(one) + _unrestricted([0.5]))["verdict"] == "inconclusive"
    assert _verdicts()[2]["verdict"] == "inconclusive"


def test_the_interval_not_the_point_estimate_says_whether_a_kind_reaches_one_half():
    """Networks that disagree (p = 0.3 and 0.65): the pooled slope lies below 1/2 but its
    interval reaches it, so nothing contradicts the theorem; nor does it refute it."""
    split = {**GOOD, "add": [0.3, 0.65, 0.3, 0.65]}
    exps = stability_exponents(pd.DataFrame(_restricted(split))).set_index("kind")
    assert exps.loc["add", "exponent"] < 0.48 <= exps.loc["add", "ci_high"]
    assert _claim3(_restricted(split) + _unrestricted([0.5, 1.0]))["verdict"] == "supported"


def test_a_kind_whose_distance_does_not_follow_delta_is_not_fitted():
    rows = _restricted(GOOD) + _unrestricted([0.5, 1.0])
    for r in rows:
        if r.get("kind") == "shift":
            # a kink's slope jump: d_W constant (here falling a hair as delta grows, so
            # that a fit through it would read a huge negative exponent)
            r["d_W"] = 0.3 * (1 - 1e-3 * r["delta"])
    exps = stability_exponents(pd.DataFrame(rows)).set_index("kind")
    assert not exps.loc["shift", "fitted"] and exps.loc["add", "fitted"]
    v = _claim3(rows)
    assert v["verdict"] == "supported" and "spans less than a decade" in v["evidence"]


LOW = STABILITY_RATE - RATE_SLACK  # "reaches 1/2" up to the fit's float slack
SHARP = STABILITY_RATE + SHARP_MARGIN


def _kind(kind, high, par="restricted", p=None, networks=3, fitted=True) -> dict:
    """One ``stability_exponents`` row: exponent p (default: high - 0.05), its interval
    [p - 0.05, high]."""
    p = high - 0.05 if p is None else p
    return dict(
        parametrization=par,
        kind=kind,
        networks=networks,
        rows=6 * networks,
        exponent=p,
        ci_low=p - 0.05,
        ci_high=high,
        fitted=fitted,
        r_half_max=1.25,
        r_one_max=40.0,
    )


FREE = _kind("new kink", 0.1, par="unrestricted", p=0.0)  # the lower bound, p = 0


def _claim3_of(*kinds, retrain=EMPTY) -> dict:
    """Claim 3 on the given ``stability_exponents`` rows."""
    return _verdicts(stability=pd.DataFrame(list(kinds)), retrain=retrain)[2]


def test_claim3_bounds_are_inclusive_where_the_rule_says_at_or_below():
    """An interval reaching exactly 1/2 - RATE_SLACK reaches 1/2 (and is not "below");
    one ending exactly at 1/2 + SHARP_MARGIN is sharp; a free neuron's interval must lie
    strictly below 1/2 - RATE_SLACK to show the failure."""
    assert _claim3_of(_kind("add", LOW), _kind("scale", 1.0), FREE)["verdict"] == "supported"
    assert _claim3_of(_kind("add", SHARP), FREE)["verdict"] == "supported"  # one kind suffices
    assert _claim3_of(_kind("add", SHARP + 1e-9), FREE)["verdict"] == "inconclusive"
    edge = _kind("new kink", LOW, par="unrestricted", p=0.3)
    assert _claim3_of(_kind("add", 0.55), edge)["verdict"] == "inconclusive"
    below = {**edge, "ci_high": LOW - 1e-9}
    assert _claim3_of(_kind("add", 0.55), below)["verdict"] == "supported"


def test_claim3_evidence_answers_each_of_its_three_questions():
    """Holds on Omega_N, sharp, fails in general: each answered yes or no, with the
    sharpness bound; without a usable kind the number says so."""
    v = _claim3_of(_kind("add", 0.55), FREE)
    assert "holds on Omega_N: yes; sharp (some kind p <= 0.6): yes" in v["evidence"]
    assert "fails for unrestricted networks with a free neuron: yes" in v["evidence"]
    # no restricted kind over two networks: nothing holds or is sharp on Omega_N
    v = _claim3_of(_kind("add", 0.55, networks=1))
    assert v["verdict"] == "inconclusive"
    assert "holds on Omega_N: no; sharp (some kind p <= 0.6): no" in v["evidence"]
    assert "fails for unrestricted networks with a free neuron: no" in v["evidence"]
    assert v["number"] == "no kind fitted over two or more networks"
    assert "the stability stage has not run" in _verdicts()[2]["evidence"]


def test_claim3_number_and_evidence_carry_every_kinds_interval():
    """The number lists each usable kind's p and interval (a fit that is 0 up to rounding
    reads 0.00, not -0.00); the evidence gives every kind's networks, rows and largest
    r_1/2 and r_1, and says which kinds' d_W spans less than a decade."""
    near_zero = _kind("new kink", 0.0, par="unrestricted", p=-0.004)
    v = _claim3_of(_kind("add", 0.55), near_zero, _kind("shift", 0.5, fitted=False))
    assert v["number"].split("; ") == [
        "r add p 0.50 [0.45, 0.55]",
        "u new kink p 0.00 [-0.05, 0.00]",
    ]
    evidence = v["evidence"]
    add = evidence.split("restricted add: ")[1].split("unrestricted new kink")[0]
    assert "p 0.50 [0.45, 0.55] over 3 networks, 18 rows" in add
    assert "max r_1/2 1.25, max r_1 40" in add and "less than a decade" not in add
    shift = evidence.split("restricted shift: ")[1]
    assert "max r_1 40 (d_W spans less than a decade)" in shift
    assert any(c.startswith("holds on Omega_N: ") for c in evidence.split("; "))


def test_claim3_evidence_reports_retraining_beside_the_verdict():
    """Retraining's exponents are stated (kind, interval, networks, share that reached g,
    an unfitted span named) and change no verdict."""
    retrain = pd.DataFrame(
        [
            dict(_kind("add", 0.6, p=0.5), reached_g=0.75),
            dict(_kind("shift", 0.6, p=0.5, networks=2, fitted=False), reached_g=1.0),
        ]
    )
    kinds = (_kind("add", 0.55), FREE)
    v = _claim3_of(*kinds, retrain=retrain)
    assert v["verdict"] == _claim3_of(*kinds)["verdict"] == "supported"
    add = v["evidence"].split("retraining (restricted, add")[1].split("retraining (")[0]
    assert "d_P ~ d_W(start, end)^0.50 [0.45, 0.60], 3 networks, 75% reached g" in add
    assert "less than a decade" not in add
    shift = v["evidence"].split("retraining (restricted, shift")[1]
    assert "2 networks, 100% reached g (d_W(start, end) spans less than a decade)" in shift


def test_classification_claim1_reads_the_classification_problems_only():
    """The claim-1 rule over the classification problems: a lower bound certifies a gap
    within eps (supported), never a gap above it; problems outside the list do not count."""
    from realspace.report.claims import classification_claim1
    from realspace.report.verdict_tables import claim1_table

    def runs(problem, reference, gap):
        return run_frame({("restricted", 64): [gap] * 4}, problem=problem, reference=reference)

    eps = 1e-4
    table = claim1_table(
        pd.concat(
            [
                runs("a", "convex_exact", 1e-5),
                runs("b", "convex_relaxation_lower_bound", 5e-5),
                runs("c", "convex_relaxation_lower_bound", 1e-2),
            ]
        ),
        eps,
    )
    assert classification_claim1(table, eps, ["a", "b"])["verdict"] == "supported"
    assert classification_claim1(table, eps, ["a", "c"])["verdict"] == "inconclusive"
    assert classification_claim1(table, eps, ["z"])["verdict"] == "inconclusive"


def test_the_classification_table_reads_accuracy_and_margins_per_cell():
    from realspace.stats import classification_table

    runs = pd.DataFrame(
        dict(
            problem=["s", "s", "s", "r"],
            parametrization="unrestricted",
            width=[8, 8, 8, 8],
            target=["spirals", "spirals", "spirals", "sin"],
            n_classes=[3, 3, 3, np.nan],
            weight_decay=0.0,
            accuracy=[1.0, 0.9, 1.0, np.nan],
            normalized_margin=[0.1, -0.2, 0.3, np.nan],
        )
    )
    cells = pd.DataFrame(
        dict(
            problem=["s", "r"],
            parametrization="unrestricted",
            width=8,
            reference="best_in_cell",
            j_star=0.0,
            gap_median=0.0,
            within_eps=1.0,
        )
    )
    table = classification_table(runs, cells)
    assert len(table) == 1  # the regression cell is not classification
    row = table.iloc[0]
    assert row["loss"] == "cross_entropy" and row["classes"] == 3 and row["runs"] == 3
    assert row["accuracy_median"] == 1.0 and row["all_correct"] == pytest.approx(2 / 3)
    assert row["margin_median"] == 0.1 and row["margin_min"] == -0.2
    assert row["reference"] == "best_in_cell"
