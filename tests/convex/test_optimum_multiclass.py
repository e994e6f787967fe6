"""Bounds on the multiclass cross-entropy weight-decay optimum against independent truths:
many-restart float64 training of vector-output networks (never below the lower bound),
the rebuilt networks' objectives evaluated directly, the exact two-class value from the
binary logistic program, and the labels the statistics read."""

import time

import numpy as np
import pytest
import torch

from realspace.convex import (
    activation_patterns,
    convex_optimum,
    cross_entropy,
    free_part_recedes,
    multiclass_bounds,
    reference_optima,
    separable_upper_bounds,
)
from realspace.core.nets import ShallowNet
from realspace.core.problem import make_data
from realspace.core.spec import RunSpec
from realspace.core.targets import logistic_loss, weight_decay_penalty
from realspace.stats import EXACT_AT_WIDTH, LOWER_BOUNDS

LAM = 0.02


def objective(net, x, y, lam):
    return cross_entropy(net, x, y) + weight_decay_penalty(net, lam)


def spirals_spec(**kw):
    base = dict(target="spirals", d=2, n_samples=24, n_classes=3, weight_decay=LAM, width=16)
    return RunSpec(**{**base, **kw})


@pytest.fixture(scope="module")
def spirals_bounds():
    x, y = make_data(spirals_spec())
    return x, y, multiclass_bounds(x, y, LAM, restricted=False, m=3)


def train_restarts(x, y, lam, width, seeds, restricted, steps=2000, lr=0.02):
    """Full-batch Adam on J = CE + (lam/2)(||c||^2 + ||a||^2) through torch autograd in
    float64, one batch of independent restarts; returns the trained ShallowNets."""
    g = torch.Generator().manual_seed(1000 * width + seeds)
    X = torch.tensor(x)
    Y = torch.tensor(y, dtype=torch.long)
    n, d = X.shape
    m = int(Y.max()) + 1
    R = seeds
    a = (torch.randn(R, width, d, generator=g, dtype=torch.float64) / d**0.5).requires_grad_()
    p = X[torch.randint(0, n, (R, width), generator=g)]
    b = (-(a.detach() * p).sum(-1)).requires_grad_()  # kinks start at data points
    c = (torch.randn(R, width, m, generator=g, dtype=torch.float64) / width**0.5).requires_grad_()
    e = torch.zeros(R, m, dtype=torch.float64, requires_grad=True)
    W = torch.zeros(R, m, d, dtype=torch.float64, requires_grad=restricted)
    params = [a, b, c, e] + ([W] if restricted else [])
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        Z = torch.relu(torch.einsum("nd,rid->rni", X, a) + b[:, None, :])
        F = Z @ c + e[:, None, :] + torch.einsum("nd,rmd->rnm", X, W)
        ce = (torch.logsumexp(F, -1) - F.gather(-1, Y.expand(R, n)[..., None])[..., 0]).mean(-1)
        J = ce + lam / 2 * ((c**2).sum((1, 2)) + (a**2).sum((1, 2)))
        J.sum().backward()
        opt.step()
    return [
        ShallowNet(
            a[r].detach().numpy(),
            b[r].detach().numpy(),
            c[r].detach().numpy(),
            e[r].detach().numpy(),
            W[r].detach().numpy() if restricted else None,
        )
        for r in range(R)
    ]


