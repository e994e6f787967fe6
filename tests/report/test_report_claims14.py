"""Claims 1 and 4: their tables and verdict rules on constructed evidence, each outcome
built; the order-statistic bounds they rest on against the binomial distribution."""

import numpy as np
import pandas as pd
import pytest
from factories import run_frame

from realspace.report.claims import claim_verdicts
from realspace.report.verdict_tables import (
    CONVERGED_GRAD,
    MIN_PAIRS,
    RATIO_MARGIN,
    claim1_table,
    paired_table,
)
from realspace.stats.quantiles import median_bounds, quantile_lower_bound, quantile_upper_bound

EMPTY = pd.DataFrame()
EPS = 1e-4


def _verdicts(near=EMPTY, paired=EMPTY, expressivity=None):
    return claim_verdicts(
        near_optimality=near,
        witnesses=EMPTY,
        stability=EMPTY,
        retrain=EMPTY,
        paired=paired,
        expressivity=expressivity,
        eps=EPS,
    )


# -- order statistics -------------------------------------------------------------------
def test_median_bounds_are_the_sign_tests_order_statistics():
    x = np.arange(1.0, 17.0)  # n = 16: P(Bin(16, 1/2) <= 11) = 0.962 >= 0.95 > P(<= 10)
    assert median_bounds(x) == (5.0, 12.0)
    assert median_bounds(x[::-1]) == (5.0, 12.0)  # order does not matter
    assert median_bounds(np.arange(1.0, 5.0)) == (-np.inf, np.inf)  # 4 draws: no 95 % bound
    assert quantile_upper_bound(np.arange(1.0, 29.0), 0.9) == np.inf  # p90 needs n >= 29
    assert quantile_upper_bound(np.arange(1.0, 30.0), 0.9) == 29.0
    assert quantile_lower_bound(x, 0.5) == 5.0


def test_median_bounds_cover_at_their_level():
    """Each one-sided bound covers the true median in >= 95 % of samples (the binomial
    level at n = 16 is 96.2 %), on a skewed distribution."""
    rng = np.random.default_rng(0)
    draws = rng.exponential(size=(4000, 16))
    median = np.log(2.0)
    bounds = np.array([median_bounds(d) for d in draws])
    assert 0.95 <= np.mean(bounds[:, 1] >= median) <= 0.975
    assert 0.95 <= np.mean(bounds[:, 0] <= median) <= 0.975


# -- claim 1 -------------------------------------------------------------------------------
def _runs(cells: dict, problem="sin wd=0.01", wd=0.01, reference="convex_exact", grad=1e-8):
    """Rows of ``cells``: (parametrization, width) -> list of gaps, one run each, with
    objective 0.3 + gap and the linear term recorded on every row."""
    return run_frame(
        cells,
        j_star=0.3,
        problem=problem,
        weight_decay=wd,
        reference=reference,
        grad_norm=grad,
        linear_term=True,
    )


def _claim1(df):
    return _verdicts(near=claim1_table(df, EPS))[0]


def test_claim1_is_supported_when_converged_restricted_end_points_are_near_optimal():
    df = _runs({("restricted", 8): [1e-3] * 10, ("restricted", 16): [1e-6] * 9 + [5e-5]})
    v = _claim1(df)
    assert v["verdict"] == "supported" and "5.00e-05" not in v["number"]
    assert "1 of 1 regularized problems within" in v["number"]
    # the unrestricted end points are shown beside, and decide nothing
    bad = pd.concat([df, _runs({("unrestricted", 16): [1.0] * 10})])
    assert (
        _claim1(bad)["verdict"] == "supported" and "unrestricted beside" in _claim1(bad)["evidence"]
    )


