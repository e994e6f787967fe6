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
from realspace.core.distances import Distance, sup_norms_1d
from realspace.core.restricted import DEFAULT_TOL, live_neurons

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
        value = param_distance(f, g)
        assert value == pytest.approx(brute_param_distance(f, g), rel=1e-15)
        assert value.exact and value.bound == "exact" and value.method == "bottleneck assignment"


def brute_fibre(f, g, D, tol=DEFAULT_TOL):
    """min over flips of g's live canonical neurons and over all permutations."""
    gamma = f if in_restricted_set(f, D, tol) else canonical_form(f, D, tol)
    phi = canonical_form(g, D, tol)
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


def test_flip_mask_may_be_given_as_zeros_and_ones():
    """``flips`` is a mask: [1, 0, 0, 1, ...] flips neurons 0 and 3, as the boolean mask
    does (not the neurons indexed 1 and 0), and keeps the realization."""
    rng = np.random.default_rng(7)
    f = random_net(rng, 5, 2)
    ints = flip_neurons(f, [1, 0, 0, 1, 0])
    bools = flip_neurons(f, np.array([True, False, False, True, False]))
    for field in ("a", "b", "c", "w"):
        np.testing.assert_array_equal(getattr(ints, field), getattr(bools, field))
    assert ints.e == bools.e
    np.testing.assert_array_equal(ints.a[[0, 3]], -f.a[[0, 3]])
    np.testing.assert_array_equal(ints.a[[1, 2, 4]], f.a[[1, 2, 4]])
    x = rng.uniform(-1, 1, (200, 2))
    np.testing.assert_allclose(ints(x), f(x), atol=1e-12)


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


# ---------------------------------------------------------------------------
# d >= 2 estimates against closed forms
# ---------------------------------------------------------------------------


def _net(neurons, e=0.0, w=None, d=2):
    """A scalar network from (a, b, c) triples (none: width 0) and its affine part."""
    a = np.array([n[0] for n in neurons], dtype=float).reshape(-1, d)
    b = np.array([n[1] for n in neurons], dtype=float)
    c = np.array([n[2] for n in neurons], dtype=float)
    return ShallowNet(a, b, c, e, None if w is None else np.asarray(w, dtype=float))


def _abs_neurons(a, b, c):
    """c |<a, x> + b| = c rho(<a, x> + b) + c rho(-<a, x> - b): two neurons."""
    a = np.asarray(a, dtype=float)
    return [(a, b, c), (-a, -b, c)]


def _vertex_pair():
    """f = 1 - |u1| / 2 and g = |u2| / 4 + 0.05 sum_k rho(t_k - x1) of the test below."""
    f = _net(_abs_neurons([0.5, 0.5], -0.05, -1.0), e=1.0)
    ridges = [([-1.0, 0.0], t, 0.05) for t in np.arange(-0.45, 0.21, 0.05)]
    return f, _net(_abs_neurons([0.5, -0.5], -0.25, 0.5) + ridges)


def test_estimate_reaches_an_interior_vertex_exactly():
    """f - g = 1 - |u1| / 2 - |u2| / 4, u1 = x1 + x2 - 0.1, u2 = x1 - x2 - 0.5 (written
    with kink normals of norm < 1), minus 0.05 rho(t_k - x1) for 14 kinks t_k left of
    the maximum: concave, its maximum 1 at the single vertex u1 = u2 = 0, x = (0.3, -0.2),
    a point no sample hits (|f - g| at every corner is below 0.85). The cell LP from the
    best samples lands on it to rounding; the 14 kinks make the cells far from it many
    steps away. Both orders of f and g (the maximum of |f - g| where f - g is positive,
    then negative). The largest partial derivative, |d_1 (f - g)| = 1/2 + 1/4 + 14 * 0.05
    = 1.45, holds left of every t_k where u1 < 0 and u2 < 0."""
    D = 0.5
    f, g = _vertex_pair()
    assert g.width == 2 + 14
    x = np.array([[0.3, -0.2]])
    assert (f(x) - g(x))[0] == pytest.approx(1.0, abs=1e-15)
    corners = np.array(list(itertools.product([-D, D], repeat=2)))
    assert np.abs(f(corners) - g(corners)).max() < 0.85
    for p, q in ((f, g), (g, f)):
        d_inf, d_w = uniform_distance(p, q, D), sobolev_distance(p, q, D)
        assert d_inf == pytest.approx(1.0, rel=1e-12)
        assert d_w == pytest.approx(1.45, rel=1e-12)
        assert d_inf.bound == d_w.bound == "lower"
        method = "20000 jittered samples + kink-plane probes + cell LPs"
        assert d_inf.method == d_w.method == method


