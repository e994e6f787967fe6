import itertools

import numpy as np
import pytest
from netgen import random_net, reparametrize

from realspace import (
    ShallowNet,
    bottleneck_assignment,
    canonical_form,
    fibre_distance,
    flip_neurons,
    in_restricted_set,
    param_distance,
    sobolev_distance,
    uniform_distance,
)
from realspace.restricted import live_neurons

# ---------------------------------------------------------------------------
# Realization distances
# ---------------------------------------------------------------------------


def test_exact_1d_distances_agree_with_a_dense_grid():
    rng = np.random.default_rng(11)
    for _ in range(40):
        D = float(rng.choice([1.0, 2.0]))
        f = random_net(rng, int(rng.integers(1, 12)), 1, D, restricted=True)
        g = random_net(rng, int(rng.integers(1, 12)), 1, D)
        x = np.linspace(-D, D, 400_001)[:, None]
        h = f(x) - g(x)
        grad = np.abs(f.gradient(x) - g.gradient(x))[:, 0]
        slope = grad.max()
        dx = x[1, 0] - x[0, 0]
        exact_inf = uniform_distance(f, g, D)
        exact_w = sobolev_distance(f, g, D)
        assert exact_inf.exact and exact_w.exact
        # The grid can only miss a maximum by one Lipschitz step.
        assert np.abs(h).max() <= exact_inf + 1e-12
        assert exact_inf <= np.abs(h).max() + slope * dx
        # Slopes: the grid's gradient values are piece slopes (off kinks), all attained.
        assert exact_w == pytest.approx(max(exact_inf, slope), rel=1e-12)


def exact_2d(f, g, D):
    """(sup|h|, max_j sup|d_j h|) for d = 2 by enumerating the line arrangement.

    |h| is maximal at a vertex (pairwise intersection of kink lines and cube edges);
    every cell touches a vertex, and the cells around a vertex are the angular
    sectors between the lines through it: probe each sector at its bisector.
    """
    A = np.vstack([f.a, g.a, [[1, 0], [1, 0], [0, 1], [0, 1]]])
    B = np.concatenate([f.b, g.b, [-D, D, -D, D]])
    keep = np.linalg.norm(A, axis=1) > 0
    A, B = A[keep], B[keep]
    verts = []
    for i, j in itertools.combinations(range(len(A)), 2):
        M = A[[i, j]]
        if abs(np.linalg.det(M)) < 1e-12:
            continue
        v = np.linalg.solve(M, -B[[i, j]])
        if np.all(np.abs(v) <= D * (1 + 1e-12)):
            verts.append(np.clip(v, -D, D))
    verts = np.array(verts)
    sup = np.abs(f(verts) - g(verts)).max()
    probes = []
    for v in verts:
        through = np.abs(A @ v + B) <= 1e-9 * (1 + np.abs(B))
        ang = np.arctan2(A[through, 0], -A[through, 1])
        ang = np.sort(np.concatenate([ang, ang + np.pi]) % (2 * np.pi))
        mids = ang + np.diff(np.append(ang, ang[0] + 2 * np.pi)) / 2
        p = v + 1e-7 * D * np.column_stack([np.cos(mids), np.sin(mids)])
        probes.append(p[np.all(np.abs(p) <= D, axis=1)])
    probes = np.vstack(probes)
    grad = np.abs(f.gradient(probes) - g.gradient(probes)).max()
    return sup, grad


def test_2d_estimate_is_a_lower_bound_within_one_percent():
    rng = np.random.default_rng(5)
    for _ in range(25):
        D = 1.0
        f = random_net(rng, int(rng.integers(1, 5)), 2, D, restricted=True)
        g = random_net(rng, int(rng.integers(1, 5)), 2, D)
        sup, grad = exact_2d(f, g, D)
        truth_w, truth_inf = max(sup, grad), sup
        # the enumeration is itself checked against a very fine grid
        x = np.stack(np.meshgrid(*[np.linspace(-D, D, 801)] * 2), -1).reshape(-1, 2)
        assert np.abs(f(x) - g(x)).max() <= truth_inf * (1 + 1e-12)
        est_w, est_inf = sobolev_distance(f, g, D), uniform_distance(f, g, D)
        assert est_w.bound == "lower" and est_inf.bound == "lower"
        assert truth_w * 0.99 <= est_w <= truth_w * (1 + 1e-12)
        assert truth_inf * 0.99 <= est_inf <= truth_inf * (1 + 1e-12)


# ---------------------------------------------------------------------------
# Parameter distances
# ---------------------------------------------------------------------------


