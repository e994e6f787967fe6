"""The convex reference optimum (Pilanci & Ergen) against independent truths: closed-form
pattern counts, brute-force pattern sampling, the constant fit at large lam, and
many-restart float64 training of the non-convex problem."""

import re
import warnings
from math import comb

import numpy as np
import pytest
import torch
from cvxpy.error import SolverError

from realspace.convex import (
    activation_patterns,
    convex_optimum,
    free_part_separates,
    reference_optima,
    solve_program,
)
from realspace.convex.binary import _network
from realspace.convex.solvers import SCS_EPS
from realspace.core.targets import logistic_loss, mse, sample_points, weight_decay_penalty
from realspace.train import RunSpec, TrainOptions, make_data, train_and_record


def test_patterns_in_one_dimension_are_the_2n_minus_1_thresholds():
    x = np.sort(np.random.default_rng(0).uniform(-1, 1, 9))[:, None]
    masks, exact = activation_patterns(x)
    assert exact and len(masks) == 2 * 9 - 1
    # every mask is a prefix or a suffix of the sorted points
    for m in masks:
        k = int(m.sum())
        assert m.tolist() in ([True] * k + [False] * (9 - k), [False] * (9 - k) + [True] * k)


def test_repeated_points_share_every_pattern():
    """Points at the same place cannot be split by any hyperplane: 6 distinct values, two of
    them repeated, spread over [-3, 3] (beyond the unit interval), give the 2 * 6 - 1
    threshold patterns, none separating a point from its copy."""
    x = 3.0 * np.array([-1.0, -0.5, -0.5, 0.1, 0.4, 0.4, 0.4, 0.7, 1.0])[:, None]
    masks, exact = activation_patterns(x)
    assert exact and len(masks) == 2 * 6 - 1
    for i, j in [(1, 2), (4, 5), (4, 6)]:
        assert np.array_equal(masks[:, i], masks[:, j])


@pytest.mark.parametrize(
    "n, scale", [(5, 1.0), (8, 1.0), (3, 0.3), (6, 0.3), (12, 1.0), (20, 0.3), (12, 100.0)]
)
def test_patterns_in_two_dimensions_match_the_counting_formula_and_brute_force(n, scale):
    """Cover's count of the affine dichotomies of n points in general position in the
    plane, minus the empty one: n^2 - n + 1, at scales where every pair of points lies
    closer than 1 (0.3) and far apart (100); up to 8 points, each pattern also against
    200,000 random half-planes."""
    X = scale * np.random.default_rng(n).uniform(-1, 1, (n, 2))  # general position
    masks, exact = activation_patterns(X)
    assert exact and len(masks) == 2 * sum(comb(n - 1, k) for k in range(3)) - 1 == n * n - n + 1
    assert len({tuple(m) for m in masks}) == len(masks) and masks.any(axis=1).all()
    if n > 8:
        return  # random half-planes miss the thinnest regions of many points
    rng = np.random.default_rng(1)
    A = rng.standard_normal((200_000, 2))
    b = scale * rng.uniform(-2, 2, 200_000)
    sampled = {tuple(m) for m in (X @ A.T + b > 0).T if m.any()}
    assert sampled == {tuple(m) for m in masks}


@pytest.mark.parametrize("d", [1, 2, 3])
def test_one_point_or_copies_of_one_point_have_the_one_pattern_all_on(d):
    """No hyperplane splits copies of one point: the only non-empty pattern is all on,
    whether the plane has no pair of distinct points to take a direction from (d = 2) or
    one samples hyperplanes (d = 3)."""
    for X in (np.full((1, d), 0.3), np.tile(np.linspace(-0.5, 0.4, d), (4, 1))):
        masks, _ = activation_patterns(X, samples=50)
        assert masks.tolist() == [[True] * len(X)]


def _strictly_separable(X: np.ndarray, mask: np.ndarray) -> bool:
    """Whether some (a, b) has <a, x_k> + b >= 1 on the mask and <= -1 off it (an LP)."""
    from scipy.optimize import linprog

    sign = np.where(mask, 1.0, -1.0)
    A = -sign[:, None] * np.hstack([X, np.ones((len(X), 1))])
    res = linprog(np.zeros(X.shape[1] + 1), A_ub=A, b_ub=-np.ones(len(X)), bounds=(None, None))
    return res.status == 0