def test_estimate_walks_into_cells_no_sample_reaches():
    """f - g = s (1 - |x1 - v1| / 2 - |x2 - v2| / 4 - (|x1 - v1 + h| + |x1 - v1 - h|
    + |x2 - v2 + h| + |x2 - v2 - h|) / 10), h = 2e-5 D: concave, its maximum s (1 - 0.4 h)
    at v, inside a 2h x 2h box of kinks that no sample enters. A sample's cell LP stops on
    the box; only the walk (probes 1e-6 D across the box's kink, a new cell LP) reaches v.
    Scales s = 1 and s = 1e-9 (the walk's stopping rule is relative); D = 0.05."""
    D = 0.05
    v, h = np.array([0.6, -0.4]) * D, 2e-5 * D
    for s in (1.0, 1e-9):
        neurons = _abs_neurons([1, 0], -v[0], -s / 2) + _abs_neurons([0, 1], -v[1], -s / 4)
        for axis in (0, 1):
            for off in (h, -h):
                neurons += _abs_neurons(np.eye(2)[axis], off - v[axis], -s / 10)
        diff = _net(neurons, e=s)
        zero = _net([])
        truth = s * (1 - 0.4 * h)
        assert diff(v[None])[0] == pytest.approx(truth, rel=1e-14, abs=0)
        assert uniform_distance(diff, zero, D) == pytest.approx(truth, rel=1e-12, abs=0)
        assert uniform_distance(zero, diff, D) == pytest.approx(truth, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    "d, D, n_samples, refine",
    [
        (2, 0.5, 20000, 0),
        (3, 2.0, 20000, 0),
        (2, 0.5, 3, 0),
        (12, 0.5, 20000, 0),
        (13, 0.5, 20000, 8),
    ],
)
def test_affine_difference_matches_its_closed_form(d, D, n_samples, refine):
    """f - g = e + <w, x> (no kink): sup_Q |f - g| = |e| + D |w|_1 at a cube corner, and
    every partial derivative is constant, max_j |w_j|. The corners are among the samples
    up to d = 12, so even without cell LPs (refine=0) the estimate is exact; at d = 13
    there are no corner samples and the cell LP from the best sample reaches the corner.
    n_samples=3 < 2^d draws uniform points instead of a grid; no sample may leave Q."""
    rng = np.random.default_rng(d)
    for _ in range(3):
        w, e = rng.standard_normal(d) * 0.3, float(rng.standard_normal())
        f = _net([], e=e, w=w, d=d)
        g = _net([], e=-0.25, w=-w / 3, d=d)
        sup = abs(e + 0.25) + D * np.abs(w * 4 / 3).sum()
        slope = np.abs(w * 4 / 3).max()
        kw = {"n_samples": n_samples, "refine": refine}
        assert uniform_distance(f, g, D, **kw) == pytest.approx(sup, rel=1e-12)
        assert sobolev_distance(f, g, D, **kw) == pytest.approx(max(sup, slope), rel=1e-12)


def test_without_samples_corners_and_cell_lps_still_give_the_affine_norms():
    """n_samples=0: no grid and no kink, so the values come from the corners and the
    gradients from the probes around each cell LP's maximum: |e| + D |w|_1 and
    max_j |w_j| (here 0.1 + 0.5 * 0.3 = 0.25 and 0.2)."""
    f = _net([], e=0.1, w=[0.2, -0.1])
    zero = _net([])
    assert uniform_distance(f, zero, 0.5, n_samples=0) == pytest.approx(0.25, rel=1e-12)
    assert sobolev_distance(f, zero, 0.5, n_samples=0) == pytest.approx(0.25, rel=1e-12)
    g = _net([], e=0.01, w=[0.2, -0.1])  # sup 0.16 < max slope 0.2
    assert sobolev_distance(g, zero, 0.5, n_samples=0) == pytest.approx(0.2, rel=1e-12)
    # 3 < 2^d samples: uniform ones, inside Q (the value grows past the corner (D, D))
    h = _net([], e=0.1, w=[0.2, 0.1])
    for seed in range(4):
        assert uniform_distance(h, zero, 0.5, n_samples=3, refine=0, seed=seed) == pytest.approx(
            0.25, rel=1e-12
        )