# restricted (22 s here) runs with the slow tests
@pytest.mark.parametrize("restricted", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_many_restart_training_never_beats_the_lower_bound(restricted):
    """21 float64 Adam restarts of vector-output networks of widths 8, 16 and 32 on three
    spirals: every trained objective (evaluated in numpy) stays above the relaxation's
    lower bound, which stays below the separable upper bound."""
    x, y = make_data(spirals_spec())
    assert not free_part_recedes(x, y, 3, restricted)
    bounds = multiclass_bounds(x, y, LAM, restricted=restricted, m=3)
    assert bounds.exact and bounds.lower is not None
    tol = 1e-7 * (1 + abs(bounds.lower))
    assert bounds.lower <= bounds.upper + tol
    found = [
        objective(net, x, y, LAM)
        for width in (8, 16, 32)
        for net in train_restarts(x, y, LAM, width, 7, restricted)
    ]
    assert min(found) >= bounds.lower - tol
    # training reaches the bracket's neighbourhood: the test is not vacuous
    assert min(found) <= bounds.upper * 1.05


def test_the_upper_bound_is_the_objective_of_the_rebuilt_network(spirals_bounds):
    x, y, bounds = spirals_bounds
    per_class = bounds.separable_net
    # one class per neuron: the separable program's network, its value up to tolerance
    assert np.all((per_class.c != 0).sum(axis=1) == 1)
    J = objective(per_class, x, y, LAM)
    assert J == pytest.approx(bounds.separable_value, rel=1e-6)

    # merging hyperplanes across classes and centering c keep every output difference
    # F_k - F_l (so CE) and cannot raise the cost
    def centered(F):
        return F - F.mean(axis=1, keepdims=True)

    np.testing.assert_allclose(centered(bounds.net(x)), centered(per_class(x)), atol=1e-10)
    assert np.allclose(bounds.net.c.sum(axis=1), 0, atol=1e-12)
    assert bounds.net.width == bounds.width <= per_class.width
    assert bounds.upper == pytest.approx(objective(bounds.net, x, y, LAM), rel=1e-12)
    assert bounds.upper <= J + 1e-12
    # CE against torch's own cross-entropy
    F = torch.tensor(bounds.net(x))
    ref = torch.nn.functional.cross_entropy(F, torch.tensor(y, dtype=torch.long))
    assert cross_entropy(bounds.net, x, y) == pytest.approx(float(ref), rel=1e-12)
    assert bounds.lower <= bounds.upper


def test_two_classes_bracket_the_exact_binary_logistic_value():
    """m = 2: CE(F) = log(1 + exp(-(F_1 - F_0))) for class 1 (and the other sign for
    class 0), and a network's h = F_1 - F_0 has neuron weights c_i1 - c_i0 with
    |c_i1 - c_i0| <= sqrt(2) ||c_i||, equality at c_i = gamma (e_1 - e_0) / 2. So the
    two-class optimum at lam is the binary logistic optimum at lam / sqrt(2) (exact in
    d = 1), which must lie between the two bounds. At m = 2 the relaxation is exact: a
    centered c_i = (-s, s) has |c_ik| = ||c_i|| / sqrt(2), which its weight sqrt(2) on
    max_k R_k charges in full."""
    spec = RunSpec(target="teacher_labels", d=1, n_samples=24, teacher_width=3, teacher_seed=1)
    x, pm = make_data(spec)  # labels in {-1, +1}
    labels = (pm > 0).astype(float)
    binary = convex_optimum(x, pm, LAM / np.sqrt(2), loss="logistic")
    assert binary.exact
    bounds = multiclass_bounds(x, labels, LAM, m=2)
    tol = 1e-6 * (1 + binary.value)
    assert bounds.lower - tol <= binary.value <= bounds.upper + tol
    assert bounds.lower == pytest.approx(binary.value, rel=1e-6)
    # the logistic network, turned into two outputs, attains the same value at lam
    net = binary.net
    two = ShallowNet(net.a, net.b, np.outer(net.c, [-0.5, 0.5]), [-net.e / 2, net.e / 2])
    scale = 2 ** (-0.25)  # rebalance: ||c|| shrinks by sqrt(2), so (a, b) by 2^(-1/4)
    two = ShallowNet(net.a * scale, net.b * scale, two.c / scale, two.e)
    np.testing.assert_allclose(two(x)[:, 1] - two(x)[:, 0], net(x), atol=1e-12)
    direct = logistic_loss(net, x, pm) + weight_decay_penalty(net, LAM / np.sqrt(2))
    assert objective(two, x, labels, LAM) == pytest.approx(direct, rel=1e-12)


def test_sampled_or_given_patterns_give_no_lower_bound():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (12, 3))  # d = 3: sampled patterns
    y = np.arange(12) % 3
    sampled = multiclass_bounds(x, y, LAM, m=3, samples=200)
    assert not sampled.exact and sampled.lower is None
    assert sampled.upper == pytest.approx(objective(sampled.net, x, y, LAM), rel=1e-12)
    x2 = rng.uniform(-1, 1, (9, 2))
    y2 = np.arange(9) % 3
    patterns, exact = activation_patterns(x2)
    assert exact
    subset = multiclass_bounds(x2, y2, LAM, m=3, patterns=patterns[::2])
    assert subset.lower is None
    full = multiclass_bounds(x2, y2, LAM, m=3, patterns=patterns, patterns_exact=True)
    # fewer patterns: a network of fewer shapes, so the upper bound cannot drop
    assert full.lower <= full.upper <= subset.upper + 1e-7


