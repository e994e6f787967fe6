"""Statistics on synthetic frames whose answers are known by construction."""

import warnings

import numpy as np
import pandas as pd
import pytest
from factories import run_frame

from realspace import stats
from realspace.report.verdict_tables import paired_table


def frame(gap_of_width, widths=(4, 8, 16, 32), seeds=5, j_star=0.5, wd=0.0):
    """Runs of one problem in both parametrizations with objective J* + gap(width, seed),
    as loaded: before stats labels their problem and measures their gaps (no problem,
    reference or gap), and older records without a restricted method, gradient norm or
    linear term."""
    cells = {
        (par, w): [gap_of_width(w, s) for s in range(seeds)]
        for par in ("unrestricted", "restricted")
        for w in widths
    }
    return run_frame(
        cells,
        j_star=j_star,
        problem=None,
        restricted_method=None,
        reference=None,
        gap=None,
        grad_norm=None,
        linear_term=None,
        weight_decay=wd,
        loss=lambda df: df["j_final"] if wd == 0 else df["j_final"] - 0.1,
        objective=lambda df: df["j_final"],
        j_final=None,
        target_label="sin",
        target="sin",
        certified=lambda df: df["seed"] % 2 == 0,
        d=1,
        census_dead=lambda df: np.where(df["parametrization"] == "unrestricted", 0.25, 0.0),
        census_affine=0.0,
        census_duplicate=0.0,
        census_opposite=0.0,
        census_imbalance_mean=0.1,
        census_effective_width=lambda df: df["width"] - 1,
    )


def reference(df, value=0.5, label="convex_exact"):
    return pd.DataFrame({"j_star": value, "reference": label}, index=df.index)


def test_gap_quantiles_and_share_within_eps_per_cell():
    # gaps 0, 1e-3, 2e-3, 3e-3, 4e-3 in every cell
    df = stats.with_problems(frame(lambda w, s: 1e-3 * s, wd=0.01))
    df = stats.gap_values(df, reference(df))
    cells = stats.cell_stats(df, eps=1.5e-3)
    assert len(cells) == 8
    row = cells.iloc[0]
    assert row["gap_median"] == pytest.approx(2e-3)
    assert row["gap_max"] == pytest.approx(4e-3)
    assert row["gap_p90"] == pytest.approx(np.quantile([0, 1e-3, 2e-3, 3e-3, 4e-3], 0.9))
    assert row["within_eps"] == pytest.approx(2 / 5)
    # certified: seeds 0, 2, 4 with gaps 0, 2e-3, 4e-3; spurious: gap > eps -> 2 of 3
    assert row["certified"] == 3 and row["spurious"] == 2
    assert row["spurious_share"] == pytest.approx(2 / 3)
    assert set(cells["problem"]) == {"sin"} and set(cells["reference"]) == {"convex_exact"}


def test_weight_decay_gaps_use_the_objective_and_plain_ones_the_loss():
    df = frame(lambda w, s: 0.0, wd=0.01)
    assert (stats.trained_objective(df) == df["objective"]).all()
    df0 = frame(lambda w, s: 0.0)
    df0["objective"] = 99.0
    assert (stats.trained_objective(df0) == df0["loss"]).all()


def test_decay_exponent_recovers_a_power_law():
    df = stats.with_problems(frame(lambda w, s: 3.0 * w**-1.5 * (1 + 0.1 * s)))
    df = stats.gap_values(df, reference(df, label="teacher_realizable"))
    rates = stats.decay_rates(stats.cell_stats(df, eps=1e-6))
    assert rates["exponent"].to_numpy() == pytest.approx([-1.5, -1.5], abs=1e-9)
    assert (rates["widths_fitted"] == 4).all()


