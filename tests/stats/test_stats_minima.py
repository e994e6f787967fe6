"""Spurious minima are judged against what a network of the same width attains."""

from dataclasses import replace

import numpy as np
import pandas as pd

from realspace import ShallowNet, stats
from realspace.core.problem import make_data, teacher_net
from realspace.core.spec import RunSpec, target_label
from realspace.core.targets import mse


def _row(spec: RunSpec, j: float, certified=True, status="converged") -> dict:
    return dict(
        **spec.to_dict(),
        target_label=target_label(spec),
        loss=j,
        objective=j,
        certified=certified,
        run_status=status,
    )


def test_a_cell_at_the_widths_closed_form_optimum_has_no_spurious_minimum():
    """A width-2 student of a width-2 teacher (no weight decay, no noise): the optimum at
    width 2 is 0, attained by the teacher (a canonical form: restricted) and by each of its
    reparametrizations (a permutation, positive rescalings of the neurons). Every such end
    point is optimal."""
    spec = RunSpec(
        target="teacher", teacher_width=2, width=2, weight_decay=0.0, parametrization="restricted"
    )
    teacher = teacher_net(spec)
    assert teacher.width == 2
    x, y = make_data(spec)
    t = np.array([3.0, 0.25])
    nets = [
        teacher,
        ShallowNet(teacher.a[::-1], teacher.b[::-1], teacher.c[::-1], teacher.e, teacher.w),
        ShallowNet(t[:, None] * teacher.a, t * teacher.b, teacher.c / t, teacher.e, teacher.w),
    ]
    rows = [_row(replace(spec, seed=s), mse(net, x, y)) for s, net in enumerate(nets)]
    df = stats.with_problems(pd.DataFrame(rows))
    df = stats.gap_values(df, stats.reference_frame(df))
    assert (df["reference"] == "teacher_realizable").all()
    assert (df["j_final"] < 1e-25).all()
    cell = stats.cell_stats(df, eps=1e-4).iloc[0]
    assert cell["certified"] == 3 and cell["spurious"] == 0 and cell["undecided"] == 0
    assert (stats.minimum_verdicts(df, 1e-4) == "optimal").all()


def _sin_cell(objectives, reference, j_star, certified=None, status=None, **axes):
    spec = RunSpec(target="sin", width=2, weight_decay=0.01, parametrization="restricted", **axes)
    n = len(objectives)
    certified = certified or [True] * n
    status = status or ["converged"] * n
    rows = [
        _row(replace(spec, seed=s), j, c, st)
        for s, (j, c, st) in enumerate(zip(objectives, certified, status, strict=True))
    ]
    df = stats.with_problems(pd.DataFrame(rows))
    ref = pd.DataFrame({"j_star": j_star, "reference": reference}, index=df.index)
    return stats.gap_values(df, ref)


def test_equal_minima_above_a_lower_bound_are_undecided_not_spurious():
    """Three certified end points with one objective, 0.0841 above the optimum over all
    widths (the convex program's, a lower bound at width 2): very likely the width's
    optimum, and nothing attainable beats them."""
    df = _sin_cell([0.3841, 0.3841, 0.3841], "convex_lower_bound", 0.3)
    cell = stats.cell_stats(df, eps=1e-4).iloc[0]
    assert cell["gap_median"] == cell["gap_max"]
    assert cell["certified"] == 3 and cell["spurious"] == 0 and cell["undecided"] == 3
    assert cell["spurious_share"] == 0.0


def test_a_certified_minimum_above_another_end_point_of_its_cell_is_spurious():
    """The better end point need not be certified itself; a diverged one does not count."""
    objectives = [0.3841, 0.3841, 0.5, 0.39, 0.1]
    certified = [True, False, True, True, False]
    status = ["converged"] * 4 + ["diverged"]
    df = _sin_cell(objectives, "convex_lower_bound", 0.3, certified, status)
    verdicts = stats.minimum_verdicts(df, eps=1e-4).tolist()
    assert verdicts == ["undecided", "", "spurious", "spurious", ""]
    cell = stats.cell_stats(df, eps=1e-4).iloc[0]
    assert (cell["certified"], cell["spurious"], cell["undecided"]) == (3, 2, 1)
    # within eps of the best end point is not spurious
    assert stats.minimum_verdicts(df, eps=0.01).tolist()[3] == "undecided"


def test_an_exact_reference_at_the_width_makes_every_minimum_decided():
    """With J* the optimum at that width (convex_exact), a minimum within eps of it is
    optimal and one above it spurious, even when it is the best of its cell."""
    df = _sin_cell([0.30005, 0.31], "convex_exact", 0.3)
    assert stats.minimum_verdicts(df, eps=1e-4).tolist() == ["optimal", "spurious"]
    df = _sin_cell([0.31, 0.31], "convex_exact", 0.3)
    assert stats.minimum_verdicts(df, eps=1e-4).tolist() == ["spurious", "spurious"]


def test_without_any_reference_the_best_minimum_is_undecided():
    df = _sin_cell([0.31, 0.32], np.nan, np.nan)
    assert (df["reference"] == "best_in_cell").all()
    assert stats.minimum_verdicts(df, eps=1e-4).tolist() == ["undecided", "spurious"]