def test_samples_on_a_kink_line_hit_a_maximum_along_it():
    """f - g = 1 - |x1 - 0.3| / 2 - 0.1 rho(x2) - 0.1 rho(-x2 - 0.25) (kink normals of norm
    2 and 1): its maximum 1 is attained on the whole segment x1 = 0.3, -0.25 <= x2 <= 0,
    and nowhere off the kink x1 = 0.3. Without cell LPs (refine=0) only the samples drawn
    on that kink reach it; they must be spread along it, not gathered at one point."""
    D = 0.5
    neurons = _abs_neurons([2.0, 0.0], -0.6, -0.25)
    neurons += [([0.0, 1.0], 0.0, -0.1), ([0.0, -1.0], -0.25, -0.1)]
    f, zero = _net(neurons, e=1.0), _net([])
    assert f(np.array([[0.3, -0.1]]))[0] == pytest.approx(1.0, abs=1e-15)
    assert uniform_distance(f, zero, D, refine=0) == pytest.approx(1.0, rel=1e-12)
    assert uniform_distance(zero, f, D, refine=0) == pytest.approx(1.0, rel=1e-12)


def _strip(C, t, delta, plus_sides):
    """A difference whose gradient is C u (u = (0.6, 0.8)) on the strip t < <u, x> < t + delta
    and 0 elsewhere, from two kinks with normals of norm 10 and a linear term. plus_sides:
    the strip lies on the positive side of both kinks (else on the negative side of both)."""
    u = np.array([0.6, 0.8])
    if plus_sides:  # C/10 rho(10 (s - t)) - C/10 rho(-10 (s - t - delta)) - C s
        neurons = [(10 * u, -10 * t, C / 10), (-10 * u, 10 * (t + delta), -C / 10)]
        return _net(neurons, w=-C * u)
    # C/10 rho(-10 (s - t)) - C/10 rho(10 (s - t - delta)) + C s
    neurons = [(-10 * u, 10 * t, C / 10), (10 * u, -10 * (t + delta), -C / 10)]
    return _net(neurons, w=C * u)


@pytest.mark.parametrize("plus_sides", [True, False])
def test_samples_just_off_each_kink_find_a_thin_strip(plus_sides):
    """The gradient of f - g is C u on a strip of width 1.5e-7 D between two parallel kinks
    and 0 elsewhere; |f - g| <= C (t + delta). So d_W = max(C (t + delta), 0.8 C) = 0.8 C,
    the largest partial derivative on the strip, which no grid point reaches: only the
    samples just off the kinks, on the strip's side of each (both sides are probed), see
    it. refine=0: the value is the samples' alone."""
    D, C, t = 0.25, 100.0, 0.05
    delta = 1.5e-7 * D
    f, zero = _strip(C, t, delta, plus_sides), _net([])
    x = np.array([[t + delta / 2, 0.0]]) @ np.array([[0.6, 0.8], [-0.8, 0.6]])  # on the strip
    np.testing.assert_allclose(f.gradient(x)[0], [0.6 * C, 0.8 * C], rtol=1e-12)
    assert sobolev_distance(f, zero, D, refine=0) == pytest.approx(0.8 * C, rel=1e-12)
    assert uniform_distance(f, zero, D, refine=0) <= C * (t + delta) * (1 + 1e-12)


@pytest.mark.parametrize("sigma, o", [(1, 1), (1, -1), (-1, 1), (-1, -1)])
def test_kinks_on_the_faces_of_the_cube_add_no_value_from_outside(sigma, o):
    """A kink on the face x1 = sigma D (normal o e1), active inside Q when o = -sigma:
    f - g = sigma x1 + rho(o (x1 - sigma D)) / 2 is affine on Q with sup |f - g| = D, at
    x1 = sigma D, and grows past that face. Samples pushed off that kink must stay in Q."""
    D = 0.5
    f = _net([([o, 0.0], -o * sigma * D, 0.5)], w=[sigma, 0.0])
    zero = _net([])
    assert uniform_distance(f, zero, D) == pytest.approx(D, rel=1e-12)
    assert uniform_distance(zero, f, D, refine=0) == pytest.approx(D, rel=1e-12)