def test_best_in_cell_is_the_fallback_and_is_not_fitted():
    df = stats.with_problems(frame(lambda w, s: 0.1 * s / w))
    ref = pd.DataFrame({"j_star": np.nan, "reference": ""}, index=df.index)
    df = stats.gap_values(df, ref)
    assert (df["reference"] == "best_in_cell").all()
    assert df.groupby(["parametrization", "width"])["gap"].min().max() == 0.0
    rates = stats.decay_rates(stats.cell_stats(df, eps=1e-6))
    assert rates["exponent"].isna().all()  # spread between seeds is not a decay rate


def test_claim4_table_compares_best_and_median_at_equal_width():
    df = frame(lambda w, s: 0.01 * (s + 1))
    df.loc[(df["parametrization"] == "restricted") & (df["width"] == 8), "loss"] += 1.0
    df = stats.with_problems(df)
    c4 = stats.claim4_table(df)
    assert len(c4) == 4
    assert c4.set_index("width")["restricted_as_good"].to_dict() == {
        4: True,
        8: False,
        16: True,
        32: True,
    }
    assert c4.set_index("width").loc[8, "best_restricted"] == pytest.approx(1.51)


def test_census_means_per_cell():
    """Each seed of a cell has its own census values; the table holds their arithmetic mean,
    worked out by hand here (it differs from the cell's max, min, median, first and last
    seed), and the two parametrizations at one width are kept apart."""
    df = stats.with_problems(frame(lambda w, s: 0.0))
    per_seed = {  # seeds 0..4
        "census_dead": [0.0, 0.25, 0.5, 0.25, 0.5],  # sum 1.5
        "census_duplicate": [0.125, 0.0, 0.0, 0.375, 0.0],  # sum 0.5
        "census_imbalance_mean": [0.1, 0.4, 0.9, 1.6, 2.5],  # sum 5.5
        "census_effective_width": [15, 14, 13, 15, 11],  # sum 68
    }
    cell = (df["parametrization"] == "unrestricted") & (df["width"] == 16)
    for col, values in per_seed.items():
        df[col] = df[col].astype(float)
        df.loc[cell, col] = df.loc[cell, "seed"].map(dict(enumerate(values)))
    census = stats.census_table(df).set_index(["parametrization", "width"])
    assert len(census) == 8  # 2 parametrizations x 4 widths
    got = census.loc[("unrestricted", 16)]
    assert got["dead"] == pytest.approx(1.5 / 5, abs=1e-15)
    assert got["duplicate"] == pytest.approx(0.5 / 5, abs=1e-15)
    assert got["imbalance_mean"] == pytest.approx(5.5 / 5, abs=1e-15)
    assert got["effective_width"] == pytest.approx(68 / 5, abs=1e-12)
    assert got["affine"] == 0.0 and got["opposite"] == 0.0
    # the other cells keep the frame's constant values (every seed alike)
    other = census.loc[("restricted", 16)]
    assert (other["dead"], other["effective_width"]) == (0.0, 15)
    assert census.loc[("unrestricted", 8), "dead"] == 0.25


def test_problem_labels_name_the_axes_a_sweep_varies():
    df = pd.concat(
        [frame(lambda w, s: 0.0).assign(lr=0.01), frame(lambda w, s: 0.0).assign(lr=0.001)]
    )
    assert set(stats.with_problems(df)["problem"]) == {"sin lr=0.01", "sin lr=0.001"}