def test_claim1_is_not_supported_when_far_gaps_do_not_fall_with_width():
    """30 % of converged restricted end points above 10 eps at both widest widths, the
    share not falling: not supported; the same with the share falling is inconclusive."""
    far, near = 1e-2, 1e-6
    df = _runs(
        {("restricted", 8): [far] * 3 + [near] * 7, ("restricted", 16): [far] * 3 + [near] * 7}
    )
    assert _claim1(df)["verdict"] == "not supported"
    falling = _runs(
        {("restricted", 8): [far] * 4 + [near] * 6, ("restricted", 16): [far] * 3 + [near] * 7}
    )
    assert _claim1(falling)["verdict"] == "inconclusive"
    # at most 10 % far is not enough to refute
    few = _runs({("restricted", 8): [far] + [near] * 9, ("restricted", 16): [far] + [near] * 9})
    assert _claim1(few)["verdict"] == "inconclusive"
    # a lower bound cannot show a gap above eps: the same numbers decide nothing
    bound = _runs(
        {("restricted", 8): [far] * 3 + [near] * 7, ("restricted", 16): [far] * 3 + [near] * 7},
        reference="convex_lower_bound",
    )
    assert _claim1(bound)["verdict"] == "inconclusive"


def test_claim1_is_inconclusive_without_converged_regularized_end_points():
    stalled = _runs({("restricted", 16): [1e-6] * 10}, grad=10 * CONVERGED_GRAD)
    v = _claim1(stalled)
    assert v["verdict"] == "inconclusive" and "none reached the gradient" in v["evidence"]
    # teachers without weight decay are the unregularized problem: no evidence
    unregularized = _runs({("restricted", 16): [0.0] * 10}, wd=0.0, reference="teacher_realizable")
    assert claim1_table(unregularized, EPS).empty
    assert _claim1(unregularized)["verdict"] == "inconclusive"
    # an exact reference without weight decay is still the unregularized problem
    unregularized_exact = _runs({("restricted", 16): [0.0] * 10}, wd=0.0)
    assert claim1_table(unregularized_exact, EPS).empty
    # the best of a cell is no reference
    assert claim1_table(_runs({("restricted", 16): [0.0] * 4}, reference="best_in_cell"), EPS).empty
    # a diverged run is never converged
    df = _runs({("restricted", 16): [1e-6] * 4})
    df["run_status"] = "diverged"
    assert claim1_table(df, EPS)["converged"].tolist() == [0]


def test_claim1_table_counts_and_intervals():
    df = _runs({("restricted", 16): [1e-6] * 8 + [1e-3, 2e-3]})
    row = claim1_table(df, EPS).iloc[0]
    assert (row["runs"], row["converged"]) == (10, 10)
    assert row["within_eps"] == 0.8 and row["above_10eps"] == 0.1
    assert row["within_lo"] < 0.8 < row["within_hi"]  # Clopper-Pearson around 8 of 10
    assert row["within_lo"] == pytest.approx(0.4439, abs=1e-4)


def _cell(
    problem="p",
    width=16,
    p90=1e-6,
    above=0.0,
    converged=10,
    par="restricted",
    reference="convex_exact",
    near_kink=0.0,
):
    """One ``claim1_table`` row: 10 runs of which ``converged`` converged, their p90 gap
    and share above 10 eps (NaN without a converged run, as the table writes them)."""
    none = converged == 0
    return dict(
        problem=problem,
        parametrization=par,
        width=width,
        reference=reference,
        runs=10,
        converged=converged,
        gap_p90=np.nan if none else p90,
        within_eps=np.nan if none else 0.9,
        within_lo=np.nan if none else 0.55,
        within_hi=np.nan if none else 1.0,
        above_10eps=np.nan if none else above,
        median_grad_norm=1e-9,
        near_kink=near_kink,
    )


def _claim1_of(*cells):
    return _verdicts(near=pd.DataFrame(list(cells)))[0]


def test_claim1_a_p90_gap_of_exactly_eps_is_within_eps():
    """Within eps means gap <= eps: a p90 equal to eps supports, one a hair above does
    not; the number names that p90 and eps."""
    v = _claim1_of(_cell(p90=EPS))
    assert v["verdict"] == "supported"
    assert "1.00e-04 (eps 0.0001)" in v["number"] and "1 of 1" in v["number"]
    assert _claim1_of(_cell(p90=EPS * (1 + 1e-12)))["verdict"] == "inconclusive"