def brute_param_distance(f, g):
    n = max(f.width, g.width)
    f, g = f.padded(n), g.padded(n)
    th, ph = f.neurons(), g.neurons()
    affine = np.abs(f.affine() - g.affine()).max()
    if n == 0:
        return affine
    best = min(np.abs(th - ph[list(p)]).max() for p in itertools.permutations(range(n)))
    return max(best, affine)


def test_bottleneck_assignment_matches_brute_force():
    rng = np.random.default_rng(0)
    for n in range(1, 8):
        for _ in range(20):
            cost = rng.integers(0, 6, (n, n)).astype(float)  # ties on purpose
            value, perm = bottleneck_assignment(cost)
            brute = min(cost[np.arange(n), list(p)].max() for p in itertools.permutations(range(n)))
            assert value == brute
            assert sorted(perm) == list(range(n)) and cost[np.arange(n), perm].max() == value


def test_param_distance_matches_brute_force_over_permutations():
    rng = np.random.default_rng(1)
    for _ in range(150):
        d = int(rng.integers(1, 4))
        f = random_net(rng, int(rng.integers(0, 8)), d, restricted=bool(rng.integers(2)))
        g = random_net(rng, int(rng.integers(0, 8)), d, restricted=bool(rng.integers(2)))
        assert param_distance(f, g) == pytest.approx(brute_param_distance(f, g), rel=1e-15)


def brute_fibre(f, g, D):
    """min over flips of g's live canonical neurons and over all permutations."""
    gamma = f if in_restricted_set(f, D) else canonical_form(f, D)
    phi = canonical_form(g, D)
    n = max(gamma.width, phi.width)
    gamma, phi = gamma.padded(n), phi.padded(n)
    live = np.flatnonzero(live_neurons(phi))
    best = np.inf
    for bits in itertools.product([0, 1], repeat=live.size):
        mask = np.zeros(n, bool)
        mask[live[np.array(bits, bool)]] = True
        best = min(best, brute_param_distance(gamma, flip_neurons(phi, mask)))
    return best


@pytest.mark.parametrize("f_in_set", [False, True])
def test_fibre_distance_matches_brute_force_small_widths(f_in_set):
    rng = np.random.default_rng(2)
    for _ in range(40):
        d = int(rng.integers(1, 3))
        f = random_net(rng, int(rng.integers(1, 6)), d)
        if f_in_set:  # a point of Omega_N other than a canonical form: some neurons flipped
            f = flip_neurons(canonical_form(f, 1.0), rng.integers(0, 2, f.width).astype(bool))
            assert in_restricted_set(f, 1.0)
        g = random_net(rng, int(rng.integers(1, 6)), d, restricted=True)
        value = fibre_distance(f, g, 1.0)
        assert value.exact
        assert value == pytest.approx(brute_fibre(f, g, 1.0), rel=1e-14)


def test_fibre_upper_bound_never_below_the_minimum():
    rng = np.random.default_rng(3)
    for _ in range(15):
        d = int(rng.integers(1, 3))
        f = random_net(rng, int(rng.integers(6, 9)), d)
        # a nearby g so that the matching is meaningful, plus unrelated ones
        g = ShallowNet(f.a + 0.05 * rng.standard_normal(f.a.shape), f.b, f.c, f.e)
        for other in (g, random_net(rng, int(rng.integers(6, 9)), d)):
            exact = fibre_distance(f, other, 1.0, exact_width=10)
            upper = fibre_distance(f, other, 1.0, exact_width=0, milp_width=0)
            assert exact.exact and upper.bound == "upper"
            # brute force over flips, optimal permutations by param_distance
            gamma, phi = canonical_form(f, 1.0), canonical_form(other, 1.0)
            assert not in_restricted_set(f, 1.0)  # unbalanced: Gamma is its canonical form
            live = np.flatnonzero(live_neurons(phi))
            brute = np.inf
            for bits in itertools.product([0, 1], repeat=live.size):
                mask = np.zeros(phi.width, bool)
                mask[live[np.array(bits, bool)]] = True
                brute = min(brute, param_distance(gamma, flip_neurons(phi, mask)))
            assert exact == pytest.approx(brute, rel=1e-14)
            assert upper >= brute * (1 - 1e-14)


def _nearby_or_unrelated(rng, width, d, near):
    """A point of Omega_N other than a canonical form (some neurons flipped) and a network
    near it (every parameter moved by about 0.05), or an unrelated one."""
    base = canonical_form(random_net(rng, width, d), 1.0)
    f = flip_neurons(base, rng.integers(0, 2, base.width).astype(bool))
    if not near:
        return f, random_net(rng, width, d, restricted=True)
    jiggle = 0.05 * rng.standard_normal((3, base.width, d))
    g = ShallowNet(base.a + jiggle[0], base.b + jiggle[1, :, 0], base.c + jiggle[2, :, 0], base.e)
    return f, g


