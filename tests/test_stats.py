"""Statistics on synthetic frames whose answers are known by construction."""

import numpy as np
import pandas as pd
import pytest

from realspace import stats
from realspace.report.verdict_tables import paired_table


def frame(gap_of_width, widths=(4, 8, 16, 32), seeds=5, j_star=0.5, wd=0.0):
    """Runs of one problem in both parametrizations with objective J* + gap(width, seed)."""
    rows = []
    for par in ("unrestricted", "restricted"):
        for w in widths:
            for s in range(seeds):
                j = j_star + gap_of_width(w, s)
                rows.append(
                    dict(
                        target_label="sin",
                        target="sin",
                        parametrization=par,
                        width=w,
                        seed=s,
                        weight_decay=wd,
                        loss=j if wd == 0 else j - 0.1,
                        objective=j if wd else j + 0.0,
                        certified=s % 2 == 0,
                        run_status="converged",
                        d=1,
                        census_dead=0.25 if par == "unrestricted" else 0.0,
                        census_affine=0.0,
                        census_duplicate=0.0,
                        census_opposite=0.0,
                        census_imbalance_mean=0.1,
                        census_effective_width=w - 1,
                    )
                )
    return pd.DataFrame(rows)


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
    from realspace.spec import DEFAULT_RESTRICTED_METHOD, RESTRICTED_METHODS

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