def test_claim1_refutes_on_the_two_widest_widths_with_converged_end_points():
    """The refutation reads the two widest widths with the exact optimum that have a
    converged end point: a narrower width does not enter, a widest width where none
    converged does not hide the two below it, and one converged run is a share."""
    far = dict(above=0.3, p90=1e-2)
    # the narrowest of three widths is below FAR_SHARE: the two widest decide
    three = [_cell(width=8, above=0.0), _cell(width=16, **far), _cell(width=32, **far)]
    assert _claim1_of(*three)["verdict"] == "not supported"
    # the widest has no converged end point: the two below it decide
    v = _claim1_of(_cell(width=8, **far), _cell(width=16, **far), _cell(width=32, converged=0))
    assert v["verdict"] == "not supported" and "widest width of p" in v["evidence"]
    # one converged end point at each, far from the optimum: a share of 1
    one = dict(converged=1, above=1.0, p90=1e-2)
    assert _claim1_of(_cell(width=8, **one), _cell(width=16, **one))["verdict"] == "not supported"


def test_claim1_evidence_names_each_failing_and_unconverged_problem():
    """Every problem that refutes, and every problem without a converged end point at its
    widest width, is named with the reason."""
    far = dict(above=0.3, p90=1e-2)
    failing = [_cell("a", 8, **far), _cell("a", 16, **far), _cell("b", 8, **far)]
    failing += [_cell("b", 16, **far)]
    v = _claim1_of(*failing)
    assert v["verdict"] == "not supported"
    assert "a, b: more than 10% of converged restricted end points above 10 eps" in v["evidence"]
    assert "above 10 eps at the two widest widths" in v["evidence"]
    v = _claim1_of(_cell("a", converged=0), _cell("b", converged=0))
    assert v["verdict"] == "inconclusive"
    assert "widest width of a, b (none reached the gradient tolerance" in v["evidence"]
    assert "a sample on a kink the one-sided gradient need not vanish" in v["evidence"]
    assert "no converged restricted end point at the widest width" in v["number"]


def test_claim1_evidence_sets_each_problem_beside_its_own_unrestricted_cell():
    """Each problem's line names its widest restricted cell's numbers, and beside them
    the unrestricted cell of that problem and width only (none where none was trained);
    the number is the largest of the problems' p90 gaps."""
    cells = [
        _cell("a", 8, p90=4e-5),
        _cell("a", 16, p90=3e-5, converged=9, near_kink=0.25),
        _cell("a", 8, p90=5e-3, converged=6, par="unrestricted"),
        _cell("a", 16, p90=2e-3, converged=7, par="unrestricted"),
        _cell("b", 16, p90=6e-5),
    ]
    v = _claim1_of(*cells)
    assert v["verdict"] == "supported"
    clauses = v["evidence"].split("; ")
    a = next(c for c in clauses if c.startswith("a: "))
    assert "width 16 (convex_exact), 9 of 10 restricted end points converged" in a
    assert "25% with a sample on a kink" in a and "p90 gap 3.00e-05" in a
    assert "unrestricted beside it: p90 2.00e-03 over 7 converged" in v["evidence"]
    b = next(c for c in clauses if c.startswith("b: "))
    assert "p90 gap 6.00e-05" in b and "beside" not in v["evidence"].split("b: ")[1]
    largest = "largest p90 gap of converged restricted end points at the widest width 6.00e-05"
    assert largest in v["number"]  # b's, the larger of the two problems'


def test_claim1_without_a_deciding_cell_says_why():
    v = _verdicts()[0]
    assert v["verdict"] == "inconclusive"
    why = "no weight-decay cell with the exact convex optimum or a lower bound as "
    assert why in v["evidence"] and "does not decide claim 1" in v["evidence"]
    from realspace.report.claims import classification_claim1

    v = classification_claim1(EMPTY, EPS, ["a"])  # claim1_table of no deciding row
    assert v["verdict"] == "inconclusive"
    assert "no weight-decay classification cell with a deciding reference" in v["evidence"]