def test_milp_fibre_distance_equals_the_enumeration_up_to_width_8():
    rng = np.random.default_rng(21)
    for trial in range(60):
        d = int(rng.integers(1, 3))
        f, g = _nearby_or_unrelated(rng, int(rng.integers(1, 9)), d, near=trial % 2 == 0)
        if trial % 3 == 0:  # Gamma off Omega_N: its canonical form is used
            f = random_net(rng, f.width, d)
        milp = fibre_distance(f, g, 1.0, exact_width=0)
        enumerated = fibre_distance(f, g, 1.0, exact_width=8)
        assert milp.exact and enumerated.exact
        assert float(milp) == pytest.approx(float(enumerated), rel=1e-9, abs=1e-15)


def _flip_free_lower_bound(f, g, D):
    """Each neuron of g matched in whichever orientation is closer, affine parts ignored:
    a relaxation of the fibre distance, so a lower bound on it."""
    gamma = f if in_restricted_set(f, D) else canonical_form(f, D)
    phi = canonical_form(g, D)
    n = max(gamma.width, phi.width)
    theta, rows = gamma.padded(n).neurons(), phi.padded(n).neurons()
    flipped = rows * np.append(-np.ones(phi.dim + 1), 1.0)
    cost = np.minimum(
        np.abs(theta[:, None] - rows[None]).max(axis=2),
        np.abs(theta[:, None] - flipped[None]).max(axis=2),
    )
    return bottleneck_assignment(cost)[0]


def test_milp_fibre_distance_above_width_8_lies_between_the_bounds():
    """Above 8 live neurons: exact against the enumeration where that is still affordable
    (width 10), and between the flip-free lower bound and the orientation heuristic's
    upper bound up to width 64."""
    rng = np.random.default_rng(22)
    for width, near in [(10, True), (10, False), (16, True), (24, False), (32, True), (64, True)]:
        f, g = _nearby_or_unrelated(rng, width, 1, near)
        milp = fibre_distance(f, g, 1.0)
        upper = fibre_distance(f, g, 1.0, milp_width=0)
        assert milp.exact and upper.bound == "upper"
        assert _flip_free_lower_bound(f, g, 1.0) * (1 - 1e-12) <= milp <= upper * (1 + 1e-12)
        if width <= 10:
            enumerated = fibre_distance(f, g, 1.0, exact_width=width)
            assert enumerated.exact
            assert float(milp) == pytest.approx(float(enumerated), rel=1e-9)


@pytest.mark.parametrize("exact_width, milp_width", [(0, 0), (0, 64), (8, 64)])
def test_fibre_distance_vanishes_on_one_realization(exact_width, milp_width):
    rng = np.random.default_rng(4)
    for _ in range(60):
        d = int(rng.integers(1, 4))
        f = random_net(rng, int(rng.integers(1, 10)), d, 2.0)
        g = reparametrize(rng, f, 2.0)
        kw = {"exact_width": exact_width, "milp_width": milp_width}
        assert fibre_distance(f, g, 2.0, **kw) <= 1e-9
        assert fibre_distance(g, f, 2.0, **kw) <= 1e-9


def test_flip_keeps_the_realization():
    rng = np.random.default_rng(6)
    f = random_net(rng, 8, 3)
    flipped = flip_neurons(f, rng.integers(0, 2, 8).astype(bool))
    x = rng.uniform(-1, 1, (1000, 3))
    np.testing.assert_allclose(flipped(x), f(x), atol=1e-12)


def test_fibre_distance_from_a_point_of_the_set_to_a_nearby_one():
    """Gamma in Omega_N, g a small perturbation also in Omega_N: g is one of the
    parametrizations of its own realization, so the fibre distance is at most d_P."""
    rng = np.random.default_rng(12)
    for _ in range(20):
        d = int(rng.integers(1, 3))
        base = canonical_form(random_net(rng, 30, d), 1.0)
        f = flip_neurons(base, rng.integers(0, 2, base.width).astype(bool))
        live = live_neurons(f)[:, None]
        a = f.a + np.where(live, 1e-4 * rng.standard_normal(f.a.shape), 0.0)
        norm = np.linalg.norm(a, axis=1)
        g = ShallowNet(a, f.b, np.sign(f.c) * norm, f.e, f.w)  # rebalanced
        assert in_restricted_set(f, 1.0) and in_restricted_set(g, 1.0)
        dist = fibre_distance(f, g, 1.0)
        assert dist.exact and dist <= param_distance(f, g) * (1 + 1e-12)
        heuristic = fibre_distance(f, g, 1.0, milp_width=0)
        assert heuristic.bound == "upper" and dist <= heuristic * (1 + 1e-12)