def test_a_receding_free_part_is_refused():
    x = np.linspace(-1, 1, 9)[:, None]
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2.0])
    assert free_part_recedes(x, y, 3, restricted=True)  # a line cuts class 0 off
    assert not free_part_recedes(x, y, 3, restricted=False)
    assert free_part_recedes(x, np.minimum(y, 1), 3, restricted=False)  # class 2 empty
    with pytest.raises(ValueError, match="not attained"):
        multiclass_bounds(x, y, LAM, restricted=True, m=3)


def test_reference_labels_for_cross_entropy():
    spec = spirals_spec()
    (value, label), (none, empty) = reference_optima([spec, spirals_spec(weight_decay=0.0)])
    assert label == "convex_relaxation_lower_bound" and value > 0
    assert np.isnan(none) and empty == ""
    assert label in LOWER_BOUNDS and label not in EXACT_AT_WIDTH
    ((upper, ulabel, width),) = separable_upper_bounds([spec])
    assert ulabel == "convex_separable_upper_bound" and value <= upper and width > 0
    # too many points in d = 2 for exact patterns: no lower bound
    big = spirals_spec(n_samples=70)
    assert np.isnan(reference_optima([big], samples=100)[0][0])


def test_a_failed_solve_leaves_no_reference(monkeypatch):
    import cvxpy as cp

    from realspace.convex import references

    def fail(*args, **kwargs):
        raise cp.error.SolverError("stalled")

    monkeypatch.setattr(references, "multiclass_bounds", fail)
    monkeypatch.setattr(references, "PROGRAMS", references.ProgramCache())
    with pytest.warns(UserWarning, match="stalled"):
        ((value, label),) = reference_optima([spirals_spec(weight_decay=0.03)])
    assert np.isnan(value) and label == ""


def _small_spirals(**kw):
    return RunSpec(**{**dict(target="spirals", d=2, n_samples=9, n_classes=3), **kw})


def test_multiclass_references_solve_each_program_of_its_own_spec_and_none_elsewhere(
    monkeypatch,
):
    """In one call, in the specs' order: None for a regression target, for cross-entropy
    without weight decay, and for a restricted mixture whose classes a linear map separates
    (the free part recedes); for the others, the bounds of their own program: restricted
    against unrestricted (0.65 against 0.94 on 9 spiral points) and each weight decay apart,
    each equal to multiclass_bounds solved directly."""
    from realspace.convex import multiclass_references, references

    monkeypatch.setattr(references, "PROGRAMS", references.ProgramCache())
    specs = [
        RunSpec(target="sin", weight_decay=0.05),
        _small_spirals(weight_decay=0.0),
        RunSpec(
            target="mixture", d=2, n_samples=12, n_classes=3, weight_decay=0.05,
            target_params=(("spread", 0.05),), parametrization="restricted",
        ),
        _small_spirals(weight_decay=0.05, parametrization="restricted"),
        _small_spirals(weight_decay=0.05),
        _small_spirals(weight_decay=0.1),
    ]  # fmt: skip
    got = multiclass_references(specs)
    assert got[:3] == [None, None, None]
    x, y = make_data(specs[3])
    cases = [(0.05, True), (0.05, False), (0.1, False)]
    for bounds, (lam, restricted) in zip(got[3:], cases, strict=True):
        direct = multiclass_bounds(x, y, lam, restricted=restricted, m=3)
        assert (bounds.lam, bounds.restricted) == (lam, restricted)
        assert bounds.lower == pytest.approx(direct.lower, rel=1e-9)
        assert bounds.upper == pytest.approx(direct.upper, rel=1e-9)
    assert got[3].lower < got[4].lower - 0.2  # a free linear part helps the classes apart