# -- claim 4 -------------------------------------------------------------------------------
def _pairs(
    r_gaps, u_gaps, widths=(4, 8), reference="convex_exact", linear=True, problem="sin wd=0.01"
):
    """Restricted and unrestricted rows with the given gaps by seed, at every width."""
    frames = []
    for w in widths:
        frames.append(
            _runs({("restricted", w): list(r_gaps)}, problem=problem, reference=reference)
        )
        frames.append(
            _runs({("unrestricted", w): list(u_gaps)}, problem=problem, reference=reference)
        )
    df = pd.concat(frames, ignore_index=True)
    df["linear_term"] = np.where(df["parametrization"] == "unrestricted", linear, np.nan)
    return df


def _express(as_good=True):
    return pd.DataFrame(
        dict(
            problem="sin wd=0.01",
            width=[4, 8],
            runs=16,
            in_omega=16,
            as_good=16 if as_good else 15,
            max_rel_change=0.0,
        )
    )


def _claim4(df, expressivity=None):
    return _verdicts(paired=paired_table(df, EPS), expressivity=expressivity)[3]


def test_claim4_is_supported_by_non_inferiority_everywhere_with_enough_pairs():
    rng = np.random.default_rng(1)
    u = rng.uniform(0, 1e-5, MIN_PAIRS)
    r = u + rng.uniform(-1e-5, 1e-5, MIN_PAIRS)  # alike within a tenth of eps
    v = _claim4(_pairs(r, u), _express())
    assert v["verdict"] == "supported"
    assert "one-sided 95 % bounds" in v["number"] and f"{MIN_PAIRS} pairs" in v["number"]


def test_claim4_is_not_supported_when_unrestricted_training_is_better_beyond_the_margin():
    u = np.zeros(MIN_PAIRS)
    r = np.full(MIN_PAIRS, 3 * EPS)
    r[:3] = 0.0  # three seeds where the restricted run is as good: still worse in the median
    v = _claim4(_pairs(r, u), _express())
    assert v["verdict"] == "not supported" and "unrestricted better" in v["evidence"]
    # even on unequal function classes, and with few pairs: a smaller class that wins
    worse = _pairs(r[3:11], u[3:11], linear=False)
    assert _claim4(worse, _express())["verdict"] == "not supported"


def test_claim4_is_inconclusive_when_any_condition_of_support_is_missing():
    rng = np.random.default_rng(2)
    u = rng.uniform(0, 1e-5, MIN_PAIRS)
    same = u.copy()
    assert _claim4(_pairs(same, u), _express())["verdict"] == "supported"
    # fewer than MIN_PAIRS pairs
    assert _claim4(_pairs(same[:10], u[:10]), _express())["verdict"] == "inconclusive"
    # the unrestricted model without the linear term: unequal function classes
    v = _claim4(_pairs(same, u, linear=False), _express())
    assert v["verdict"] == "inconclusive" and "linear term" in v["evidence"]
    # expressivity fails, or was not measured
    assert _claim4(_pairs(same, u), _express(as_good=False))["verdict"] == "inconclusive"
    assert _claim4(_pairs(same, u), None)["verdict"] == "inconclusive"
    # half the seeds worse by 3 eps: the median exceeds the margin, but its lower bound
    # does not (the 5th of 16 differences is 0): not shown worse, nor non-inferior
    half = u + np.where(np.arange(MIN_PAIRS) % 2 == 0, 3 * EPS, 0.0)
    t = paired_table(_pairs(half, u), EPS)
    assert (t["median"] > EPS).all() and not t["unrestricted_better"].any()
    assert _claim4(_pairs(half, u), _express())["verdict"] == "inconclusive"
    # spread: the interval straddles the margin (neither non-inferior nor worse)
    wide = u + np.linspace(-5 * EPS, 5 * EPS, MIN_PAIRS)
    t = paired_table(_pairs(wide, u), EPS)
    assert (t["lower"] < EPS).all() and (t["upper"] > EPS).all()
    assert _claim4(_pairs(wide, u), _express())["verdict"] == "inconclusive"
    assert _verdicts()[3]["verdict"] == "inconclusive"