@pytest.mark.parametrize("sigma, o", [(1, 1), (1, -1), (-1, 1), (-1, -1)])
def test_gradients_only_count_slopes_inside_the_cube(sigma, o):
    """The networks of the face test above: on Q, f - g = sigma x1 (kink inactive on Q,
    o = sigma) or sigma x1 / 2 + D / 2 (active, o = -sigma), so d_W = max(D, 1) = 1 or
    max(D, 1/2) = 1/2 with D = 1/2. Outside Q the slope is 3/2 or 1; samples clipped onto
    the face lie on the kink, where the gradient takes the outside slope: not part of the
    W^{1,inf}(Q) norm, so it must not enter a lower bound."""
    D = 0.5
    f = _net([([o, 0.0], -o * sigma * D, 0.5)], w=[sigma, 0.0])
    zero = _net([])
    truth = 0.5 if o == -sigma else 1.0
    for refine in (0, 8):
        assert sobolev_distance(f, zero, D, refine=refine) == pytest.approx(truth, rel=1e-12)
        assert sobolev_distance(zero, f, D, refine=refine) == pytest.approx(truth, rel=1e-12)


def test_same_seed_same_estimate():
    """The estimate is a function of its seed: the same seed gives the same value, where
    the samples alone (refine=0) leave it below the truth, and it is a lower bound on the
    exact value from the line arrangement."""
    rng = np.random.default_rng(9)
    f = random_net(rng, 4, 2, 1.5, restricted=True)
    g = random_net(rng, 3, 2, 1.5)
    sup, grad = exact_2d(f, g, 1.5)
    kw = {"n_samples": 50, "refine": 0, "seed": 4}
    first, again = uniform_distance(f, g, 1.5, **kw), uniform_distance(f, g, 1.5, **kw)
    assert float(first) == float(again) and float(first) < sup
    w_first, w_again = sobolev_distance(f, g, 1.5, **kw), sobolev_distance(f, g, 1.5, **kw)
    assert float(w_first) == float(w_again) <= max(sup, grad) * (1 + 1e-12)


def test_a_neuron_without_kink_is_not_a_kink_plane():
    """A neuron with a = 0 is the constant c rho(b): f - g = 0.3 rho(0.5) + <w, x>, no
    kink, so the value |0.15| + D |w|_1 at a corner and max |w_j| (no warning either)."""
    f = _net([([0.0, 0.0], 0.5, 0.3), ([0.0, 0.0], -0.5, 2.0)], w=[0.5, -1.0])
    zero = _net([])
    assert uniform_distance(f, zero, 2.0) == pytest.approx(0.15 + 3.0, rel=1e-12)
    assert sobolev_distance(f, zero, 0.1) == pytest.approx(1.0, rel=1e-12)


def _oriented_alike_by_brute_force(gamma, phi):
    """The orientation heuristic of the fibre distance, spelled out: each neuron of phi is
    assigned to a neuron of gamma by a bottleneck assignment (all permutations tried) of
    the costs |theta_i - phi_j|_inf, phi_j taken flipped where the (a, b) of the two point
    in opposite directions (<., .> < 0); the assigned neurons of phi pointing opposite
    their partner are flipped. Returns that flip mask, or None when optimal assignments
    disagree on it."""
    n = max(gamma.width, phi.width)
    gamma, phi = gamma.padded(n), phi.padded(n)
    theta, rows = gamma.neurons(), phi.neurons()
    flipped = rows * np.append(-np.ones(phi.dim + 1), np.ones(rows.shape[1] - phi.dim - 1))
    ab_g, ab_p = np.column_stack([gamma.a, gamma.b]), np.column_stack([phi.a, phi.b])
    opposite = ab_g @ ab_p.T < 0
    cost = np.where(
        opposite,
        np.abs(theta[:, None] - flipped[None]).max(axis=2),
        np.abs(theta[:, None] - rows[None]).max(axis=2),
    )
    perms = list(itertools.permutations(range(n)))
    values = [cost[np.arange(n), list(p)].max() for p in perms]
    masks = set()
    for p, value in zip(perms, values, strict=True):
        if value == min(values):
            mask = np.zeros(n, bool)
            mask[[p[i] for i in range(n) if opposite[i, p[i]]]] = True
            masks.add(tuple(mask))
    return np.array(masks.pop()) if len(masks) == 1 else None