def test_separable_upper_bounds_are_empty_where_no_program_applies():
    got = separable_upper_bounds([RunSpec(target="sin", weight_decay=0.05), _small_spirals()])
    assert all(np.isnan(v) and label == "" and width == 0 for v, label, width in got)
    assert len(got) == 2


def test_a_failed_solve_warns_at_the_caller(monkeypatch):
    """The warning of a program no solver finished names the line that asked for the
    references, not the cache's inside."""
    import cvxpy as cp

    from realspace.convex import multiclass_references, references

    def fail(*args, **kwargs):
        raise cp.error.SolverError("stalled")

    monkeypatch.setattr(references, "multiclass_bounds", fail)
    monkeypatch.setattr(references, "PROGRAMS", references.ProgramCache())
    with pytest.warns(UserWarning, match="stalled") as caught:
        assert multiclass_references([_small_spirals(weight_decay=0.05)]) == [None]
    assert caught[0].filename == __file__


def test_the_program_cache_drops_its_oldest_solution_beyond_its_size():
    """A cache of two: the third key drops the first (solved again when asked), the second
    and third stay; a solve that gave None is kept, not retried."""
    from realspace.convex.references import ProgramCache

    solved = []

    def solver(name, value):
        def solve():
            solved.append(name)
            return value

        return solve

    cache = ProgramCache(size=2)
    assert cache.get("a", solver("a", 1)) == 1 and cache.get("b", solver("b", None)) is None
    assert cache.get("a", solver("a", 9)) == 1 and cache.get("b", solver("b", 9)) is None
    assert cache.get("c", solver("c", 3)) == 3
    assert cache.get("b", solver("b", 9)) is None and cache.get("c", solver("c", 9)) == 3
    assert cache.get("a", solver("a", 4)) == 4
    assert solved == ["a", "b", "c", "a"]
    x, y = np.zeros(2), np.ones(2)
    assert ProgramCache.key(x, y, "k", 1) == ProgramCache.key(x, y, "k", 1)
    assert len({ProgramCache.key(x, y, "k", 1), ProgramCache.key(x, y, "k", 2),
                ProgramCache.key(y, x, "k", 1)}) == 3  # fmt: skip


@pytest.mark.parametrize("m", [2, 3, 4, 5, 6, 7])
def test_the_relaxations_weightings_against_a_brute_force_over_sign_vectors(m):
    """The rows the relaxation charges: sqrt(m / (m - 1)) e_k, 1 / max |c_k| over unit c
    orthogonal to 1 (attained by c = e_k - 1 / m, normalized), and (1 / kappa_m) 1, kappa_m
    the largest ||c||_1 of such a c: max over sign vectors s of ||P s||_2, P the projection
    orthogonal to 1, taken here over all 2^m of them."""
    from itertools import product

    from realspace.convex.multiclass import _vertices

    P = np.eye(m) - np.full((m, m), 1.0 / m)
    kappa = max(np.linalg.norm(P @ np.array(s)) for s in product([-1.0, 1.0], repeat=m))
    c = P[0] / np.linalg.norm(P[0])
    got = _vertices(m)
    assert got.shape == (m + 1, m)
    assert got[:m] == pytest.approx(np.eye(m) / np.abs(c).max(), rel=1e-14)
    assert got[m] == pytest.approx(np.full(m, 1.0 / kappa), rel=1e-14)