def test_claim4_compares_objective_ratios_where_no_reference_exists():
    """best_in_cell gaps compare nothing across parametrizations: the ratio J_r / J_u is
    tested against a factor 2."""
    u = np.zeros(MIN_PAIRS)  # j_final = 0.3 each
    t = paired_table(_pairs(u, u, reference="best_in_cell"), EPS)
    assert (t["scale"] == "ratio").all() and (t["median"] == 1.0).all() and t["non_inferior"].all()
    worse = np.full(MIN_PAIRS, 0.6)  # J_r = 0.9 = 3 J_u
    t = paired_table(_pairs(worse, u, reference="best_in_cell"), EPS)
    assert t["unrestricted_better"].all() and t["median"].iloc[0] == pytest.approx(3.0)


def test_pairs_are_matched_by_seed_not_by_rank():
    """Restricted seed s equals unrestricted seed s: every paired difference is 0, though
    sorted side by side (by rank) they would differ."""
    u = np.linspace(0, 1e-2, MIN_PAIRS)
    t = paired_table(_pairs(u, u), EPS)
    assert (t["median"] == 0).all() and (t["upper"] == 0).all()
    shuffled = _pairs(u[::-1], u)
    assert (paired_table(shuffled, EPS)["upper"] > EPS).all()


def test_the_rows_claims_rest_on_are_the_method_trained_at_each_width():
    """A by_width sweep trains the projection at small widths and intrinsic coordinates
    above: each width's own method counts. Where both were trained, the default's."""
    from realspace.report.verdict_tables import default_method_rows

    df = pd.concat(
        [
            _runs({("restricted", 4): [0.0] * 2}).assign(restricted_method="projection"),
            _runs({("restricted", 16): [0.0] * 2}).assign(restricted_method="intrinsic"),
            _runs({("restricted", 32): [0.0] * 2}).assign(restricted_method="projection"),
            _runs({("restricted", 32): [0.0] * 2}).assign(restricted_method="intrinsic"),
            _runs({("unrestricted", 32): [0.0] * 2}),
        ],
        ignore_index=True,
    )
    chosen = df[default_method_rows(df)]
    assert sorted(zip(chosen["width"], chosen["restricted_method"], strict=True)) == [
        (4, "projection"),
        (4, "projection"),
        (16, "intrinsic"),
        (16, "intrinsic"),
        (32, "intrinsic"),
        (32, "intrinsic"),
    ]


def test_claim4_compares_trained_end_points_and_counts_diverged_runs_as_lost():
    """Where a polish ran, each run enters with the objective training reached
    (objective_before_polish): the polish optimizes a restricted run's raw parameters,
    not over Omega_N. A diverged restricted run loses its pair; two diverged runs decide
    nothing and are no pair."""
    u = np.zeros(MIN_PAIRS)
    df = _pairs(u, u)
    df["objective_before_polish"] = np.where(
        df["parametrization"] == "restricted", 0.3 + 5 * EPS, np.nan
    )
    t = paired_table(df, EPS)
    assert np.allclose(t["median"], 5 * EPS, rtol=1e-9) and t["unrestricted_better"].all()
    df = _pairs(u, u)
    df.loc[(df["parametrization"] == "restricted") & (df["seed"] < 12), "run_status"] = "diverged"
    assert paired_table(df, EPS)["unrestricted_better"].all()  # 12 of 16 lost: x_(5) = inf
    df.loc[(df["parametrization"] == "unrestricted") & (df["seed"] < 12), "run_status"] = "diverged"
    assert (paired_table(df, EPS)["pairs"] == MIN_PAIRS - 12).all()


