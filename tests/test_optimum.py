"""The convex reference optimum (Pilanci & Ergen) against independent truths: closed-form
pattern counts, brute-force pattern sampling, the constant fit at large lam, and
many-restart float64 training of the non-convex problem."""

from math import comb

import numpy as np
import pytest
import torch

from realspace.optimum import activation_patterns, convex_optimum, reference_optima
from realspace.targets import logistic_loss, mse, sample_points, weight_decay_penalty
from realspace.train import RunSpec, TrainOptions, make_data, train_and_record


def test_patterns_in_one_dimension_are_the_2n_minus_1_thresholds():
    x = np.sort(np.random.default_rng(0).uniform(-1, 1, 9))[:, None]
    masks, exact = activation_patterns(x)
    assert exact and len(masks) == 2 * 9 - 1
    # every mask is a prefix or a suffix of the sorted points
    for m in masks:
        k = int(m.sum())
        assert m.tolist() in ([True] * k + [False] * (9 - k), [False] * (9 - k) + [True] * k)


@pytest.mark.parametrize("n", [5, 8])
def test_patterns_in_two_dimensions_match_the_counting_formula_and_brute_force(n):
    X = np.random.default_rng(n).uniform(-1, 1, (n, 2))  # general position
    masks, exact = activation_patterns(X)
    # Cover's count of affine dichotomies in general position, minus the empty set
    assert exact and len(masks) == 2 * sum(comb(n - 1, k) for k in range(3)) - 1
    rng = np.random.default_rng(1)
    A = rng.standard_normal((200_000, 2))
    b = rng.uniform(-2, 2, 200_000)
    sampled = {tuple(m) for m in (X @ A.T + b > 0).T if m.any()}
    assert sampled == {tuple(m) for m in masks}


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


@pytest.mark.parametrize("d, n", [(1, 6), (2, 9)])
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


@pytest.mark.parametrize("restricted", [False, True])
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