def test_claim4_keeps_restricted_methods_apart_and_rests_on_the_default():
    from realspace.core.choices import DEFAULT_RESTRICTED_METHOD, RESTRICTED_METHODS

    other = next(m for m in RESTRICTED_METHODS if m != DEFAULT_RESTRICTED_METHOD)
    base = frame(lambda w, s: 0.01 * (s + 1))
    bad = base[base["parametrization"] == "restricted"].copy()
    bad["loss"] += 1.0  # the other method loses at every width
    bad["restricted_method"] = other
    df = pd.concat([base.assign(restricted_method=DEFAULT_RESTRICTED_METHOD), bad])
    df.loc[df["parametrization"] == "unrestricted", "restricted_method"] = np.nan
    df = stats.with_problems(df)
    c4 = stats.claim4_table(df)
    assert len(c4) == 8 and set(c4["method"]) == {DEFAULT_RESTRICTED_METHOD, other}
    good = c4.set_index("method")["restricted_as_good"]
    assert good[DEFAULT_RESTRICTED_METHOD].all() and not good[other].any()
    # claim 4's paired test rests on the default method's rows, never the other's
    gaps = stats.gap_values(df, pd.DataFrame({"j_star": np.nan, "reference": ""}, index=df.index))
    paired = paired_table(gaps, 1e-3)
    assert len(paired) == 4 and (paired["median"] == 1.0).all()  # ratio: the same objective
    # every cell table keeps the methods apart
    cells = stats.cell_stats(
        stats.with_methods(
            stats.gap_values(df, pd.DataFrame({"j_star": np.nan, "reference": ""}, index=df.index))
        ),
        eps=1e-3,
    )
    assert set(cells["parametrization"]) == {
        "unrestricted",
        f"restricted-{DEFAULT_RESTRICTED_METHOD}",
        f"restricted-{other}",
    }


def test_restricted_rows_without_a_method_were_projected():
    df = frame(lambda w, s: 0.0)
    method = stats.restricted_methods(df)
    assert set(method[df["parametrization"] == "restricted"]) == {"projection"}
    assert set(method[df["parametrization"] == "unrestricted"]) == {""}


def test_expressivity_counts_canonical_forms_in_omega_as_good_as_their_runs():
    df = frame(lambda w, s: 0.01 * (s + 1))
    u = df["parametrization"] == "unrestricted"
    df["canonical_objective"] = np.where(u, df["loss"], np.nan)
    df["canonical_member"] = u
    df.loc[u & (df["width"] == 8) & (df["seed"] == 0), "canonical_objective"] += 1.0
    ex = stats.expressivity_table(stats.with_problems(df)).set_index("width")
    assert ex["runs"].tolist() == [5, 5, 5, 5]
    assert ex["in_omega"].tolist() == [5, 5, 5, 5]
    assert ex["as_good"].tolist() == [5, 4, 5, 5]
    assert stats.expressivity_table(frame(lambda w, s: 0.0)).empty  # older records


def test_the_report_opens_with_the_claims_at_a_glance():
    from realspace.report.evidence import collect_evidence
    from realspace.report.sections import report_sections

    df = frame(lambda w, s: 0.01 * (s + 1))
    df["run_key"] = [f"k{i}" for i in range(len(df))]
    ref = pd.DataFrame({"j_star": np.nan, "reference": ""}, index=df.index)
    sections = report_sections(collect_evidence(df, {}, 1e-4, reference=ref))
    glance = sections[0]
    assert glance.heading == "Claims at a glance"
    assert glance.table["claim"].tolist() == [1, 2, 3, 4]
    assert set(glance.table.columns) >= {"verdict", "rests on", "section", "figure"}
    assert "width" in glance.table.set_index("claim").loc[4, "rests on"]
    headings = [s.heading for s in sections]
    # the sections of claims 2 and 3 show the stages' evidence: absent without stages;
    # claim 1's table needs weight-decay cells with a deciding reference
    ran = ("Inverse stability", "Claim 2", "Claim 1")
    expected = [h for h in glance.table["section"] if not h.startswith(ran)]
    assert all(h in headings for h in expected)


# -- the cell table's numbers, by hand ---------------------------------------------------
def dyadic_cells(eps=0.125):
    """One sweep, J* = 0.5 (convex_exact) and per seed the gaps 0.25, 0, 0.0625, 0.5, 0.125
    (exact in binary, so a gap can equal eps exactly); seeds 0, 2, 4 are certified."""
    gaps = [0.25, 0.0, 0.0625, 0.5, 0.125]
    df = stats.with_problems(frame(lambda w, s: gaps[s], widths=(16, 4), wd=0.01))
    return stats.gap_values(df, reference(df)), eps