@pytest.mark.parametrize("scale", [1.0, 1e-2])
def test_sampled_patterns_are_dichotomies_and_reach_every_point_alone(scale):
    """In d = 3 the patterns are sampled: each is a strict affine dichotomy of the points
    (an LP says so), none repeats, the all-on pattern is among them, and with points in
    convex position (on a sphere) every point alone is one of them: a hyperplane cuts
    each vertex of the hull off the rest. At radius 1e-2 too, where the sampled
    thresholds must sit among the projections (about 1e-2 apart), not a unit away."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((8, 3))
    X = scale * X / np.linalg.norm(X, axis=1, keepdims=True)
    masks, exact = activation_patterns(X, samples=2000)
    assert not exact and masks.shape[1] == 8
    assert len({tuple(m) for m in masks}) == len(masks)
    assert [True] * 8 in masks.tolist()
    assert all(_strictly_separable(X, m) for m in masks)
    singletons = {int(np.flatnonzero(m)[0]) for m in masks if m.sum() == 1}
    assert singletons == set(range(8))


def test_the_exact_enumeration_in_the_plane_includes_its_size_limit():
    """n points in d = 2 are enumerated exactly up to ``max_exact_2d`` points, that many
    included (Cover's count), and sampled above it."""
    X = np.random.default_rng(8).uniform(-1, 1, (8, 2))
    masks, exact = activation_patterns(X, max_exact_2d=8)
    assert exact and len(masks) == 2 * sum(comb(7, k) for k in range(3)) - 1
    assert not activation_patterns(X, max_exact_2d=7, samples=200)[1]


def test_grid_data_in_two_dimensions_every_sampled_pattern_is_enumerated():
    X = sample_points(16, 2, 1.0, "grid")  # collinear points: the formula does not apply
    masks, exact = activation_patterns(X)
    rng = np.random.default_rng(2)
    A = rng.standard_normal((100_000, 2))
    b = rng.uniform(-3, 3, 100_000)
    sampled = {tuple(m) for m in (X @ A.T + b > 0).T if m.any()}
    assert exact and sampled <= {tuple(m) for m in masks}


def test_large_weight_decay_leaves_the_constant_fit():
    x = sample_points(12, 1, 1.0, "grid")
    y = np.sin(3 * x[:, 0]) + 0.5
    opt = convex_optimum(x, y, lam=100.0)
    assert opt.width == 0
    assert opt.value == pytest.approx(np.var(y), rel=1e-6)
    assert opt.net.e == pytest.approx(np.mean(y), rel=1e-5)


@pytest.mark.parametrize("restricted", [False, True])
def test_the_returned_network_attains_the_value(restricted):
    x = sample_points(40, 1, 1.0, "grid")
    y = np.abs(x[:, 0]) + 0.3 * np.sin(4 * x[:, 0])
    opt = convex_optimum(x, y, 1e-2, restricted=restricted)
    direct = mse(opt.net, x, y) + weight_decay_penalty(opt.net, 1e-2)
    assert direct == pytest.approx(opt.value, rel=1e-6)
    assert opt.attained == pytest.approx(direct, rel=1e-12)
    assert opt.net.restricted == restricted and opt.exact
    # the record names its program: 2n - 1 patterns in d = 1, the lam and parametrization
    assert (opt.patterns, opt.lam, opt.restricted) == (2 * 40 - 1, 1e-2, restricted)


def test_a_free_linear_part_can_only_lower_the_optimum():
    x = sample_points(30, 1, 1.0, "grid")
    y = 2 * x[:, 0] + 1
    free = convex_optimum(x, y, 3e-2, restricted=True)
    fixed = convex_optimum(x, y, 3e-2, restricted=False)
    # with w free the line costs nothing; without it, a neuron with slope s costs lam |s|,
    # and the optimum of (1/n) sum (2 - s)^2 x^2 + lam s over s is strictly positive
    assert free.value < 1e-8 and free.width == 0
    s = 2 - 3e-2 / (2 * np.mean(x[:, 0] ** 2))
    assert fixed.value == pytest.approx(np.mean((2 - s) ** 2 * x[:, 0] ** 2) + 3e-2 * s, rel=1e-5)


# d = 2 (15 s here) runs with the slow tests; d = 1 keeps the property in the default run
@pytest.mark.parametrize("d, n", [(1, 6), pytest.param(2, 9, marks=pytest.mark.slow)])
def test_many_restart_training_never_beats_the_convex_value(d, n):
    """Brute force over initializations: 48 float64 Adam runs of the non-convex problem,
    wide enough to hold the convex solution. The best reaches the convex value and none
    goes below it by more than the solver tolerance."""
    lam = 0.05
    base = RunSpec(
        target="sin", d=d, n_samples=n, weight_decay=lam, width=12, lr=0.01, steps=4000, seed=0
    )
    x, y = make_data(base)
    opt = convex_optimum(x, y, lam)
    assert opt.width <= base.width
    specs = [RunSpec(**{**base.to_dict(), "target_params": (), "seed": s}) for s in range(48)]
    records = train_and_record(specs, TrainOptions(dtype=torch.float64))
    found = np.array([r.objective for r in records])
    tol = 1e-7 * (1 + abs(opt.value))
    assert found.min() >= opt.value - tol
    assert found.min() <= opt.value * (1 + 1e-3)


def test_reference_labels_follow_the_width():
    teacher = RunSpec(target="teacher", teacher_width=3, width=3)
    narrow = RunSpec(target="teacher", teacher_width=3, width=2)
    noisy = RunSpec(target="teacher", teacher_width=3, width=4, noise=0.1)
    plain = RunSpec(target="sin", width=4)
    refs = reference_optima([teacher, narrow, noisy, plain])
    assert refs[0] == (0.0, "teacher_realizable")
    assert all(np.isnan(v) and label == "" for v, label in refs[1:])
    wide = RunSpec(target="sin", n_samples=32, weight_decay=1e-2, width=64)
    thin = RunSpec(target="sin", n_samples=32, weight_decay=1e-2, width=1)
    (v1, l1), (v2, l2) = reference_optima([wide, thin])
    assert v1 == v2 > 0 and (l1, l2) == ("convex_exact", "convex_lower_bound")


def test_the_logistic_optimum_is_attained_by_its_network_and_checks_its_labels():
    base = RunSpec(target="teacher_labels", d=1, n_samples=24, teacher_width=3, teacher_seed=1)
    x, y = make_data(base)  # + (9) - (12) + (2) -: no threshold separates them
    opt = convex_optimum(x, y, 0.05, loss="logistic")
    direct = logistic_loss(opt.net, x, y) + weight_decay_penalty(opt.net, 0.05)
    assert direct == pytest.approx(opt.value, rel=1e-6)
    assert opt.attained == pytest.approx(direct, rel=1e-12)  # measured in the logistic loss
    assert opt.exact and 0 < opt.width
    with pytest.raises(ValueError, match="labels in"):
        convex_optimum(x, 0.5 * y, 0.05, loss="logistic")
    # one class: e alone drives the loss to 0 at no cost; a threshold: w x + e does
    with pytest.raises(ValueError, match="not attained"):
        convex_optimum(x, np.ones_like(y), 0.05, loss="logistic")
    step = np.where(x[:, 0] > 0.1, 1.0, -1.0)
    assert convex_optimum(x, step, 0.05, loss="logistic").value > 0
    with pytest.raises(ValueError, match="not attained"):
        convex_optimum(x, step, 0.05, restricted=True, loss="logistic")
    wd0 = RunSpec(target="teacher_labels", d=1, n_samples=24, teacher_width=3, width=12)
    assert np.isnan(reference_optima([wd0])[0][0])  # no weight decay: infimum 0


# restricted (40 s here) runs with the slow tests
@pytest.mark.parametrize("restricted", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_many_restart_logistic_training_never_beats_the_convex_value(restricted):
    """The binary logistic loss with weight decay on teacher labels in d = 1 (patterns
    exact): 32 float64 Adam restarts, wide enough to hold the convex solution. None goes
    below the convex value by more than the solver tolerance, the best reaches it within
    1e-3 relative, and the reference is labelled exact at this width."""
    lam = 0.05
    par = "restricted" if restricted else "unrestricted"
    base = RunSpec(
        target="teacher_labels",
        d=1,
        n_samples=24,
        teacher_width=3,
        teacher_seed=1,
        weight_decay=lam,
        width=12,
        lr=0.02,
        steps=4000,
        parametrization=par,
    )
    x, y = make_data(base)
    opt = convex_optimum(x, y, lam, restricted=restricted, loss="logistic")
    assert opt.width <= base.width
    specs = [RunSpec(**{**base.to_dict(), "target_params": (), "seed": s}) for s in range(32)]
    records = train_and_record(specs, TrainOptions(dtype=torch.float64))
    found = np.array([r.objective for r in records])
    tol = 1e-7 * (1 + abs(opt.value))
    assert found.min() >= opt.value - tol
    assert found.min() <= opt.value * (1 + 1e-3)
    assert reference_optima(specs[:1]) == [(pytest.approx(opt.value, rel=1e-6), "convex_exact")]


def _exactly(message: str) -> str:
    """A pattern that matches ``message`` whole and nothing else."""
    return "^" + re.escape(message) + "$"


_LINE = np.arange(4.0)[:, None]
_NO_LAM = "the convex reformulation needs weight decay lam > 0, got "


@pytest.mark.parametrize(
    "X, y, kwargs, message",
    [
        (_LINE, np.zeros(3), {}, "need X (n, d) and y (n,), got (4, 1) and (3,)"),
        (_LINE[:, 0], np.zeros(4), {}, "need X (n, d) and y (n,), got (4,) and (4,)"),
        (_LINE, np.zeros(4), {"loss": "hinge"}, "loss must be 'mse' or 'logistic', got 'hinge'"),
        (
            _LINE,
            np.array([0.0, 1.0, 0.0, 1.0]),
            {"loss": "logistic"},
            "the logistic loss needs labels in {-1, +1}",
        ),
        (
            _LINE,
            np.array([-1.0, -1.0, 1.0, 1.0]),
            {"loss": "logistic", "restricted": True},
            "the unpenalized part (e, and w when restricted) separates these labels: the "
            "infimum 0 of the logistic objective is not attained",
        ),
        (_LINE, np.zeros(4), {"lam": 0.0}, _NO_LAM + "0.0"),
        (_LINE, np.zeros(4), {"lam": -1.0}, _NO_LAM + "-1.0"),
        (_LINE, np.zeros(4), {"lam": np.nan}, _NO_LAM + "nan"),
    ],
)
def test_inputs_the_program_cannot_take_are_refused_with_their_reason(X, y, kwargs, message):
    """Each refusal names what is wrong, word for word: the shapes (a 1-D X too), the loss,
    labels outside {-1, +1}, labels the free part separates (a threshold on 4 points), and a
    weight decay that is not positive (0, negative or NaN: the reformulation is of the
    weight-decay problem)."""
    kwargs = {"lam": 0.1, **kwargs}
    with pytest.raises(ValueError, match=_exactly(message)):
        convex_optimum(X, y, **kwargs)


def test_an_explicit_solver_is_the_one_asked():
    """OSQP solves quadratic programs and cannot take the program's second-order cones, so
    cvxpy refuses it by name: the caller's solver is passed on, not replaced by the default."""
    x = np.linspace(-1, 1, 5)[:, None]
    with pytest.raises(SolverError, match="OSQP"):
        convex_optimum(x, np.abs(x[:, 0]), 0.1, solver="OSQP")


class _FakeProblem:
    """Stands in for a cvxpy problem: each solve records its solver and settings and ends
    in the next of ``outcomes``: a status, a status with a warning to emit, or
    ``SolverError``. Like cvxpy, it warns "Solution may be inaccurate" with the status
    "optimal_inaccurate"."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = []
        self.status = None

    def solve(self, solver=None, **settings):
        self.calls.append((solver, settings))
        outcome = self.outcomes.pop(0)
        if outcome is SolverError:
            raise SolverError("Solver 'CLARABEL' failed.")
        self.status, note = outcome if isinstance(outcome, tuple) else (outcome, None)
        if note:
            warnings.warn(note, UserWarning, stacklevel=2)
        if self.status == "optimal_inaccurate":
            warnings.warn(
                "Solution may be inaccurate. Try another solver, adjusting the solver "
                "settings, or solve with verbose=True for more information.",
                UserWarning,
                stacklevel=2,
            )


def _solve_recording(problem, *args):
    """solve_program(problem, *args) and the warnings that reach its caller."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        solve_program(problem, *args)
    return [str(w.message) for w in caught]


def test_the_default_solve_is_clarabel_and_an_optimal_status_ends_it():
    problem = _FakeProblem("optimal")
    assert _solve_recording(problem) == []
    ((solver, settings),) = problem.calls
    assert solver.upper() == "CLARABEL" and settings == {}


@pytest.mark.parametrize("clarabel", ["optimal_inaccurate", SolverError, "infeasible"])
def test_anything_but_optimal_from_clarabel_is_solved_again_by_scs(clarabel):
    """The fallback policy: Clarabel's inaccurate status, failure or any other status sends
    the program to SCS at residuals SCS_EPS (1e-7, below the 1e-6 relative accuracy the
    reference needs) within the given seconds; the warning cvxpy emits for Clarabel's
    refused inaccurate status does not reach the caller (nothing was accepted from it)."""
    problem = _FakeProblem(clarabel, "optimal")
    assert _solve_recording(problem, None, 7.5) == []
    (first, _), (second, settings) = problem.calls
    assert first.upper() == "CLARABEL" and second.upper() == "SCS"
    assert settings["eps_abs"] == settings["eps_rel"] == SCS_EPS <= 1e-6
    assert settings["time_limit_secs"] == 7.5 and settings["max_iters"] >= 10**6


def test_the_ladder_tries_its_settings_in_turn_past_failures_and_never_past_an_end():
    """With a ladder, a Clarabel failure moves on to the next rung's settings, and the
    first rung that ends (optimal: taken; anything else: SCS) stops the ladder."""
    from realspace.convex.solvers import LADDER

    problem = _FakeProblem(SolverError, SolverError, "optimal")
    assert _solve_recording(problem, None, 60.0, LADDER) == []
    assert [(sv.upper(), st) for sv, st in problem.calls] == [("CLARABEL", o) for o in LADDER[:3]]
    problem = _FakeProblem(SolverError, "optimal_inaccurate", "optimal")
    _solve_recording(problem, None, 60.0, LADDER)
    assert [sv.upper() for sv, _ in problem.calls] == ["CLARABEL", "CLARABEL", "SCS"]
    assert problem.calls[1][1] == LADDER[1]
    problem = _FakeProblem(*[SolverError] * len(LADDER), "optimal")
    _solve_recording(problem, None, 60.0, LADDER)
    assert len(problem.calls) == len(LADDER) + 1 and problem.calls[-1][0].upper() == "SCS"


def test_only_the_inaccurate_solution_warning_is_silenced():
    """Another warning during the Clarabel solve is not cvxpy's inaccurate-solution notice,
    so it reaches the caller."""
    problem = _FakeProblem(("optimal", "the problem is badly scaled"))
    assert _solve_recording(problem) == ["the problem is badly scaled"]


@pytest.mark.parametrize("scs", ["optimal_inaccurate", "infeasible", "user_limit"])
def test_scs_short_of_optimal_leaves_no_reference(scs):
    problem = _FakeProblem("optimal_inaccurate", scs)
    with pytest.raises(RuntimeError, match=_exactly(f"convex program ended with status {scs}")):
        _solve_recording(problem)
    assert len(problem.calls) == 2


@pytest.mark.parametrize("status", ["optimal", "optimal_inaccurate"])
def test_an_explicit_solver_runs_once_as_given_and_may_end_inaccurate(status):
    """The caller chose the solver: it runs with cvxpy's settings, once, and an inaccurate
    optimum is accepted (with cvxpy's warning, which is the caller's to see)."""
    problem = _FakeProblem(status)
    caught = _solve_recording(problem, "SCS")
    assert problem.calls == [("SCS", {})]
    assert len(caught) == (status == "optimal_inaccurate")


def test_an_explicit_solver_short_of_optimal_leaves_no_reference():
    problem = _FakeProblem("infeasible")
    with pytest.raises(RuntimeError, match=_exactly("convex program ended with status infeasible")):
        solve_program(problem, "SCS")
    assert problem.calls == [("SCS", {})]


def _separable_by_brute_force(x, y, restricted):
    """Labels y on the line x are separated by the constant e iff they are one class, and
    by an affine w x + e iff, in the order of x, they change sign at most once."""
    s = y[np.argsort(x)]
    changes = int(np.sum(s[1:] != s[:-1]))
    return changes == 0 or (restricted and changes == 1)


def test_free_part_separates_the_labels_a_threshold_or_one_class_classifies():
    """Every labelling of 6 shuffled points on a line, against the brute-force rule; a single
    point is one class; in the plane, XOR is not linearly separable and a half-plane is."""
    x = np.random.default_rng(3).permutation(6).astype(float)
    for bits in range(2**6):
        y = np.where([(bits >> k) & 1 for k in range(6)], 1.0, -1.0)
        for restricted in (False, True):
            expected = _separable_by_brute_force(x, y, restricted)
            assert free_part_separates(x[:, None], y, restricted) == expected, (y, restricted)
    assert free_part_separates(np.array([[0.3]]), np.array([-1.0]), restricted=False)
    square = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    assert not free_part_separates(square, np.array([1.0, 1.0, -1.0, -1.0]), restricted=True)
    assert free_part_separates(square, np.array([1.0, -1.0, 1.0, -1.0]), restricted=True)


def _v_optimum(n, lam):
    """The closed-form optimum for y = |x| on the symmetric grid x_k = k / m, |k| <= m (n =
    2m + 1 points, x = 0 among them), unrestricted, 0 < lam < Var|x|: (J*, the fit on x).

    The fit is f = s|x| + e with 1 - s = lam / Var|x| and e = (1 - s) mean|x| (the two
    normal equations of (1/n) sum ((1 - s)|x_k| - e)^2 + 2 lam s), and J* = 2 lam - lam^2 /
    Var|x|. Why the V is optimal: a balanced neuron c rho(a x + b) changes the slope of f by
    c a at its kink and costs lam |c a|, so slopes -s and +s on the data cost at least
    2 s lam; and the residuals r_k = (1 - s)|x_k| - e, which sum to 0 (e is free) and grow
    with |x_k|, give the dual certificate (2/n) |sum_k r_k rho(+-(x_k - t))| <= lam for
    every kink t and orientation, with equality at t = 0. The realization is forced too: at
    cost 2 s lam the slope is -s on [-1, 0] and +s on [0, 1], so every neuron has its kink
    at 0, and merged by orientation they are exactly two, s rho(x) + s rho(-x)."""
    absx = np.abs(np.arange(-(n // 2), n // 2 + 1) / (n // 2))
    var = np.var(absx)
    s = 1 - lam / var
    return 2 * lam - lam**2 / var, s * absx + (1 - s) * np.mean(absx)


@pytest.mark.parametrize("scale", [1.0, 100.0])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_v_shaped_target_has_its_closed_form_optimum_in_exactly_two_neurons(sign, scale):
    """y = sign * scale * |x| on 41 points with lam = scale * 0.03: J* scales by scale^2 (the
    program is homogeneous: (y, lam) -> (t y, t lam), t > 0, scales (f, u) by t and J by
    t^2; y -> -y flips every c), the fit by sign * scale. The solver's solution may carry
    tiny neurons besides the two, so the width checks the pruning: two neurons whose
    output weights c carry the sign of the target (both negative for the inverted V),
    labelled exact from width 2 on."""
    n, lam0 = 41, 0.03
    x = (np.arange(n) - n // 2)[:, None] / (n // 2)
    value, fit = _v_optimum(n, lam0)
    opt = convex_optimum(x, sign * scale * np.abs(x[:, 0]), scale * lam0)
    assert opt.value == pytest.approx(scale**2 * value, rel=1e-6)
    assert opt.attained == pytest.approx(opt.value, rel=1e-6)
    assert opt.net(x) == pytest.approx(sign * scale * fit, rel=1e-5, abs=1e-6 * scale)
    assert opt.width == 2 and np.all(np.sign(opt.net.c) == sign)
    assert opt.reference(2) == (opt.value, "convex_exact")
    assert opt.reference(1) == (opt.value, "convex_lower_bound")


def test_at_small_weight_decay_the_network_still_attains_the_small_value():
    """lam = 1e-7: J* = 2 lam - lam^2 / Var|x| (the closed form above) is about 2e-7, and the
    pruned network attains it to the solver's absolute accuracy (1e-9), far below the
    constant fit's Var|x| (about 0.09): a pruning tolerance that grew as J* shrank would
    take the constant fit for the optimum."""
    n, lam = 41, 1e-7
    x = (np.arange(n) - n // 2)[:, None] / (n // 2)
    opt = convex_optimum(x, np.abs(x[:, 0]), lam)
    assert opt.value == pytest.approx(_v_optimum(n, lam)[0], rel=0, abs=1e-9)
    assert opt.attained == pytest.approx(opt.value, rel=0, abs=2e-9)


def test_given_patterns_give_an_upper_bound_attained_by_the_network():
    """Patterns the caller gives need not be all of them. With only the all-on pattern every
    neuron is affine on the data, and on the symmetric V the best affine fit is the
    constant: the value is Var|x|, above the closed-form J*, labelled an upper bound and
    attained by the network. Given all patterns, the value is J*, labelled the same way
    (the program cannot know they are all)."""
    n, lam = 41, 0.03
    x = (np.arange(n) - n // 2)[:, None] / (n // 2)
    y = np.abs(x[:, 0])
    value, _ = _v_optimum(n, lam)
    one = convex_optimum(x, y, lam, patterns=np.ones((1, n), bool))
    assert one.value == pytest.approx(np.var(y), rel=1e-6) and one.value > value
    assert one.attained == pytest.approx(one.value, rel=1e-6)
    assert one.reference(n) == (one.value, "convex_sampled_upper_bound") and one.exact is False
    every = convex_optimum(x, y, lam, patterns=activation_patterns(x)[0])
    assert every.value == pytest.approx(value, rel=1e-6)
    assert every.reference(n) == (every.value, "convex_sampled_upper_bound")


@pytest.mark.parametrize("restricted", [False, True])
def test_no_patterns_leave_the_free_part_alone(restricted):
    """An empty list of patterns allows no neuron: the network is its free part, e (the
    mean: J = Var y) or, restricted, w x + e (the least-squares line: J = its mean squared
    residual), both free of weight decay."""
    x = sample_points(12, 1, 1.0, "grid")
    y = np.sin(3 * x[:, 0]) + x[:, 0]
    opt = convex_optimum(x, y, 0.1, restricted, patterns=np.zeros((0, 12), bool))
    line = np.polyval(np.polyfit(x[:, 0], y, 1), x[:, 0])
    expected = np.mean((y - line) ** 2) if restricted else np.var(y)
    assert opt.value == pytest.approx(expected, rel=1e-6)
    assert opt.attained == pytest.approx(expected, rel=1e-6)
    assert opt.width == 0 and opt.patterns == 0


def test_the_order_of_the_points_does_not_change_the_optimum():
    """The program depends on the data as a set: shuffled, the same value, still attained by
    the network rebuilt from the solution (in d = 1 each pattern's cone is written with its
    extreme points, which must not be read off the points' order)."""
    x = sample_points(24, 1, 1.0, "grid")
    y = np.sin(3 * x[:, 0]) + np.abs(x[:, 0])
    order = np.random.default_rng(4).permutation(len(y))
    ref = convex_optimum(x, y, 1e-2)
    opt = convex_optimum(x[order], y[order], 1e-2)
    assert opt.value == pytest.approx(ref.value, rel=1e-6)
    assert opt.attained == pytest.approx(opt.value, rel=1e-6)


def test_sampled_patterns_in_three_dimensions_give_a_network_attaining_the_value():
    """d = 3: the patterns are sampled (at most one per sampled hyperplane, plus the all-on
    one), the value is labelled an upper bound at every width, and the network rebuilt
    from the solution attains it: each pattern's cone is written with every point."""
    X = np.random.default_rng(5).uniform(-1, 1, (20, 3))
    y = np.abs(X[:, 0]) - X[:, 1] * X[:, 2]
    opt = convex_optimum(X, y, 1e-2, samples=50)
    assert not opt.exact and 1 <= opt.patterns <= 50 + 1
    direct = mse(opt.net, X, y) + weight_decay_penalty(opt.net, 1e-2)
    assert direct == pytest.approx(opt.value, rel=1e-6)
    assert opt.reference(10**6) == (opt.value, "convex_sampled_upper_bound")


def _prediction(U, V, e, x):
    """The program's prediction sum_j rho(X~ u_j) - sum_j rho(X~ v_j) + e, computed directly."""
    Xt = np.hstack([x, np.ones((len(x), 1))])
    return np.maximum(Xt @ U.T, 0).sum(axis=1) - np.maximum(Xt @ V.T, 0).sum(axis=1) + e


_X1 = np.linspace(-2, 2, 9)[:, None]


def test_the_network_of_a_solution_computes_its_prediction_with_merged_neurons():
    """Rows with the same hyperplane and orientation are one neuron (their slopes add);
    rows with u_a = 0 are constants rho(u_b) = u_b, added to e with their sign; each neuron
    is balanced, so the penalty is lam sum ||u_a|| (here 1 + 2 + 1 = 4)."""
    U = np.array([[1.0, 0.2], [2.0, 0.4], [0.0, 0.5]])
    V = np.array([[0.0, 0.25], [-1.0, 0.3]])
    net = _network(U, V, 0.1, None, 1)
    assert net(_X1) == pytest.approx(_prediction(U, V, 0.1, _X1), abs=1e-12)
    assert net.width == 2 and sorted(np.sign(net.c)) == [-1.0, 1.0]
    assert weight_decay_penalty(net, 1.0) == pytest.approx(4.0, rel=1e-12)


@pytest.mark.parametrize("side", ["U", "V"])
def test_a_row_with_a_negligible_slope_is_a_constant_of_the_network(side):
    """A row whose ||u_a|| is 1e-12 of the solution's largest entry (10, in the other of U
    and V) is rho(1e-12 x + 0.5) = 0.5 on the data: it goes into e, so the network still
    computes the prediction (to 1e-11), and it is no neuron."""
    big, small = np.array([[10.0, 0.0]]), np.array([[1e-12, 0.5]])
    U, V = (small, big) if side == "U" else (big, small)
    net = _network(U, V, 0.0, None, 1)
    assert net(_X1) == pytest.approx(_prediction(U, V, 0.0, _X1), abs=1e-10)
    assert net.width == 1


def test_the_relative_cut_and_an_integer_bias_reach_the_rebuilt_network():
    """The caller's ``rel_tol`` decides which neurons stay (a neuron at 1e-3 of the largest
    is kept at 1e-4, dropped at 1e-2), and a bias given as the integer 0 still takes a
    constant row's 0.5 (float arithmetic, not an integer array that would truncate it)."""
    U = np.array([[1.0, 0.1], [1e-3, 1e-3], [0.0, 0.5]])
    V = np.zeros((1, 2))
    assert _network(U, V, 0.0, None, 1, rel_tol=1e-4).width == 2
    assert _network(U, V, 0.0, None, 1, rel_tol=1e-2).width == 1
    net = _network(U, V, 0, None, 1)
    assert net.e == 0.5 and net(_X1) == pytest.approx(_prediction(U, V, 0.0, _X1), abs=1e-15)


def test_a_neuron_and_its_negative_cancel():
    """The same row in U and in V computes rho(.) - rho(.) = 0: no neuron is left."""
    U = np.array([[1.0, 0.2]])
    net = _network(U, U.copy(), 0.3, None, 1)
    assert net.width == 0 and net(_X1) == pytest.approx(np.full(9, 0.3))


@pytest.mark.parametrize("scale", [1e-15, 1e-3, 1.0, 1e3])
def test_the_network_of_a_scaled_solution_is_the_scaled_network(scale):
    """The prediction is positively homogeneous in (U, V, e), so the rebuilt network of
    t (U, V, e) computes t times the prediction with the same neurons: those of slope 1,
    1e-3 and 1e-5 of the largest; the one at 1e-9 is below the relative cut (1e-7 of the
    largest) at every scale."""
    U = np.array([[1.0, 0.1], [1e-3, 1e-3], [-1e-5, 0.0], [1e-9, -2e-9]])
    V = np.zeros((1, 2))
    net = _network(scale * U, V, scale * 0.2, None, 1)
    assert net.width == 3
    keep = U[:3]
    assert net(_X1) == pytest.approx(scale * _prediction(keep, V, 0.2, _X1), rel=1e-12, abs=1e-15)


def test_reference_optima_takes_each_case_in_turn():
    """One list through every case, in order (no case cuts the list short):
    a Gaussian (population) teacher without weight decay and wide enough is realizable
    (J* = 0); with weight decay its loss has no program (nan, ""); logistic labels that
    one threshold separates (+ then -, asserted below) have infimum 0 when w is
    free (nan, "") but not unrestricted, where e alone cannot separate two classes: there
    the reference is the program's value; a regression target whose values are all
    positive (bump) is no classification, so it gets its convex reference too; and a
    cross-entropy spec in d = 1 gets the relaxation's lower bound."""
    gauss = dict(target="gaussian", d=2, teacher_width=2, width=3, bias=False, train_output=False)
    labels = dict(target="teacher_labels", d=1, n_samples=24, teacher_width=1, width=12)
    specs = [
        RunSpec(**gauss),
        RunSpec(**gauss, weight_decay=0.01),
        RunSpec(**labels, weight_decay=0.05, parametrization="restricted"),
        RunSpec(**labels, weight_decay=0.05),
        RunSpec(
            target="bump", n_samples=24, weight_decay=1e-2, width=8, parametrization="restricted"
        ),
        RunSpec(
            target="teacher_labels",
            d=1,
            n_samples=24,
            n_classes=3,
            teacher_width=6,
            teacher_seed=3,
            weight_decay=0.02,
            width=12,
        ),
    ]
    assert make_data(specs[4])[1].min() > 0
    x, y = make_data(specs[3])
    assert "".join("+" if v > 0 else "-" for v in y[np.argsort(x[:, 0])]) == "+" * 20 + "-" * 4
    refs = reference_optima(specs)
    assert len(refs) == len(specs)
    assert refs[0] == (0.0, "teacher_realizable")
    assert [np.isnan(v) and label == "" for v, label in refs[1:3]] == [True, True]
    logistic = convex_optimum(x, y, 0.05, loss="logistic")
    assert refs[3] == (pytest.approx(logistic.value, rel=1e-6), logistic.reference(12)[1])
    assert refs[4][0] > 0 and refs[4][1] in ("convex_exact", "convex_lower_bound")
    assert refs[5][0] > 0 and refs[5][1] == "convex_relaxation_lower_bound"


def test_cross_entropy_references_need_exact_patterns(monkeypatch):
    """The relaxation's lower bound exists only where the patterns are enumerated exactly:
    d = 1, or d = 2 with at most EXACT_2D_MAX_POINTS points, the bound included (lowered
    here to the spec's 12 points, to keep the program small); d = 3 gets (nan, "")."""
    from realspace.convex import references

    spec = dict(target="spirals", d=2, n_samples=12, n_classes=3, weight_decay=0.02, width=16)
    monkeypatch.setattr(references, "EXACT_2D_MAX_POINTS", 12)
    ((value, label),) = reference_optima([RunSpec(**spec)])
    assert value > 0 and label == "convex_relaxation_lower_bound"
    monkeypatch.setattr(references, "EXACT_2D_MAX_POINTS", 11)
    ((value, label),) = reference_optima([RunSpec(**spec)])
    assert np.isnan(value) and label == ""
    cube = RunSpec(target="teacher_labels", d=3, n_samples=24, n_classes=3, weight_decay=0.02)
    ((value, label),) = reference_optima([cube])
    assert np.isnan(value) and label == ""


def test_reference_optima_solves_each_lam_parametrization_and_sample_count_apart():
    """Specs sharing their data but not lam or the parametrization get a program each: every
    reference is convex_optimum's value for its own (lam, restricted), three different
    values (on sin(pi x / 4), nearly a line, a free w saves what neurons pay for the
    slope); and in d = 3 the caller's sample count reaches the pattern sampling."""
    base = dict(target="sin", target_params=(("freq", 0.25),), n_samples=24, width=64)
    specs = [
        RunSpec(**base, weight_decay=1e-2),
        RunSpec(**base, weight_decay=3e-2),
        RunSpec(**base, weight_decay=1e-2, parametrization="restricted"),
    ]
    x, y = make_data(specs[0])
    expected = [
        convex_optimum(x, y, 1e-2).value,
        convex_optimum(x, y, 3e-2).value,
        convex_optimum(x, y, 1e-2, restricted=True).value,
    ]
    assert len(set(np.round(expected, 6))) == 3
    assert [v for v, _ in reference_optima(specs)] == pytest.approx(expected, rel=1e-6)
    cube = RunSpec(target="sin", d=3, n_samples=20, sampling="uniform", weight_decay=1e-2)
    xc, yc = make_data(cube)
    ((value, label),) = reference_optima([cube], samples=50)
    assert label == "convex_sampled_upper_bound"
    assert value == pytest.approx(convex_optimum(xc, yc, 1e-2, samples=50).value, rel=1e-6)


def test_a_program_no_solver_finishes_leaves_no_reference(monkeypatch):
    from realspace.convex import references

    def fail(*args, **kwargs):
        raise RuntimeError("convex program ended with status user_limit")

    monkeypatch.setattr(references, "convex_optimum", fail)
    monkeypatch.setattr(references, "PROGRAMS", references.ProgramCache())  # none solved yet
    spec = RunSpec(target="sin", n_samples=24, weight_decay=1e-2)
    ((value, label),) = reference_optima([spec])
    assert np.isnan(value) and label == ""