def test_fibre_upper_bound_is_the_oriented_alike_flip_set():
    """Above ``milp_width`` the fibre distance is d_P(Gamma, flip_S(canonical_form(g))) for
    the flip set S of the orientation rule (partners found by bottleneck assignment),
    labelled an upper bound; checked against that rule by brute force over permutations,
    d_P by brute force too. Gamma and g near each other up to flips (so the partners are
    unambiguous), of equal widths or g wider (its extra neurons are partnered with
    Gamma's zero padding, orthogonal to everything: never flipped)."""
    rng = np.random.default_rng(31)
    checked = 0
    for trial in range(24):
        d = int(rng.integers(1, 3))
        width = int(rng.integers(2, 5))
        f, g = _nearby_or_unrelated(rng, width, d, near=True)
        if trial % 2:  # g one neuron wider: a far neuron with a large c (a, b)
            extra = rng.standard_normal(d)
            extra *= 2.0 / np.linalg.norm(extra)
            g = ShallowNet(
                np.vstack([g.a, extra]),
                np.append(g.b, 0.3),
                np.append(g.c, 2.0 * rng.choice([-1.0, 1.0])),
                g.e,
                g.w,
            )
        assert in_restricted_set(f, 1.0)
        phi = canonical_form(g, 1.0)
        mask = _oriented_alike_by_brute_force(f, phi)
        if mask is None:
            continue
        n = max(f.width, phi.width)
        expected = brute_param_distance(f.padded(n), flip_neurons(phi.padded(n), mask))
        value = fibre_distance(f, g, 1.0, exact_width=0, milp_width=0)
        assert value.bound == "upper" and not value.exact
        assert value.method == "partners oriented alike + bottleneck assignment"
        assert value == pytest.approx(expected, rel=1e-12)
        checked += 1
    assert checked >= 16


def test_fibre_distance_applies_its_tolerance_throughout():
    """``tol`` decides whether f is in Omega_N (R1: f's |c_i| off ||a_i|| by 1e-6 is
    balanced at tol 1e-4, not at the default) and which nearly collinear neurons (1e-6 rad
    apart) the canonical forms of f and g merge (g near f). The value is the brute-force fibre
    distance with the same tol, and differs from the one at the default tol."""
    rng = np.random.default_rng(41)
    rot = np.array([[np.cos(1e-6), -np.sin(1e-6)], [np.sin(1e-6), np.cos(1e-6)]])

    def with_near_copy(net, i):
        a = np.vstack([net.a, 1.5 * net.a[i] @ rot.T])
        return ShallowNet(a, np.append(net.b, 1.5 * net.b[i]), np.append(net.c, 0.7), net.e, net.w)

    tol = 1e-4
    for trial in range(6):
        base = canonical_form(random_net(rng, 3, 2), 1.0)
        if trial % 2:  # f in Omega_N at tol only
            f = ShallowNet(base.a, base.b, base.c * (1 + 1e-5), base.e, base.w)
            assert in_restricted_set(f, 1.0, tol) and not in_restricted_set(f, 1.0)
        else:  # f off Omega_N: its canonical form merges the near copy at tol only
            f = with_near_copy(base, 1)
            assert not in_restricted_set(f, 1.0, tol)
        near = base.a + 1e-3 * rng.standard_normal(base.a.shape)
        g = with_near_copy(ShallowNet(near, base.b, base.c, base.e, base.w), 0)
        value = fibre_distance(f, g, 1.0, tol=tol)
        assert value.exact
        assert value == pytest.approx(brute_fibre(f, g, 1.0, tol), rel=1e-12)
        assert abs(value - brute_fibre(f, g, 1.0)) > 1e-9


def test_fibre_distance_method_and_label_at_the_width_limits():
    """With k live canonical neurons: exact_width = k enumerates all 2^k flip sets (so
    labelled); exact_width < k = milp_width solves the program, exact; milp_width < k
    gives the orientation heuristic's upper bound. Against the brute force."""
    rng = np.random.default_rng(43)
    heuristic = "partners oriented alike + bottleneck assignment"
    for trial in range(6):
        f, g = _nearby_or_unrelated(rng, int(rng.integers(3, 6)), 2, near=trial % 2 == 0)
        k = int(live_neurons(canonical_form(g, 1.0)).sum())
        brute = brute_fibre(f, g, 1.0)
        enumerated = fibre_distance(f, g, 1.0, exact_width=k)
        assert enumerated.exact and enumerated.method == f"all {2**k} flip sets"
        milp = fibre_distance(f, g, 1.0, exact_width=k - 1, milp_width=k)
        assert milp.exact and milp.method in ("MILP (HiGHS)", heuristic)
        upper = fibre_distance(f, g, 1.0, exact_width=k - 1, milp_width=k - 1)
        assert upper.bound == "upper" and upper.method == heuristic
        assert enumerated == pytest.approx(brute, rel=1e-12)
        assert milp == pytest.approx(brute, rel=1e-9)
        assert upper >= brute * (1 - 1e-12)


