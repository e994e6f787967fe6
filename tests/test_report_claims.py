"""Claims 2 and 3: their verdict rules on constructed evidence."""

import numpy as np
import pandas as pd
import pytest

from realspace.inverse import pathology_table
from realspace.report.claims import claim_verdicts

EMPTY = pd.DataFrame()


def _claim2(degenerate: bool, spurious: int, undecided: int) -> dict:
    runs = pd.DataFrame(
        dict(
            parametrization="unrestricted",
            width=[4, 4],
            census_dead=[0.25 if degenerate else 0.0, 0.0],
            census_affine=0.0,
            census_duplicate=0.0,
            census_opposite=0.0,
            census_effective_width=4,
        )
    )
    cells = pd.DataFrame(
        dict(
            problem="p",
            parametrization="unrestricted",
            width=[4],
            reference="best_in_cell",
            gap_median=0.0,
            certified=3,
            spurious=spurious,
            undecided=undecided,
        )
    )
    return claim_verdicts(runs, cells, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, 1e-4)[1]


def test_claim2_needs_a_degenerate_end_point_and_a_spurious_minimum():
    assert _claim2(True, 1, 0)["verdict"] == "supported"
    # minima above a lower bound alone are undecided: the second half is not shown
    v = _claim2(True, 0, 3)
    assert v["verdict"] == "inconclusive" and "3 undecided" in v["evidence"]
    assert _claim2(False, 2, 0)["verdict"] == "not supported"
    assert "0 of 3 certified minima spurious" in _claim2(True, 0, 3)["number"]


@pytest.fixture(scope="module")
def pathology():
    return pd.DataFrame(pathology_table(12))


def _retrain(exponents: dict[str, float], parametrization="restricted") -> pd.DataFrame:
    """Controlled rows d_P = 0.5 d_W^p of one network per entry, plus rows that stay out:
    a kink row and a row at the control's floor, both far off the power law."""
    d_w = np.array([1e-4, 1e-3, 1e-2, 1e-1])
    frames = []
    for net, p in exponents.items():
        d_p = 0.5 * d_w**p
        frames.append(
            pd.DataFrame(
                dict(
                    network=net,
                    parametrization=parametrization,
                    kind=["add", "scale", "add", "kink"],
                    delta=d_w,
                    d_W=d_w,
                    d_P=np.where(np.arange(4) == 3, 100.0, d_p),
                    d_P_bound="exact",
                    fit_d_inf=1e-3 * d_w,
                    floor=np.where(np.arange(4) == 0, d_p[0], 1e-9),
                    r_half=d_p / np.sqrt(d_w),
                )
            )
        )
    return pd.concat(frames, ignore_index=True)


def _claim3(pathology, retrain):
    return claim_verdicts(EMPTY, EMPTY, EMPTY, EMPTY, pathology, EMPTY, retrain, 1e-4)[2]


def test_claim3_holds_when_restricted_retraining_is_consistent_with_one_half(pathology):
    v = _claim3(pathology, _retrain({"n0": 0.9, "n1": 1.0}))
    assert v["verdict"] == "supported"
    assert "retraining (restricted, 4 controlled rows of 2 networks" in v["evidence"]
    assert "2 at the control's floor, 2 kink or bound" in v["evidence"]


def test_claim3_is_inconclusive_when_restricted_retraining_lies_below_one_half(pathology):
    v = _claim3(pathology, _retrain({"n0": 0.2, "n1": 0.25}))
    assert v["verdict"] == "inconclusive" and "contradicts exponent 0.5" in v["evidence"]
    # one network gives no interval; unrestricted retraining is evidence, not the rule
    assert _claim3(pathology, _retrain({"n0": 0.2}))["verdict"] == "supported"
    unrestricted = _retrain({"n0": 0.2, "n1": 0.25}, parametrization="unrestricted")
    assert _claim3(pathology, unrestricted)["verdict"] == "supported"


def _classification_cells(gaps: dict[str, tuple[str, float]]) -> pd.DataFrame:
    """Cells of problems at widths 4 and 64, the widest with the given (reference, gap)."""
    rows = []
    for problem, (reference, gap) in gaps.items():
        rows.append(
            dict(
                problem=problem,
                parametrization="unrestricted",
                width=4,
                reference=reference,
                gap_median=10 * gap + 1.0,
            )
        )
        rows.append(
            dict(
                problem=problem,
                parametrization="unrestricted",
                width=64,
                reference=reference,
                gap_median=gap,
            )
        )
    return pd.DataFrame(rows)


def test_classification_claim1_lets_a_lower_bound_certify_within_eps_only():
    from realspace.report.claims import classification_claim1

    rates = pd.DataFrame(
        dict(problem=["a", "b"], parametrization="unrestricted", exponent=[-1.0, 0.5])
    )
    eps = 1e-4

    def verdict(gaps, problems=("a", "b")):
        cells = _classification_cells(gaps)
        return classification_claim1(cells, rates, eps, problems)["verdict"]

    # a gap within eps of a lower bound is within eps of the optimum
    assert (
        verdict({"a": ("convex_exact", 1e-5), "b": ("convex_relaxation_lower_bound", 5e-5)})
        == "supported"
    )
    # above eps against a bound: decides nothing, even where an exact one is flat
    assert (
        verdict({"a": ("convex_exact", 1e-2), "b": ("convex_relaxation_lower_bound", 1e-2)})
        == "inconclusive"
    )
    assert (
        verdict({"a": ("convex_exact", 1e-2), "b": ("convex_exact", 1e-2)}, problems=("b",))
        == "not supported"
    )
    # the best of a cell is no reference; problems outside the list do not count
    assert verdict({"a": ("best_in_cell", 0.0)}, problems=("a",)) == "inconclusive"
    assert (
        verdict({"a": ("convex_exact", 1e-5), "b": ("convex_exact", 1.0)}, problems=("a",))
        == "supported"
    )


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