def _paired_cell(width=8, scale="gap", median=0.0, lower=-1e-5, upper=1e-5, pairs=MIN_PAIRS):
    """One ``paired_table`` row, its verdict flags read off its bounds and margin."""
    margin = EPS if scale == "gap" else RATIO_MARGIN
    return dict(
        problem="p",
        width=width,
        scale=scale,
        pairs=pairs,
        median=median,
        lower=lower,
        upper=upper,
        margin=margin,
        non_inferior=upper <= margin,
        unrestricted_better=lower > margin,
        linear_term=True,
    )


def _claim4_of(*cells, expressivity=None):
    return _verdicts(paired=pd.DataFrame(list(cells)), expressivity=expressivity)[3]


def test_claim4_names_the_worst_cell_relative_to_its_margin():
    """Gaps and ratios have margins of different sizes: the worst cell is the one whose
    upper bound exceeds its own margin by the most margins (a gap bound 4 eps above eps
    against a ratio bound half a margin above 2), and the number says which scale."""
    gap = _paired_cell(8, "gap", median=2e-4, lower=1e-5, upper=5e-4)
    ratio = _paired_cell(16, "ratio", median=1.5, lower=1.1, upper=3.0)
    v = _claim4_of(gap, ratio, expressivity=_express())
    assert v["verdict"] == "inconclusive"
    assert v["number"].startswith("worst: p width 8, median paired gap difference 0.0002")
    assert "[1e-05, 0.0005] (margin 0.0001, 16 pairs)" in v["number"]
    clauses = v["evidence"].split("; ")  # expressivity, then non-inferiority
    assert clauses[0].startswith("expressivity: 32 of 32") and clauses[1].startswith("non-inf")
    assert "eps 0.0001 on gaps, x2 on objective ratios" in v["evidence"]
    assert "at 0 of 2 (problem, width), 16 to 16 pairs each" in v["evidence"]
    v = _claim4_of(ratio, expressivity=_express())
    assert "worst: p width 16, median paired objective ratio J_r / J_u 1.5" in v["number"]


def test_claim4_evidence_names_where_unrestricted_training_is_better():
    """One cell of two is worse beyond the margin: it refutes, and the evidence names it
    with its median and bounds."""
    fine = _paired_cell(8)
    better = _paired_cell(16, median=3e-4, lower=2e-4, upper=4e-4)
    v = _claim4_of(fine, better, expressivity=_express())
    assert v["verdict"] == "not supported"
    assert "unrestricted better beyond the margin at 1: e.g. p width 16" in v["evidence"]
    assert "median gap difference 0.0003 [0.0002, 0.0004]" in v["evidence"]


def test_claim4_evidence_says_why_it_cannot_decide():
    """Unequal function classes, or nothing measured: the evidence names the reason."""
    v = _claim4_of({**_paired_cell(8), "linear_term": False}, expressivity=_express())
    assert v["verdict"] == "inconclusive"
    assert "free linear term (a smaller function class at equal width)" in v["evidence"]
    v = _verdicts()[3]
    assert v["verdict"] == "inconclusive" and "expressivity not measured" in v["evidence"]
    assert "no width trained in both parametrizations with shared seeds" in v["evidence"]


# -- the tables' rows and boundaries ------------------------------------------------------
def _rows(par, width, gaps, problem="p", reference="convex_exact", j_star=0.25, **columns):
    """Raw rows of one (problem, parametrization, width), one run per gap (seeds 0..),
    with objective j_star + gap; ``columns`` override or add columns (None drops one)."""
    return run_frame(
        {(par, width): gaps}, j_star=j_star, problem=problem, reference=reference, **columns
    )


def test_claim1_table_boundaries_are_inclusive_where_the_rule_says_at_most():
    """Converged is grad_norm <= CONVERGED_GRAD, within eps is gap <= eps, and above
    10 eps is strictly above: runs exactly at each bound fall on the "at most" side."""
    gaps = [EPS, 10 * EPS, 10.5 * EPS, 0.0]
    row = claim1_table(_rows("restricted", 16, gaps, grad_norm=CONVERGED_GRAD), EPS).iloc[0]
    assert row["converged"] == 4
    assert row["within_eps"] == 0.5  # 0 and eps
    assert row["above_10eps"] == 0.25  # 10.5 eps only