def test_cell_numbers_by_hand_with_a_gap_exactly_at_eps():
    """Sorted gaps 0, 1/16, 1/8, 1/4, 1/2: median 1/8, max 1/2, and the 10th / 90th
    percentiles interpolated linearly between order statistics (positions 0.4 and 3.6:
    0.4 / 16 and 1/4 + 0.6 / 4). Within eps = 1/8: three gaps, the one at eps included.
    J = 0.5 + gap: best 0.5, median 0.625. Certified (seeds 0, 2, 4): gap 1/4 is
    spurious (J - J* > eps), gap 1/8 = eps is not and is optimal (J - J* <= eps)."""
    df, eps = dyadic_cells()
    cells = stats.cell_stats(df, eps)
    row = cells.set_index(["parametrization", "width"]).loc[("unrestricted", 16)]
    assert row["runs"] == 5 and row["j_star"] == 0.5 and row["reference"] == "convex_exact"
    assert row["gap_p10"] == pytest.approx(0.4 / 16, abs=1e-15)
    assert row["gap_median"] == 0.125
    assert row["gap_p90"] == pytest.approx(0.25 + 0.6 / 4, abs=1e-15)
    assert row["gap_max"] == 0.5
    assert row["within_eps"] == 3 / 5
    assert (row["best"], row["median"]) == (0.5, 0.625)
    assert (row["certified"], row["spurious"], row["undecided"]) == (3, 1, 0)
    assert row["spurious_share"] == 1 / 3
    assert stats.minimum_verdicts(df, eps).tolist()[:5] == [
        "spurious",
        "",
        "optimal",
        "",
        "optimal",
    ]


def test_cells_come_sorted_by_parametrization_and_numeric_width():
    """The frame lists unrestricted before restricted and width 16 before 4; the table is
    sorted by problem, parametrization, then width as a number (4 before 16)."""
    df, eps = dyadic_cells()
    cells = stats.cell_stats(df, eps)
    assert cells[["parametrization", "width"]].values.tolist() == [
        ["restricted", 4],
        ["restricted", 16],
        ["unrestricted", 4],
        ["unrestricted", 16],
    ]
    assert list(cells.columns[:3]) == ["problem", "parametrization", "width"]