def _toy_relaxation(seed: int, m: int = 3, lam: float = 0.1, pieces: int = 6, spread: float = 2):
    """A concave L(w) = min_i (a_i + lam <w, R_i>) (R_i >= 0, as the class norms are) and
    its exact max over the weightings conv(_vertices(m)), by an LP over t and the convex
    weights mu of the vertices: max t, t <= a_i + lam <mu V, R_i>."""
    from scipy.optimize import linprog

    from realspace.convex.multiclass import _vertices

    rng = np.random.default_rng(seed)
    a, R = rng.uniform(0, 1, pieces), rng.uniform(0, spread, (pieces, m))
    V = _vertices(m)

    def solve(w):
        values = a + lam * R @ w
        i = int(np.argmin(values))
        return float(values[i]), R[i]

    k = len(V)
    # variables (t, mu_1..mu_k): max t <=> min -t
    A = np.hstack([np.ones((pieces, 1)), -lam * R @ V.T])
    res = linprog(
        np.r_[-1.0, np.zeros(k)], A_ub=A, b_ub=a, A_eq=np.r_[0.0, np.ones(k)][None, :],
        b_eq=[1.0], bounds=[(None, None)] + [(0, None)] * k,
    )  # fmt: skip
    assert res.status == 0
    return solve, V, -res.fun