def test_claim1_table_reads_runs_without_optional_columns():
    """Runs without a status are judged by their gradient alone; without weight decay
    recorded, no row is regularized; near_kink is the share of runs on a kink, NaN where
    it was not recorded."""
    df = _rows("restricted", 16, [0.0] * 4, run_status=None, near_kink=[True, False, False, False])
    row = claim1_table(df, EPS).iloc[0]
    assert row["converged"] == 4 and row["near_kink"] == 0.25
    assert np.isnan(claim1_table(_rows("restricted", 16, [0.0] * 4), EPS).iloc[0]["near_kink"])
    assert claim1_table(_rows("restricted", 16, [0.0] * 4, weight_decay=None), EPS).empty


def test_claim1_table_names_every_reference_of_a_cell():
    """A cell whose runs rest on the exact optimum and on a lower bound names both; it is
    not an exact-optimum cell, so it cannot refute."""
    df = _rows("restricted", 16, [1e-2] * 4)
    df.loc[df["seed"] < 2, "reference"] = "convex_lower_bound"
    row = claim1_table(df, EPS).iloc[0]
    assert row["reference"] == "convex_exact+convex_lower_bound"
    assert _claim1(pd.concat([df, df.assign(width=8)]))["verdict"] == "inconclusive"


def test_the_method_of_each_width_is_chosen_per_problem():
    """Two problems at one width, each trained with one method: each keeps its own rows
    (several methods means several at the same problem and width). Without a problem
    column the choice is per width."""
    from realspace.report.verdict_tables import default_method_rows

    df = pd.concat(
        [
            _rows("restricted", 8, [0.0] * 2, problem="a", restricted_method="projection"),
            _rows("restricted", 8, [0.0] * 2, problem="b"),
            _rows("unrestricted", 8, [0.0] * 2, problem="a"),
        ],
        ignore_index=True,
    )
    assert default_method_rows(df).tolist() == [True] * 4 + [False] * 2
    no_problem = df[df["problem"] == "a"].drop(columns="problem")
    assert default_method_rows(no_problem).tolist() == [True, True, False, False]


def test_paired_table_reads_runs_without_optional_columns():
    """Without linear_term recorded (or with it missing on an unrestricted run) the
    unrestricted runs lack the linear term; without seeds nothing can be paired."""
    n = MIN_PAIRS
    df = pd.concat(
        [_rows("restricted", 8, [0.0] * n), _rows("unrestricted", 8, [0.0] * n)], ignore_index=True
    )
    t = paired_table(df, EPS)
    assert t["pairs"].tolist() == [n] and t["linear_term"].tolist() == [True]
    assert paired_table(df.drop(columns="linear_term"), EPS)["linear_term"].tolist() == [False]
    missing = df.assign(linear_term=df["linear_term"].where(df["seed"] > 0))
    assert paired_table(missing, EPS)["linear_term"].tolist() == [False]
    assert paired_table(df.drop(columns="seed"), EPS).empty


def test_paired_table_compares_gaps_only_where_both_sides_have_a_reference():
    """A best_in_cell gap on either side compares nothing across parametrizations: the
    objective ratio decides; with references on both sides, the gaps do."""
    n = MIN_PAIRS
    for ref_r, ref_u in [("best_in_cell", "convex_exact"), ("convex_exact", "best_in_cell")]:
        df = pd.concat(
            [
                _rows("restricted", 8, [0.0] * n, reference=ref_r),
                _rows("unrestricted", 8, [0.0] * n, reference=ref_u),
            ]
        )
        assert paired_table(df, EPS)["scale"].tolist() == ["ratio"]
    df = pd.concat([_rows("restricted", 8, [0.0] * n), _rows("unrestricted", 8, [0.0] * n)])
    assert paired_table(df, EPS)["scale"].tolist() == ["gap"]