def test_a_cell_mixing_references_names_both_and_one_without_minima_has_no_share():
    """A cell whose runs fall back to the best in the cell for some seeds names both
    labels, sorted and joined by '+'. A cell with no certified minimum has spurious_share
    NaN (0 / 0 is not computed: no warning)."""
    df = stats.with_problems(frame(lambda w, s: 0.01 * s, widths=(4,), wd=0.01))
    ref = reference(df)
    ref.loc[df["seed"] == 3, "j_star"] = np.nan
    df = stats.gap_values(df, ref)
    df["certified"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cells = stats.cell_stats(df, eps=1e-3)
    assert set(cells["reference"]) == {"best_in_cell+convex_exact"}
    assert (cells["certified"] == 0).all() and cells["spurious_share"].isna().all()


def test_decay_rates_fit_only_positive_median_gaps_and_report_the_widest():
    """Median gap 1/w at widths 4, 8, 16 and exactly 0 at 32 (the optimum reached): the
    exponent -1 comes from the three positive widths (a zero gap has no logarithm and is
    not counted as fitted); the widest width and its median gap are reported as they are."""
    df = stats.with_problems(frame(lambda w, s: 0.0 if w == 32 else 1.0 / w))
    df = stats.gap_values(df, reference(df, label="teacher_realizable"))
    rates = stats.decay_rates(stats.cell_stats(df, eps=1e-6))
    assert rates[["problem", "parametrization"]].values.tolist() == [
        ["sin", "restricted"],
        ["sin", "unrestricted"],
    ]
    assert rates["exponent"].to_numpy() == pytest.approx([-1.0, -1.0], abs=1e-12)
    assert rates["widths_fitted"].tolist() == [3, 3]
    assert rates["widest"].tolist() == [32, 32]
    assert rates["gap_median_widest"].tolist() == [0.0, 0.0]


def test_claim4_median_ratio_and_its_columns():
    """Objectives 0.5 + 0.01 (s + 1), s = 0..4: both medians 0.53, a ratio of 1, except at
    width 8 where the restricted runs are 1 higher: 1.53 / 0.53. The table has exactly the
    documented columns and a fresh index."""
    df = frame(lambda w, s: 0.01 * (s + 1))
    df.loc[(df["parametrization"] == "restricted") & (df["width"] == 8), "loss"] += 1.0
    c4 = stats.claim4_table(stats.with_problems(df))
    assert list(c4.columns) == [
        "problem",
        "width",
        "method",
        "best_unrestricted",
        "best_restricted",
        "median_unrestricted",
        "median_restricted",
        "restricted_as_good",
        "median_ratio",
    ]
    assert list(c4.index) == [0, 1, 2, 3]
    ratio = c4.set_index("width")["median_ratio"]
    assert ratio[8] == pytest.approx(1.53 / 0.53, rel=1e-12)
    assert ratio.drop(8).to_numpy() == pytest.approx([1.0, 1.0, 1.0], rel=1e-12)


def test_claim4_needs_both_parametrizations():
    df = stats.with_problems(frame(lambda w, s: 0.01 * s))
    for par in ("unrestricted", "restricted"):
        only = df[df["parametrization"] == par]
        assert stats.claim4_table(only).empty


def test_at_least_as_good_at_the_edges_of_its_slack():
    """restricted <= unrestricted (1 + 1e-3) + 1e-9: against 0 the absolute 1e-9 alone, the
    edge itself included; against 1 the relative 1e-3."""
    good = stats.at_least_as_good(
        np.array([1e-9, 2e-9, 1.0009, 1.0011, 0.5]), np.array([0.0, 0.0, 1.0, 1.0, 1.0])
    )
    assert good.tolist() == [True, False, True, False, True]


def test_expressivity_relative_changes_by_hand():
    """Per run J and canonical objective C, rel = (C - J) / |J|: J = 1e6, C = J + 1 is
    exactly the tolerance 1e-6 (as good); J = 0.5, C = 0.375: -1/4; J = C = 0: 0 (no 0 / 0);
    J = 0.25, C = 0.5: +1, worse, and not in Omega_N. Counts 4 runs, 3 in Omega_N, 3 as
    good; the largest change +1."""
    j = [1e6, 0.5, 0.0, 0.25]
    df = pd.DataFrame(
        dict(
            problem="sin",
            parametrization="unrestricted",
            width=8,
            weight_decay=0.0,
            loss=j,
            objective=[99.0] * 4,  # not what was trained without weight decay
            canonical_objective=[1e6 + 1, 0.375, 0.0, 0.5],
            canonical_member=[True, True, True, False],
        )
    )
    table = stats.expressivity_table(df)
    assert all(pd.api.types.is_integer_dtype(table[c]) for c in ("runs", "in_omega", "as_good"))
    ex = table.iloc[0]
    assert (ex["runs"], ex["in_omega"], ex["as_good"]) == (4, 3, 3)
    assert ex["max_rel_change"] == 1.0
    # C just above the tolerance is no longer as good
    df.loc[0, "canonical_objective"] = 1e6 + 1.5
    assert stats.expressivity_table(df).iloc[0]["as_good"] == 2


# -- labels, methods and defaults of older records ---------------------------------------
def test_problem_labels_name_the_optimizer_and_format_numbers_short():
    """The optimizer is one of the axes (weight decay is not: the target label names it);
    numbers are written in the short general format (1/3 as 0.333333)."""
    df = pd.concat(
        [
            frame(lambda w, s: 0.0).assign(optimizer="adam", lr=1 / 3),
            frame(lambda w, s: 0.0, wd=0.01).assign(optimizer="sgd", lr=0.25),
        ]
    )
    labels = set(stats.with_problems(df)["problem"])
    assert labels == {"sin optimizer=adam lr=0.333333", "sin optimizer=sgd lr=0.25"}


def test_an_empty_frame_gets_an_empty_problem_column_of_strings():
    full = stats.with_problems(frame(lambda w, s: 0.0))
    empty = stats.with_problems(frame(lambda w, s: 0.0).iloc[:0])
    assert "problem" in empty and len(empty) == 0
    assert empty["problem"].dtype == full["problem"].dtype


def test_older_records_without_the_newer_columns_read_as_their_defaults():
    """A frame without parametrization is all unrestricted (no method); a restricted row
    whose method is empty was projected; a frame with one method (besides unrestricted
    rows) keeps its labels."""
    df = frame(lambda w, s: 0.01 * s).iloc[[0, 1, 25]].set_axis([7, 3, 11])
    assert stats.restricted_methods(df.drop(columns="parametrization")).tolist() == [""] * 3
    df["restricted_method"] = ["", "", ""]
    assert stats.restricted_methods(df).tolist() == ["", "", "projection"]
    one = stats.with_methods(df)
    assert one["parametrization"].tolist() == ["unrestricted", "unrestricted", "restricted"]


def test_gap_values_carry_the_attained_upper_bound_where_given():
    df = stats.with_problems(frame(lambda w, s: 0.01 * s))
    ref = reference(df).assign(j_upper=np.where(df["seed"] == 1, 0.75, np.nan))
    out = stats.gap_values(df, ref)
    np.testing.assert_array_equal(out["j_upper"], ref["j_upper"])
    assert "j_upper" not in stats.gap_values(df, reference(df))


def test_specs_are_read_back_row_by_row():
    from realspace.core.spec import RunSpec

    specs = [RunSpec(target="sin", width=4, seed=2), RunSpec(target="abs", width=8, lr=0.25)]
    df = pd.DataFrame([s.to_dict() for s in specs]).assign(loss=1.0)
    assert stats.specs_of(df) == specs


def test_reference_frame_is_reference_optima_per_row_with_the_attained_upper_bound():
    """Per row, under the frame's own index: (J*, label) as realspace.convex computes them,
    at the sampling asked for and by default at the optimum module's own default (a sampled
    d = 3 problem, where the sampling changes J*); j_upper for cross-entropy rows with
    weight decay: the separable program's objective at widths at least its network's width,
    NaN below it and on every other loss."""
    from dataclasses import replace

    from realspace.convex import reference_optima, separable_upper_bounds
    from realspace.core.spec import RunSpec

    ce = RunSpec(
        target="teacher_labels",
        d=3,
        n_samples=12,
        n_classes=3,
        teacher_width=3,
        teacher_seed=1,
        weight_decay=0.02,
    )
    ((upper, _, width),) = separable_upper_bounds([ce], samples=100)
    assert 1 < width < 16 and np.isfinite(upper)
    mse = RunSpec(
        target="teacher",
        d=3,
        n_samples=20,
        sampling="uniform",
        teacher_width=2,
        weight_decay=0.01,
        width=8,
    )
    specs = [replace(ce, width=w) for w in (width - 1, width, 16)] + [mse, RunSpec(target="sin")]
    index = [10, 30, 20, 50, 40]
    df = pd.DataFrame([s.to_dict() for s in specs], index=index)
    ref = stats.reference_frame(df, samples=100)
    assert list(ref.index) == index
    np.testing.assert_array_equal(ref["j_upper"], [np.nan, upper, upper, np.nan, np.nan])
    want = pd.DataFrame(reference_optima(specs, samples=100), columns=["j_star", "reference"])
    assert ref["reference"].tolist() == want["reference"].tolist()
    np.testing.assert_allclose(ref["j_star"], want["j_star"], rtol=1e-12)
    assert ref["reference"].tolist()[3] == "convex_sampled_upper_bound"
    (default,) = stats.reference_frame(df.loc[[50]])["j_star"]
    assert default == pytest.approx(reference_optima([mse])[0][0], rel=1e-12)


def _cells_frame():
    """Rows of six cells, three seeds each, interleaved: unregularized cells (a teacher
    below and at its width, a noisy teacher, sin, a cross-entropy classifier) and a
    weight-decay cell, whose reference reads each seed's data."""
    from dataclasses import replace

    from realspace.core.spec import RunSpec

    bases = [
        RunSpec(target="teacher", teacher_width=3, width=2),
        RunSpec(target="teacher", teacher_width=3, width=3),
        RunSpec(target="teacher", teacher_width=3, width=3, noise=0.1),
        RunSpec(target="sin", width=4, target_params=(("freq", 2.0),)),
        RunSpec(target="teacher_labels", n_classes=3, teacher_width=3, width=16, n_samples=12),
        RunSpec(target="sin", width=4, weight_decay=0.01, n_samples=8),
    ]
    specs = [replace(b, seed=seed) for seed in (0, 5, 9) for b in bases]
    df = pd.DataFrame([sp.to_dict() for sp in specs], index=np.arange(len(specs))[::-1] * 7)
    df["target_params"] = [dict(sp.target_params) for sp in specs]  # as the reader gives
    return specs, df


def test_spec_groups_are_the_rows_whose_specs_differ_only_by_seed():
    from dataclasses import replace

    from realspace.core.spec import RunSpec

    specs, df = _cells_frame()
    codes, first = stats.spec_groups(df)
    unseeded = [replace(sp, seed=0) for sp in specs]
    order = list(dict.fromkeys(unseeded))  # distinct specs, in order of appearance
    assert codes.tolist() == [order.index(u) for u in unseeded]
    assert first.tolist() == [unseeded.index(u) for u in order]
    # any field but the seed sets a row apart from its cell: each changed in one row
    fields = [f for f in df if f != "seed"]
    assert set(fields) <= set(RunSpec.__dataclass_fields__) and len(fields) >= 24
    for f in fields:
        column = df[f].tolist()
        v = column[0]
        column[0] = (  # a value no row has
            {"x": 1.0} if isinstance(v, dict) else not v if isinstance(v, bool) else
            0.5 if v is None or v != v else v + 1000 if isinstance(v, int | float) else f"{v}x"
        )  # fmt: skip
        moved, _ = stats.spec_groups(df.assign(**{f: column}))
        assert moved[0] not in moved[1:], f


def test_reference_frame_per_cell_is_the_per_row_reference():
    """One answer per unregularized cell, each seed's own where the data count: equal to
    reference_optima and separable_upper_bounds run row by row (the rule before cells)."""
    from realspace.convex import reference_optima, separable_upper_bounds

    specs, df = _cells_frame()
    ref = stats.reference_frame(df, samples=50)
    want = reference_optima(specs, samples=50)
    assert list(ref.index) == list(df.index)
    assert ref["reference"].tolist() == [lab for _, lab in want]
    np.testing.assert_array_equal(ref["j_star"], [j for j, _ in want])
    upper = []
    for sp in specs:
        value, _, width = (
            separable_upper_bounds([sp], 50)[0] if sp.loss == "cross_entropy" else (np.nan, "", 0)
        )
        upper.append(value if sp.width >= width else np.nan)
    np.testing.assert_array_equal(ref["j_upper"], upper)
    assert set(ref["reference"]) == {"teacher_realizable", "", "convex_lower_bound"}


# -- classification cells ----------------------------------------------------------------
def classification_runs():
    """Two classification cells and a regression run, listed out of order: "spirals3"
    (3 classes, wd 0.02, four seeds with different accuracies, margins and attained upper
    bounds) before "labels" (n_classes not recorded: binary; one run, no weight decay)."""
    spirals = dict(problem="spirals3", parametrization="unrestricted", width=8)
    return pd.DataFrame(
        [
            dict(spirals, target="spirals", n_classes=3, weight_decay=0.02, accuracy=a, **m)
            for a, m in zip(
                [1.0, 0.75, 1.0, 0.5],
                [
                    dict(normalized_margin=0.25, j_upper=0.9),
                    dict(normalized_margin=-0.5, j_upper=0.7),
                    dict(normalized_margin=0.125, j_upper=0.8),
                    dict(normalized_margin=0.375, j_upper=np.nan),
                ],
                strict=True,
            )
        ]
        + [
            dict(
                problem="labels",
                parametrization="restricted",
                width=4,
                target="teacher_labels",
                n_classes=np.nan,
                weight_decay=0.0,
                accuracy=1.0,
                normalized_margin=0.3,
                j_upper=np.nan,
            ),
            dict(problem="sin", parametrization="unrestricted", width=8, target="sin"),
        ]
    )


def test_classification_cells_by_hand():
    """Per cell, sorted by problem: the loss named by the class count, the cell's weight
    decay, median accuracy (0.875), the share all correct (2 of 4), the median and the
    smallest margin (0.1875, -0.5), the smallest attained upper bound (0.7; NaN where none).
    The cell table's reference, J*, median gap and share within eps join each cell; a cell
    missing there stays, with NaN."""
    cells = pd.DataFrame(
        dict(
            problem=["spirals3"],
            parametrization="unrestricted",
            width=8,
            reference="convex_relaxation_lower_bound",
            j_star=0.625,
            gap_median=0.125,
            within_eps=0.25,
            runs=4,
        )
    )
    table = stats.classification_table(classification_runs(), cells)
    assert table["problem"].tolist() == ["labels", "spirals3"]
    labels, spirals = (table.iloc[i] for i in range(2))
    assert (labels["loss"], labels["classes"], labels["runs"]) == ("logistic", 2, 1)
    assert (labels["weight_decay"], labels["accuracy_median"], labels["margin_min"]) == (
        0.0,
        1.0,
        0.3,
    )
    assert labels[["reference", "j_star", "gap_median", "within_eps", "j_upper"]].isna().all()
    assert (spirals["loss"], spirals["classes"], spirals["runs"]) == ("cross_entropy", 3, 4)
    assert spirals["weight_decay"] == 0.02
    assert (spirals["accuracy_median"], spirals["all_correct"]) == (0.875, 0.5)
    assert (spirals["margin_median"], spirals["margin_min"]) == (0.1875, -0.5)
    assert spirals["j_upper"] == 0.7
    assert spirals["reference"] == "convex_relaxation_lower_bound"
    assert (spirals["j_star"], spirals["gap_median"], spirals["within_eps"]) == (0.625, 0.125, 0.25)
    assert "runs_y" not in table and "runs_x" not in table  # only the named cell columns join


def test_classification_table_reads_older_and_incomplete_frames():
    """Without n_classes every run is binary (logistic); without accuracy, or without
    target, there is nothing to tabulate; without j_upper, no upper bound column."""
    runs = classification_runs()
    binary = stats.classification_table(runs.drop(columns=["n_classes", "j_upper"]), pd.DataFrame())
    assert binary["classes"].tolist() == [2, 2] and binary["loss"].tolist() == ["logistic"] * 2
    assert "j_upper" not in binary and "reference" not in binary
    assert stats.classification_table(runs.drop(columns="accuracy"), pd.DataFrame()).empty
    assert stats.classification_table(runs.drop(columns="target"), pd.DataFrame()).empty


def test_trained_objective_without_weight_decay_is_the_loss():
    """A frame without a weight_decay column (hand-built, or older records) minimized the
    loss: the objective column, penalty included, must not be read."""
    from realspace.stats import trained_objective

    df = pd.DataFrame({"objective": [1.0, 2.0], "loss": [0.5, 1.5]})
    assert trained_objective(df).tolist() == [0.5, 1.5]
    wd = df.assign(weight_decay=[0.0, 0.01])
    assert trained_objective(wd).tolist() == [0.5, 2.0]