def test_the_multiclass_relaxation_is_a_lower_bound_never_the_optimum():
    """convex_relaxation_lower_bound lies below the optimum at every width: a certified
    minimum far above it stays undecided (never spurious against it), one within eps of it
    is optimal, and its cells' gaps are measured against it."""
    df = _sin_cell([0.5, 0.5, 0.30005], "convex_relaxation_lower_bound", 0.3)
    assert "convex_relaxation_lower_bound" in stats.LOWER_BOUNDS
    assert "convex_relaxation_lower_bound" not in stats.EXACT_AT_WIDTH
    verdicts = stats.minimum_verdicts(df, eps=1e-4).tolist()
    # the two at 0.5 are spurious against the cell's own end point at 0.30005, not J*
    assert verdicts == ["spurious", "spurious", "optimal"]
    alone = _sin_cell([0.5, 0.5], "convex_relaxation_lower_bound", 0.3)
    assert stats.minimum_verdicts(alone, eps=1e-4).tolist() == ["undecided", "undecided"]
    np.testing.assert_allclose(alone["gap"], 0.2)


def test_seeds_on_their_own_data_are_never_compared_with_each_other():
    """Uniform points and noise are drawn from each run's seed: another seed's lower
    objective is on other data and shows nothing. The same objectives on a shared grid do
    make the worse minimum spurious; an exact J* on the run's own data still decides."""
    grid = _sin_cell([0.31, 0.5], np.nan, np.nan)
    assert stats.minimum_verdicts(grid, eps=1e-4).tolist() == ["undecided", "spurious"]
    for axes in ({"sampling": "uniform"}, {"noise": 0.1}):
        own = _sin_cell([0.31, 0.5], np.nan, np.nan, **axes)
        assert not stats.shared_data(own).any()
        assert stats.minimum_verdicts(own, eps=1e-4).tolist() == ["undecided", "undecided"]
        exact = _sin_cell([0.30005, 0.31], "convex_exact", 0.3, **axes)
        assert stats.minimum_verdicts(exact, eps=1e-4).tolist() == ["optimal", "spurious"]


def test_which_targets_share_their_data_across_seeds():
    """The rule against make_data itself: two seeds share data iff their (X, y) coincide."""
    cases = [
        RunSpec(target="sin"),
        RunSpec(target="sin", sampling="uniform"),
        RunSpec(target="sin", noise=0.1),
        RunSpec(target="spirals", d=2, n_samples=24, n_classes=2, noise=0.1),
        RunSpec(target="teacher_labels", d=2, n_samples=16, noise=0.1),
    ]
    for spec in cases:
        x0, y0 = make_data(replace(spec, seed=0))
        x1, y1 = make_data(replace(spec, seed=1))
        same = np.array_equal(x0, x1) and np.array_equal(y0, y1)
        assert spec.shares_data == same, spec


def test_a_diverged_run_marked_certified_is_never_a_minimum():
    """A diverged end point is no minimum whatever its certificate says (the run stopped at
    a blow-up, not at a critical point). Two such runs, both flagged certified: one far
    above the cell's converged end point (it would be spurious), one below the lower bound
    (it would be optimal). Neither gets a verdict; the cell counts only the converged
    minimum, undecided above the lower bound 0.3 (hand-counted: 1 certified, 0 spurious)."""
    objectives = [0.3841, 0.5, 0.1]
    certified = [True, True, True]
    status = ["converged", "diverged", "diverged"]
    df = _sin_cell(objectives, "convex_lower_bound", 0.3, certified, status)
    assert stats.minimum_verdicts(df, eps=1e-4).tolist() == ["undecided", "", ""]
    cell = stats.cell_stats(df, eps=1e-4).iloc[0]
    assert (cell["certified"], cell["spurious"], cell["undecided"]) == (1, 0, 1)
    assert cell["spurious_share"] == 0.0


def test_verdicts_of_a_frame_without_run_status_or_data_columns():
    """Older records: no run_status (no run diverged) and no target, sampling or noise
    columns (grid points without noise: the seeds share one data set). The verdicts are
    those of the full frame, row for row under its own index (not 0..n-1)."""
    df = _sin_cell([0.3841, 0.5, 0.39], "convex_lower_bound", 0.3).set_axis([7, 2, 5])
    want = ["undecided", "spurious", "spurious"]
    assert stats.minimum_verdicts(df, eps=1e-4).tolist() == want
    bare = df.drop(columns=["run_status", "target", "sampling", "noise"])
    got = stats.minimum_verdicts(bare, eps=1e-4)
    assert got.index.tolist() == [7, 2, 5] and got.tolist() == want
    shared = stats.shared_data(bare)
    assert shared.index.tolist() == [7, 2, 5] and shared.all()


def test_shared_data_follows_the_target_before_sampling_and_noise():
    """Spirals draw their points from the teacher seed: shared across seeds even with
    uniform sampling and label noise; sin on uniform points is not; sin without a sampling
    or noise column is on the default grid without noise."""
    df = pd.DataFrame(
        dict(
            target=["spirals", "sin", "sin"],
            sampling=["uniform", "uniform", "grid"],
            noise=[0.1, 0.0, 0.0],
        ),
        index=[4, 8, 6],
    )
    assert stats.shared_data(df).tolist() == [True, False, True]
    assert stats.shared_data(df.drop(columns="noise").iloc[2:]).tolist() == [True]
    assert stats.shared_data(df.drop(columns="sampling").iloc[2:]).tolist() == [True]
    assert not stats.shared_data(df.assign(noise=0.1).iloc[1:]).any()