@pytest.mark.parametrize("lam, spread", [(0.1, 2.0), (1.0, 10.0)])
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("rounds", [1, 2, 4, 8])
def test_the_relaxation_is_bracketed_by_its_value_and_its_slack(seed, rounds, lam, spread):
    """Every L(w) is a lower bound on the relaxation, and by concavity L(w) plus lam times
    the best vertex's gain over w bounds it from above: against the exact maximum of a toy
    concave L over the weightings, best <= max <= best + slack, and more rounds never end
    lower."""
    from realspace.convex.multiclass import _relaxation

    solve, V, exact = _toy_relaxation(seed, lam=lam, spread=spread)
    best, slack = _relaxation(solve, 3, lam, rounds)
    assert best <= exact + 1e-12 and exact <= best + slack + 1e-12 and slack >= 0
    if rounds > 1:
        assert best >= _relaxation(solve, 3, lam, rounds // 2)[0]


def test_one_round_of_the_relaxation_is_the_sum_bound_and_its_exact_gap():
    """With one round: L at w = (1 / kappa_m) 1, and the slack lam (max_s <s, R> - <w, R>)
    over the weightings' vertices s, R the charged norms at that w."""
    from realspace.convex.multiclass import _relaxation

    solve, V, exact = _toy_relaxation(3)
    value, R = solve(V[-1])
    best, slack = _relaxation(solve, 3, 0.1, 1)
    assert best == value and slack == pytest.approx(0.1 * ((V @ R).max() - V[-1] @ R), rel=1e-14)
    assert exact > best  # the toy's maximum is not at the start: more rounds have work


def _documented_schedule(solve, V, lam, rounds):
    """The relaxation's search as its docstring states it: from w = (1 / kappa_m) 1, up to
    ``rounds - 1`` steps of a quarter (quartered again after each step that does not
    improve) from the best w so far towards the vertex s maximizing <s, R>, stopping once
    the ceiling is within 1e-9 (1 + |best|) of the best; returns (best, solves made)."""
    w = V[-1]
    best, R = solve(w)
    ceiling, step, calls = best + lam * ((V @ R).max() - w @ R), 0.25, 1
    for _ in range(rounds - 1):
        if ceiling - best <= 1e-9 * (1 + abs(best)):
            break
        trial = w + step * (V[np.argmax(V @ R)] - w)
        value, R_trial = solve(trial)
        calls += 1
        ceiling = min(ceiling, value + lam * ((V @ R_trial).max() - trial @ R_trial))
        if value > best:
            w, best, R = trial, value, R_trial
        else:
            step /= 4
    return best, ceiling - best, calls


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("rounds", [2, 3, 5])
def test_the_relaxation_searches_as_documented(seed, rounds):
    """Against the schedule written out from the docstring: the same best value, slack and
    number of solves (each solve is a convex program: the count is the cost)."""
    from realspace.convex.multiclass import _relaxation

    solve, V, _ = _toy_relaxation(seed, lam=1.0, spread=10.0)
    calls = []

    def counted(w):
        calls.append(w)
        return solve(w)

    best, slack = _relaxation(counted, 3, 1.0, rounds)
    want_best, want_slack, want_calls = _documented_schedule(solve, V, 1.0, rounds)
    assert best == want_best and slack == pytest.approx(max(want_slack, 0.0), abs=1e-15)
    assert len(calls) == want_calls


def test_a_relaxation_already_at_its_maximum_stops_after_one_solve():
    """When the start w = (1 / kappa_m) 1 already maximizes L (every piece's R parallel to
    1, so no vertex gains over w), the slack is 0 and no further program is solved, at
    values of L above 1 too."""
    from realspace.convex.multiclass import _relaxation

    calls = []

    def solve(w):
        calls.append(w)
        return 5.0 + 0.1 * w.sum(), np.ones(3)

    best, slack = _relaxation(solve, 3, 0.1, 6)
    assert (
        len(calls) == 1
        and slack == 0.0
        and best == pytest.approx(5.0 + 0.1 * 3 / np.sqrt(8 / 3) * 1)
    )


def test_merging_classes_keeps_the_realization_and_the_linear_part():
    """One neuron per hyperplane: the merged network of a vector-output network with a
    linear part W computes the same outputs (to rounding), the duplicated hyperplane merged;
    at 1e-15 and 1e-30 the same holds (the drop threshold is relative)."""
    from realspace.convex.multiclass import _merge_classes
    from realspace.core.nets import ShallowNet

    x = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    for scale in (1.0, 1e-15, 1e-30):
        a = np.array([[1.0, 0.5], [2.0, 1.0], [-1.0, 0.3]])
        b = np.array([0.1, 0.2, -0.4])
        c = scale * np.array([[1.0, -1.0, 0.0], [0.5, 0.0, -0.5], [0.0, 2.0, 1.0]])
        W = np.array([[0.0, 0.0], [1.0, -2.0], [0.5, 0.5]])
        net = ShallowNet(a, b, c, np.array([0.0, 0.1, -0.2]), W)
        merged = _merge_classes(net)
        assert merged.width == 2  # (1, 0.5, 0.1) and (2, 1, 0.2) are one hyperplane
        assert merged(x) == pytest.approx(net(x), rel=1e-12, abs=1e-12 * scale)


@pytest.fixture(scope="module")
def small_restricted():
    """9 spiral points, 3 classes, lam 0.05, the restricted program (a free W)."""
    x, y = make_data(_small_spirals(weight_decay=0.05, parametrization="restricted"))
    t0 = time.perf_counter()
    bounds = multiclass_bounds(x, y, 0.05, restricted=True, m=3)
    return x, y, bounds, time.perf_counter() - t0


def test_a_restricted_programs_networks_carry_its_linear_part(small_restricted):
    """With a free W the separable program's network attains its value with W, and the
    merged network computes the same centered outputs: a network rebuilt or pruned without
    W would miss the value by the linear part's share."""
    x, y, bounds, wall = small_restricted
    per_class = bounds.separable_net
    assert per_class.w is not None and np.abs(per_class.w).max() > 1e-3
    assert objective(per_class, x, y, 0.05) == pytest.approx(bounds.separable_value, rel=1e-6)
    assert bounds.upper == pytest.approx(objective(bounds.net, x, y, 0.05), rel=1e-12)
    assert bounds.upper <= bounds.separable_value + 1e-9
    # here the optimum is the affine part alone (width 0), where the two programs meet:
    # the relaxation's solver value lies 3e-8 above the attained one (solver tolerance)
    assert bounds.lower <= bounds.upper + 1e-7
    # what the bounds record about themselves
    assert bounds.restricted is True and bounds.exact is True and bounds.lam == 0.05
    assert bounds.patterns == len(activation_patterns(x)[0])
    assert 0 <= bounds.lower_slack and 0 < bounds.seconds <= wall


def test_without_a_class_count_the_labels_give_it_and_unrestricted_is_the_default(
    small_restricted,
):
    """m defaults to the largest label + 1 and the program to the unrestricted one; a
    class count beyond the labels leaves an empty class, whose logit recedes."""
    x, y, _, _ = small_restricted
    given = multiclass_bounds(x, y, 0.05, restricted=False, m=3, rounds=1)
    default = multiclass_bounds(x, y, 0.05, rounds=1)
    assert default.restricted is False and default.net.outputs == 3
    assert default.lower == pytest.approx(given.lower, rel=1e-9)
    with pytest.raises(ValueError, match="infimum is not attained"):
        multiclass_bounds(x, y, 0.05, m=4, rounds=1)


def test_at_a_weight_decay_no_neuron_pays_for_the_optimum_is_the_label_entropy():
    """With lam = 1e3 every neuron costs more than it gains: the optimum over all widths is
    the best constant logits, log of the class frequencies, at CE = the labels' entropy
    (log 3 for three equal classes): both bounds, and a network of width 0."""
    x = np.linspace(-1, 1, 9)[:, None]
    y = np.array([0, 1, 2, 1, 0, 2, 2, 0, 1.0])
    bounds = multiclass_bounds(x, y, 1e3, m=3)
    assert bounds.width == 0 and bounds.net.width == 0
    assert bounds.upper == pytest.approx(np.log(3), rel=1e-6)
    assert bounds.lower == pytest.approx(np.log(3), rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(x=np.zeros(9)), "need x (n, d), got (9,)"),
        (dict(m=1), "need m >= 2 classes, got 1"),
        (dict(lam=0.0), "the bounds need weight decay lam > 0, got 0.0"),
        (
            dict(y=np.array([0, 0, 0, 1, 1, 1, 2, 2, 2.0]), restricted=True),
            "the unpenalized part (e, and W when restricted) lowers the cross-entropy "
            "without end: the objective's infimum is not attained",
        ),
    ],
)
def test_inputs_the_bounds_cannot_take_are_refused_word_for_word(kwargs, message):
    args = dict(x=np.linspace(-1, 1, 9)[:, None], y=np.array([0, 1, 2, 1, 0, 2, 2, 0, 1.0]))
    args.update(lam=0.05, m=3)
    args.update(kwargs)
    x, y, lam = args.pop("x"), args.pop("y"), args.pop("lam")
    with pytest.raises(ValueError) as err:
        multiclass_bounds(x, y, lam, **args)
    assert str(err.value) == message


@pytest.mark.parametrize(
    "labels",
    [
        [0, 1, 2],  # one short of n = 4
        [0, 1, 2, 1.5],  # not a class index
        [0, 1, 2, -1],
        [0, 1, 2, 3],  # beyond m - 1 = 2
    ],
)
def test_labels_that_are_not_class_indices_are_refused_word_for_word(labels):
    net = ShallowNet(np.ones((1, 1)), np.zeros(1), np.array([[1.0, 0.0, -1.0]]))
    with pytest.raises(ValueError) as err:
        cross_entropy(net, np.linspace(-1, 1, 4)[:, None], np.array(labels, float))
    assert str(err.value) == "labels must be (n,) = (4,) class indices in 0..2"


def test_the_callers_solver_is_the_one_asked():
    """OSQP cannot take the program's cones: cvxpy refuses it by name, so the caller's
    solver reached the program."""
    from cvxpy.error import SolverError

    x = np.linspace(-1, 1, 9)[:, None]
    y = np.array([0, 1, 2, 1, 0, 2, 2, 0, 1.0])
    with pytest.raises(SolverError, match="OSQP"):
        multiclass_bounds(x, y, 0.05, m=3, solver="OSQP", rounds=1)
