"""The Gaussian teacher-student problem's teachers: i.i.d. Gaussian, orthonormal and
identity rows, checked against Monte Carlo, symmetry and closed forms (float64)."""

import numpy as np
import pandas as pd
import pytest
import torch
from factories import sweep_config

from realspace import stats
from realspace.core.problem import init_params, orthonormal_rows, teacher_rows
from realspace.core.spec import RunSpec, target_label
from realspace.core.spurious import zero_student_loss
from realspace.core.targets import gaussian_population_loss
from realspace.stats import spurious_table
from realspace.sweep.config import ConfigError, parse_config
from realspace.train import TrainOptions, train_and_record
from realspace.train.model import gaussian_objective


def student_teacher(rows: str, k: int, d: int, **kw) -> RunSpec:
    """The literature's setting: width n = k, output weights 1, no biases, GD."""
    spec = dict(target="gaussian", teacher_rows=rows, teacher_width=k, d=d, width=k)
    spec.update(bias=False, train_output=False, optimizer="gd", lr=0.1, **kw)
    return RunSpec(**spec)


def monte_carlo_loss(W, teacher, d, samples=1_000_000, seed=0):
    """(1/2) E[(f_W - f_V)^2] over ``samples`` x ~ N(0, I_d): mean and its standard error."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, d))
    sq = 0.5 * (np.maximum(x @ W.T, 0).sum(1) - teacher(x)) ** 2
    return sq.mean(), sq.std(ddof=1) / np.sqrt(samples)


def trained_loss(spec, W):
    """The population loss as training computes it (float64 torch kernel)."""
    V = torch.as_tensor(teacher_rows(spec))[None]
    p = {"a": torch.as_tensor(W)[None], "c": torch.ones(1, len(W), dtype=torch.float64)}
    return float(gaussian_objective(p, V, torch.zeros(1, dtype=torch.float64))[1][0])


@pytest.mark.parametrize("k", [6, 9])
def test_identity_teacher_loss_matches_monte_carlo(k):
    # the identity teacher is sum_j rho(x_j), written here without V
    spec = student_teacher("identity", k, k, seed=k)
    W = init_params(spec)["a"]
    mean, se = monte_carlo_loss(W, lambda x: np.maximum(x, 0).sum(1), k, seed=k)
    assert abs(trained_loss(spec, W) - mean) <= 3 * se
    assert abs(gaussian_population_loss(W, np.eye(k)) - mean) <= 3 * se


@pytest.mark.parametrize("k, d", [(6, 6), (4, 9)])
def test_orthogonal_teacher_loss_matches_monte_carlo(k, d):
    spec = student_teacher("orthogonal", k, d, teacher_seed=3, seed=1)
    W, V = init_params(spec)["a"], teacher_rows(spec)
    mean, se = monte_carlo_loss(W, lambda x: np.maximum(x @ V.T, 0).sum(1), d, seed=d)
    assert abs(trained_loss(spec, W) - mean) <= 3 * se


@pytest.mark.parametrize("k, d", [(1, 1), (3, 7), (12, 12), (5, 40)])
def test_orthogonal_rows_are_orthonormal(k, d):
    V = teacher_rows(student_teacher("orthogonal", k, d, teacher_seed=11))
    assert V.shape == (k, d)
    np.testing.assert_allclose(V @ V.T, np.eye(k), atol=1e-13)


def test_orthogonal_rows_are_rotation_invariant():
    """Uniform rows: each entry has mean 0 and E[V_ij^2] = 1/d. QR without the sign fix
    fails this (LAPACK's first row is -sign(g_11) g_1 / |g_1|: its first entry is never > 0)."""
    k, d, draws = 2, 3, 20_000
    rng = np.random.default_rng(0)
    V = np.stack([orthonormal_rows(k, d, rng) for _ in range(draws)])  # (draws, k, d)
    mean, se = V.mean(0), V.std(0, ddof=1) / np.sqrt(draws)
    assert np.all(np.abs(mean) <= 4 * se)
    sq = V**2
    sq_se = sq.std(0, ddof=1) / np.sqrt(draws)
    assert np.all(np.abs(sq.mean(0) - 1 / d) <= 4 * sq_se)


def test_identity_rows_and_seeds():
    spec = student_teacher("identity", 5, 5, teacher_seed=7)
    np.testing.assert_array_equal(teacher_rows(spec), np.eye(5))
    gauss = student_teacher("gaussian", 3, 4, teacher_seed=7)
    np.testing.assert_array_equal(
        teacher_rows(gauss), np.random.default_rng(7).standard_normal((3, 4))
    )


def test_training_sees_the_identity_teacher():
    """The trainer's V is I: the student W = I starts (and stays) at zero loss."""
    spec = student_teacher("identity", 4, 4, steps=1)
    p = init_params(spec)
    p["a"] = np.eye(4)
    rec = train_and_record([spec], TrainOptions(dtype=torch.float64), init=[p])[0]
    assert rec.loss < 1e-14 and rec.certified


@pytest.mark.parametrize(
    "kw, fragment",
    [
        (dict(teacher_rows="identity", teacher_width=3, d=4), "input_dim = teacher_width"),
        (dict(teacher_rows="orthogonal", teacher_width=5, d=4), "teacher_width <= input_dim"),
        (dict(teacher_rows="hadamard", teacher_width=4, d=4), "teacher_rows must be one of"),
    ],
)
def test_impossible_teachers_are_refused(kw, fragment):
    spec = dict(target="gaussian", width=4, bias=False, train_output=False)
    with pytest.raises(ValueError, match=fragment):
        RunSpec(**spec, **kw)


def test_teacher_rows_belong_to_the_gaussian_target():
    with pytest.raises(ValueError, match="applies to the gaussian target only"):
        RunSpec(target="teacher", teacher_rows="identity")


def test_config_refuses_an_identity_teacher_with_d_not_k_before_any_work():
    doc = sweep_config(
        widths=[6],
        parametrizations=["unrestricted"],
        targets=[
            {"name": "gaussian", "teacher_width": 6, "input_dim": 6, "teacher_rows": "identity"},
            {"name": "gaussian", "teacher_width": 6, "input_dim": 5, "teacher_rows": "identity"},
        ],
    )
    with pytest.raises(ConfigError) as info:
        parse_config(doc, "c.yaml")
    msg = str(info.value)
    assert "targets[1] (gaussian)" in msg and "targets[0]" not in msg
    assert "identity teacher rows (V = I_k) need input_dim = teacher_width" in msg
    assert "teacher_width=6, input_dim=5" in msg
    bad_name = {**doc, "targets": [{**doc["targets"][0], "teacher_rows": "eye"}]}
    with pytest.raises(ConfigError, match="targets\\[0\\].teacher_rows"):
        parse_config(bad_name, "c.yaml")


def test_teacher_rows_in_the_spec_dict_and_label_only_when_not_the_default():
    gauss = student_teacher("gaussian", 6, 6)
    ident = student_teacher("identity", 6, 6)
    assert "teacher_rows" not in gauss.to_dict()
    assert ident.to_dict()["teacher_rows"] == "identity"
    for spec in (gauss, ident):
        assert RunSpec.from_dict(spec.to_dict()) == spec
        assert RunSpec.from_flat(spec.flat()) == spec
    # a table mixing both reads NaN where the column was not written
    assert RunSpec.from_dict({**gauss.to_dict(), "teacher_rows": float("nan")}) == gauss
    assert target_label(gauss) == "gaussian(k=6,s=0,d=6)"
    assert target_label(ident) == "gaussian(k=6,s=0,d=6,V=identity)"


# ---------------------------------------------------------------------------
# The spurious-minimum rule and its shares
# ---------------------------------------------------------------------------
def orthonormal_zero_loss(k):
    """L(0) = (1/2) E[(sum_j rho(x_j))^2] for independent x_j ~ N(0, 1): E[rho(x)^2] = 1/2,
    E[rho(x)] = 1/sqrt(2 pi), so (1/2) (k/2 + k (k - 1) / (2 pi))."""
    return 0.5 * (k / 2 + k * (k - 1) / (2 * np.pi))


@pytest.mark.parametrize(
    "rows, k, d", [("identity", 6, 6), ("orthogonal", 7, 7), ("orthogonal", 3, 8)]
)
def test_zero_student_loss_of_orthonormal_teachers(rows, k, d):
    spec = student_teacher(rows, k, d, teacher_seed=2)
    assert zero_student_loss(spec) == pytest.approx(orthonormal_zero_loss(k), rel=1e-13)


def run_rows(rows, k, n, rel_losses, **override):
    """Frame rows of gaussian runs whose losses are the given multiples of L(0)."""
    label = target_label(student_teacher(rows, k, k))
    base = dict(
        target="gaussian",
        target_label=label,
        teacher_rows=rows if rows != "gaussian" else None,
        teacher_width=k,
        teacher_seed=0,
        d=k,
        width=n,
        parametrization="unrestricted",
        weight_decay=0.0,
        certified=True,
        run_status="converged",
    )
    zero = orthonormal_zero_loss(k)
    return [
        {**base, "seed": i, "loss": rel * zero, "objective": rel * zero, **override}
        for i, rel in enumerate(rel_losses)
    ]


def constructed_frame():
    rows = (
        run_rows("identity", 6, 6, [1e-14] * 5 + [5e-7] + [3e-3] * 3)  # m = 9, s = 3
        + run_rows("identity", 6, 6, [0.5], certified=False)  # a saddle: not counted
        + run_rows("identity", 6, 6, [5e-3], run_status="diverged")  # never a minimum
        + run_rows("orthogonal", 6, 6, [1e-14] * 4 + [2e-6])  # m = 5, s = 1
        + run_rows("identity", 6, 7, [1e-15] * 4)  # m = 4, s = 0
        + run_rows("identity", 10, 10, [1e-14, 1e-2])  # m = 2, s = 1
        + run_rows("identity", 6, 6, [3e-3] * 2, weight_decay=1e-3)  # not the rule's problem
        + [dict(target="sin", target_label="sin", width=6, loss=1.0, certified=True)]
    )
    return stats.with_problems(pd.DataFrame(rows))


def test_spurious_share_and_its_standard_error_per_teacher_and_width():
    table = spurious_table(constructed_frame())
    # in the order of k, not of the labels (which put k = 10 before k = 6)
    assert table[["teacher_rows", "k", "n"]].values.tolist() == [
        ["identity", 6, 6],
        ["identity", 6, 7],
        ["identity", 10, 10],
        ["orthogonal", 6, 6],
    ]
    table = table.set_index(["teacher_rows", "n"])
    ident = table.loc[("identity", 6)]
    assert (ident["runs"], ident["certified"], ident["spurious"]) == (11, 9, 3)
    assert ident["spurious_share"] == pytest.approx(1 / 3, rel=1e-12)
    assert ident["spurious_se"] == pytest.approx(np.sqrt(2 / 81), rel=1e-12)
    assert ident["max_rel_loss_below"] == pytest.approx(5e-7, rel=1e-9)
    assert ident["min_rel_loss_above"] == pytest.approx(3e-3, rel=1e-9)
    ortho = table.loc[("orthogonal", 6)]
    assert (ortho["certified"], ortho["spurious"]) == (5, 1)
    assert ortho["spurious_se"] == pytest.approx(np.sqrt(0.2 * 0.8 / 5), rel=1e-12)
    wide = table.loc[("identity", 7)]
    assert wide["spurious_share"] == 0 and wide["spurious_se"] == 0
    assert np.isnan(wide["min_rel_loss_above"])
    assert table.loc[("identity", 10), "spurious_share"] == 0.5
    assert (table["k"] == table["d"]).all()


def test_the_report_shows_the_spurious_shares_only_for_gaussian_runs():
    from realspace.report.evidence import collect_evidence
    from realspace.report.sections import report_sections

    heading = "Spurious minima: Gaussian teacher-student"
    df = constructed_frame()
    ref = pd.DataFrame({"j_star": 0.0, "reference": "teacher_realizable"}, index=df.index)
    sections = {
        s.heading: s for s in report_sections(collect_evidence(df, {}, 1e-4, reference=ref))
    }
    shown = sections[heading].table.set_index(["teacher_rows", "n"])
    assert shown.loc[("identity", 6), "spurious"] == 3
    mse = df[df["target"] == "sin"]
    ref = ref.loc[mse.index]
    assert heading not in {
        s.heading for s in report_sections(collect_evidence(mse, {}, 1e-4, reference=ref))
    }


def test_the_shipped_sweep_is_the_published_setting():
    """configs/teacher_student.yaml: n = k = d for k = 6 .. 12 and both orthonormal teachers,
    plain GD in float64 from rows N(0, I/d), enough seeds for a standard error <= 5 points."""
    from pathlib import Path

    from realspace.sweep.config import load_config
    from realspace.sweep.plan import plan_runs

    cfg = load_config(Path(__file__).parents[2] / "configs" / "teacher_student.yaml")
    specs = [r.spec for r in plan_runs(cfg)]
    assert all(s.width == s.teacher_width == s.d for s in specs)
    assert all(s.optimizer == "gd" and s.init_scale == 1 for s in specs)
    cells = {(s.teacher_rows, s.teacher_width) for s in specs}
    assert {("identity", k) for k in range(6, 13)} <= cells
    assert {("orthogonal", k) for k in range(6, 13)} <= cells
    m = len(cfg.seed_list())
    assert np.sqrt(0.25 / m) <= 0.05 and cfg.execution.dtype == "float64"


SPURIOUS_COLUMNS = [
    "problem",
    "teacher_rows",
    "k",
    "n",
    "d",
    "runs",
    "certified",
    "spurious",
    "spurious_share",
    "spurious_se",
    "max_rel_loss_below",
    "min_rel_loss_above",
]


def test_spurious_table_of_older_records_and_of_a_cell_without_minima():
    """Records without weight_decay (none trained with it) and without run_status (none
    diverged) count as such; a cell whose runs are all uncertified has no share, no
    standard error and no relative losses beside the threshold (NaN, not an error). The
    table has exactly the documented columns and a fresh index."""
    rows = run_rows("identity", 6, 6, [1e-14, 3e-3, 4e-3]) + run_rows(
        "identity", 6, 7, [0.5, 0.25], certified=False
    )
    df = stats.with_problems(pd.DataFrame(rows)).set_axis([9, 4, 7, 1, 3])
    bare = df.drop(columns=["weight_decay", "run_status"])
    for records in (df, bare):
        table = spurious_table(records)
        assert list(table.columns) == SPURIOUS_COLUMNS
        assert list(table.index) == [0, 1]
        six, seven = table.iloc[0], table.iloc[1]
        assert (six["n"], six["runs"], six["certified"], six["spurious"]) == (6, 3, 3, 2)
        assert six["min_rel_loss_above"] == pytest.approx(3e-3, rel=1e-9)
        assert (seven["n"], seven["runs"], seven["certified"], seven["spurious"]) == (7, 2, 0, 0)
        assert seven[["spurious_share", "spurious_se"]].isna().all()
        assert seven[["max_rel_loss_below", "min_rel_loss_above"]].isna().all()


def test_a_relative_loss_exactly_at_the_threshold_is_not_spurious():
    """The rule is L > threshold L(0): with the threshold set to one run's own L / L(0), that
    run is the largest certified relative loss at or below it, not a spurious minimum."""
    df = stats.with_problems(pd.DataFrame(run_rows("identity", 6, 6, [1e-14, 2e-4, 3e-3])))
    at = float(stats.relative_losses(df).iloc[1])
    table = spurious_table(df, rel_threshold=at).iloc[0]
    assert (table["certified"], table["spurious"]) == (3, 1)
    assert table["max_rel_loss_below"] == at
    assert spurious_table(df, rel_threshold=at * (1 - 1e-12)).iloc[0]["spurious"] == 2


def test_rows_without_teacher_rows_have_the_default_gaussian_teacher():
    """A missing value (None, NaN, an empty string, or no column at all) is the default
    teacher; given values are kept. The index is the frame's."""
    df = pd.DataFrame(
        {"teacher_rows": ["identity", None, np.nan, "", "orthogonal"]}, index=[5, 1, 4, 2, 3]
    )
    kinds = stats.teacher_kinds(df)
    assert kinds.tolist() == ["identity", "gaussian", "gaussian", "gaussian", "orthogonal"]
    assert kinds.index.tolist() == [5, 1, 4, 2, 3]
    bare = stats.teacher_kinds(df.drop(columns="teacher_rows"))
    assert bare.tolist() == ["gaussian"] * 5 and bare.index.tolist() == [5, 1, 4, 2, 3]


def arccos_zero_loss(V):
    """L(0) = (1/2) sum_{j,l} K(v_j, v_l), K(u, v) = E[rho(u.x) rho(v.x)] for x ~ N(0, I):
    |u| |v| (sin t + (pi - t) cos t) / (2 pi), t the angle between u and v."""
    norms = np.linalg.norm(V, axis=1)
    cos = np.clip(V @ V.T / np.outer(norms, norms), -1.0, 1.0)
    t = np.arccos(cos)
    K = np.outer(norms, norms) * (np.sin(t) + (np.pi - t) * cos) / (2 * np.pi)
    return 0.5 * K.sum()


def test_relative_losses_of_gaussian_teachers_against_the_arccos_kernel():
    """Gaussian teacher rows are N(0, 1) draws from the teacher seed: each row's L(0) is the
    closed form on those rows, with its own k, d and seed (k != d, two seeds, no
    teacher_rows column: the default)."""
    rows = []
    for k, d, seed in [(3, 4, 3), (3, 4, 5), (2, 5, 3)]:
        rows.append(dict(teacher_width=k, d=d, teacher_seed=seed, loss=0.25))
    df = pd.DataFrame(rows)
    want = [
        0.25 / arccos_zero_loss(np.random.default_rng(s).standard_normal((k, d)))
        for k, d, s in [(3, 4, 3), (3, 4, 5), (2, 5, 3)]
    ]
    np.testing.assert_allclose(stats.relative_losses(df), want, rtol=1e-12)