def test_estimates_use_the_documented_defaults():
    """n_samples=20000, refine=8, seed=0 (docs/science.md): the defaults give what those
    values passed explicitly give, where the value depends on them (refine=0: the
    samples' maximum; the seed draws them) and in the method string."""
    f, g = _vertex_pair()  # sup |f - g| at a vertex that no sample hits
    for distance in (uniform_distance, sobolev_distance):
        default = distance(f, g, 0.5, refine=0)
        explicit = distance(f, g, 0.5, refine=0, n_samples=20000, seed=0)
        assert float(default) == float(explicit) and default.method == explicit.method
        # sup |f - g + 2| = 3 at the vertex, above the slope part 1.45: seed-dependent
        lifted = ShallowNet(f.a, f.b, f.c, f.e + 2.0)
        default = distance(lifted, g, 0.5, refine=0)
        assert float(default) == float(distance(lifted, g, 0.5, refine=0, seed=0))
        assert float(distance(lifted, g, 0.5, refine=0, seed=1)) != float(default)


def test_1d_kinks_closer_than_the_merge_tolerance_are_one_breakpoint():
    """A kink at 300 and its copy 1e-10 away on [-1000, 1000] (relative 1e-13 < 1e-12:
    one kink computed two ways): f - g = rho(x - 300) - rho(x - 300 - eps) is 0, then eps;
    the piece of width eps between the copies has no measure and gives no slope."""
    D, t = 1000.0, 300.0
    f = ShallowNet([[1.0]], [-t], [1.0])
    g = ShallowNet([[1.0]], [-(t + 1e-10)], [1.0])
    eps = (t + 1e-10) - t
    value, slope = sup_norms_1d(f, g, D)
    assert value == pytest.approx(eps, rel=1e-3, abs=0) and slope == 0.0
    for distance in (sobolev_distance, uniform_distance):
        exact = distance(f, g, D)
        assert exact == pytest.approx(eps, rel=1e-3, abs=0)
        assert exact.exact and exact.method == "kinks and pieces"


def test_sup_norms_1d_refuses_other_dimensions():
    """The exact 1-D norms say so when given d = 2."""
    f = random_net(np.random.default_rng(0), 2, 2)
    with pytest.raises(ValueError, match=r"^sup_norms_1d needs input dimension 1$"):
        sup_norms_1d(f, f, 1.0)


def test_distance_repr_shows_value_and_status():
    """An exact distance prints as its float; a bound adds its kind and method."""
    assert repr(Distance(0.25)) == "0.25"
    assert repr(Distance(0.5, "lower", "grid")) == "0.5 (lower bound: grid)"


def test_fibre_distance_above_64_live_neurons_is_the_heuristic_upper_bound():
    """The default milp_width is 64: with 65 live canonical neurons no program is solved,
    and the orientation heuristic's value comes back labelled an upper bound, above the
    flip-free lower bound."""
    rng = np.random.default_rng(47)
    for width in range(65, 80):
        f, g = _nearby_or_unrelated(rng, width, 1, near=True)
        if int(live_neurons(canonical_form(g, 1.0)).sum()) == 65:
            break
    else:
        pytest.fail("no network with 65 live neurons")
    value = fibre_distance(f, g, 1.0)
    assert value.bound == "upper"
    assert value.method == "partners oriented alike + bottleneck assignment"
    assert value >= _flip_free_lower_bound(f, g, 1.0) * (1 - 1e-12)


def test_distances_refuse_networks_of_different_shapes():
    """Distances compare networks on one cube with one output count; they say which
    differs."""
    rng = np.random.default_rng(5)
    one, two = random_net(rng, 2, 1), random_net(rng, 2, 2)
    with pytest.raises(ValueError, match=r"^networks have different input dimensions: 1 and 2$"):
        param_distance(one, two)
    vector = ShallowNet(two.a, two.b, rng.standard_normal((2, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"^networks have different output counts: 1 and 3$"):
        uniform_distance(two, vector, 1.0)
