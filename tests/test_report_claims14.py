"""Claims 1 and 4: their tables and verdict rules on constructed evidence, each outcome
built; the order-statistic bounds they rest on against the binomial distribution."""

import numpy as np
import pandas as pd
import pytest

from realspace.quantiles import median_bounds, quantile_lower_bound, quantile_upper_bound
from realspace.report.claims import claim_verdicts
from realspace.report.verdict_tables import (
    CONVERGED_GRAD,
    MIN_PAIRS,
    claim1_table,
    paired_table,
)

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
    """Rows of ``cells``: (parametrization, width) -> list of gaps, one run each."""
    rows = []
    for (par, width), gaps in cells.items():
        for seed, gap in enumerate(gaps):
            rows.append(
                dict(
                    problem=problem,
                    parametrization=par,
                    restricted_method="intrinsic" if par == "restricted" else np.nan,
                    width=width,
                    seed=seed,
                    weight_decay=wd,
                    reference=reference,
                    gap=gap,
                    j_final=0.3 + gap,
                    grad_norm=grad,
                    run_status="converged",
                    linear_term=True,
                )
            )
    return pd.DataFrame(rows)


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