def test_paired_gap_differences_are_the_recorded_gaps():
    """Without a polish each run's gap is the one recorded against its own reference,
    which may differ between the parametrizations (an exact optimum against a lower
    bound): the paired difference is gap_r - gap_u (exact binary numbers here)."""
    n = MIN_PAIRS
    r = _rows("restricted", 8, [2.0**-12] * n, j_star=0.25)
    u = _rows("unrestricted", 8, [2.0**-11] * n, reference="convex_lower_bound", j_star=0.125)
    t = paired_table(pd.concat([r, u]), EPS)
    assert t["median"].tolist() == [2.0**-12 - 2.0**-11]


def test_a_ratio_against_a_diverged_run_is_lost_not_dropped():
    """A diverged restricted run enters as J = +inf (the ratio +inf): it stays a pair and
    loses it. 12 of 16 lost: the 5th smallest ratio is +inf, unrestricted is better."""
    n = MIN_PAIRS
    r = _rows("restricted", 8, [0.0] * n, reference="best_in_cell")
    r["run_status"] = np.where(r["seed"] < 12, "diverged", "converged")
    u = _rows("unrestricted", 8, [0.0] * n, reference="best_in_cell")
    t = paired_table(pd.concat([r, u]), EPS).iloc[0]
    assert t["pairs"] == n and t["lower"] == np.inf and t["unrestricted_better"]


def test_a_bound_exactly_at_the_margin_is_within_it():
    """Non-inferior is upper <= margin and "unrestricted better" is lower > margin: every
    ratio exactly 2 (J_r = 0.5, J_u = 0.25) or every gap difference exactly eps (a power
    of two here) is non-inferior and not worse."""
    n = MIN_PAIRS
    r = _rows("restricted", 8, [0.0] * n, reference="best_in_cell", j_star=0.5)
    u = _rows("unrestricted", 8, [0.0] * n, reference="best_in_cell", j_star=0.25)
    t = paired_table(pd.concat([r, u]), EPS).iloc[0]
    assert (t["scale"], t["lower"], t["upper"]) == ("ratio", RATIO_MARGIN, RATIO_MARGIN)
    assert t["non_inferior"] and not t["unrestricted_better"]
    eps = 2.0**-10
    r, u = _rows("restricted", 8, [eps] * n), _rows("unrestricted", 8, [0.0] * n)
    t = paired_table(pd.concat([r, u]), eps).iloc[0]
    assert (t["scale"], t["lower"], t["upper"]) == ("gap", eps, eps)
    assert t["non_inferior"] and not t["unrestricted_better"]


def test_claim1_converged_means_the_certificate_tolerance_1e_6():
    """Converged is the certificate's float64 gradient tolerance, 1e-6 (docs/science.md),
    written here as a number rather than read from the module: an end point at 1e-5, far
    from optimal, is not converged and cannot refute claim 1; at 1e-6 it is and does."""
    far, near = 1e-2, 1e-6
    cells = {("restricted", 8): [far] * 3 + [near] * 7, ("restricted", 16): [far] * 3 + [near] * 7}
    assert claim1_table(_runs(cells, grad=1e-5), EPS)["converged"].tolist() == [0, 0]
    assert _claim1(_runs(cells, grad=1e-5))["verdict"] == "inconclusive"
    assert _claim1(_runs(cells, grad=1e-6))["verdict"] == "not supported"


def test_claim1_a_realizable_teacher_never_decides_even_with_weight_decay():
    """A teacher's zero optimum is the unregularized problem's: with a penalty the optimum
    is positive, so rows labelled teacher_realizable (whatever their weight decay) are no
    reference for claim 1. Only the convex optimum and the lower bounds decide."""
    rows = _runs({("restricted", 16): [1e-6] * 10}, reference="teacher_realizable")
    assert claim1_table(rows, EPS).empty
    assert _claim1(rows)["verdict"] == "inconclusive"
