"""Vector outputs (m >= 2): the multiclass loss and scores against direct float64 formulas,
the canonical form of vector networks against their realizations and Omega_N, and the
distances against brute force (dense grids per component, all permutations).
The math: docs/science.md, "Vector outputs"."""

import itertools

import numpy as np
import pytest

from realspace.core.canonical import canonical_form
from realspace.core.distances import (
    fibre_distance,
    flip_neurons,
    param_distance,
    sobolev_distance,
    uniform_distance,
)
from realspace.core.nets import ShallowNet
from realspace.core.restricted import in_restricted_set, output_norms, restricted_set_margins
from realspace.core.targets import (
    classification_scores,
    cross_entropy_loss,
    logistic_loss,
    path_norm,
)


def vector_net(rng, width, d, m, D=1.0, restricted=False):
    """A generic vector network whose kinks mostly meet the cube."""
    a = rng.standard_normal((width, d))
    p = rng.uniform(-D, D, (width, d))
    b = -(a * p).sum(axis=1) + 0.1 * rng.standard_normal(width)
    c = rng.standard_normal((width, m))
    w = rng.standard_normal((m, d)) if restricted else None
    return ShallowNet(a, b, c, rng.standard_normal(m), w)


def outputs_by_hand(net, x):
    """f(x) (n, m) summed neuron by neuron, independent of ShallowNet.__call__."""
    f = np.tile(net.e, (len(x), 1)) + x @ net.linear.T
    for i in range(net.width):
        f += np.maximum(x @ net.a[i] + net.b[i], 0.0)[:, None] * net.c[i][None, :]
    return f


# ---------------------------------------------------------------------------
# Loss and scores
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("restricted", [False, True])
def test_cross_entropy_equals_minus_log_softmax(restricted):
    rng = np.random.default_rng(1)
    for m in (2, 3, 5):
        net = vector_net(rng, 6, 2, m, restricted=restricted)
        x = rng.uniform(-1, 1, (50, 2))
        y = rng.integers(0, m, 50)
        f = outputs_by_hand(net, x)
        direct = -np.log(np.exp(f[np.arange(50), y]) / np.exp(f).sum(axis=1)).mean()
        assert cross_entropy_loss(net, x, y) == pytest.approx(direct, rel=1e-13)
        # class indices as floats (as the data of a run hold them) give the same loss
        assert cross_entropy_loss(net, x, y.astype(float)) == cross_entropy_loss(net, x, y)


def test_cross_entropy_of_zero_and_g_is_the_logistic_loss_of_g():
    """softmax CE with logits (0, g) and label 1 is log(1 + exp(-g)); label 0 is
    log(1 + exp(g)): the logistic loss with labels +1 and -1."""
    rng = np.random.default_rng(2)
    for scale in (1.0, 50.0, 800.0):  # large logits: no overflow, small losses kept
        g = ShallowNet(
            rng.standard_normal((4, 2)),
            rng.standard_normal(4),
            scale * rng.standard_normal(4),
            scale * 0.3,
            scale * rng.standard_normal(2),
        )
        pair = ShallowNet(
            g.a,
            g.b,
            np.column_stack([np.zeros(4), g.c]),
            [0.0, g.e],
            np.vstack([np.zeros(2), g.w]),
        )
        x = rng.uniform(-1, 1, (40, 2))
        label = rng.integers(0, 2, 40)
        sign = np.where(label == 1, 1.0, -1.0)
        assert cross_entropy_loss(pair, x, label) == pytest.approx(
            logistic_loss(g, x, sign), rel=1e-12
        )


def test_cross_entropy_keeps_a_loss_below_rounding():
    net = ShallowNet(np.zeros((1, 1)), [0.0], [[0.0, 0.0]], [0.0, 40.0])
    # -log softmax = log(1 + exp(-40)) = 4.248e-18, which 1 + tiny would round away
    assert cross_entropy_loss(net, np.zeros((1, 1)), [1]) == pytest.approx(np.exp(-40.0), rel=1e-12)


def test_labels_outside_the_classes_are_refused():
    net = vector_net(np.random.default_rng(0), 3, 1, 3)
    x = np.zeros((2, 1))
    for bad in ([0, 3], [-1, 0], [0.5, 1], [0, 1, 2]):
        with pytest.raises(ValueError):
            cross_entropy_loss(net, x, bad)
        with pytest.raises(ValueError):
            classification_scores(net, x, bad)


@pytest.mark.parametrize("restricted", [False, True])
def test_multiclass_scores_against_direct_sums(restricted):
    rng = np.random.default_rng(3)
    N, d, m, n = 5, 2, 4, 60
    for _ in range(5):
        net = vector_net(rng, N, d, m, restricted=restricted)
        x = rng.uniform(-1, 1, (n, d))
        f = outputs_by_hand(net, x)
        y = np.where(rng.uniform(size=n) < 0.7, f.argmax(axis=1), rng.integers(0, m, n))
        margins = [f[k, y[k]] - max(f[k, j] for j in range(m) if j != y[k]) for k in range(n)]
        norm = sum(
            np.linalg.norm(net.c[i]) * np.sqrt(net.a[i] @ net.a[i] + net.b[i] ** 2)
            for i in range(N)
        )
        norm += np.sqrt(np.sum(net.linear**2) + np.sum(net.e**2))
        assert path_norm(net) == pytest.approx(norm, rel=1e-13)
        acc, margin = classification_scores(net, x, y)
        assert acc == np.mean([f[k].argmax() == y[k] for k in range(n)])
        assert margin == pytest.approx(min(margins) / norm, rel=1e-12)
        # the bound |f_j - f_k| <= sqrt(2) path_norm ||(x, 1)||, pair by pair
        u = np.sqrt((x**2).sum(axis=1) + 1.0)
        spread = (f[:, :, None] - f[:, None, :]).max(axis=(1, 2))
        assert np.all(spread <= np.sqrt(2) * norm * u * (1 + 1e-12))
        # scale-free: the output times 3, one neuron rescaled by 5 and another by 1/7
        a2, b2, c2 = net.a.copy(), net.b.copy(), 3 * net.c
        a2[0], b2[0], c2[0] = 5 * a2[0], 5 * b2[0], c2[0] / 5
        a2[1], b2[1], c2[1] = a2[1] / 7, b2[1] / 7, c2[1] * 7
        w2 = 3 * net.w if restricted else None
        scaled = ShallowNet(a2, b2, c2, 3 * net.e, w2)
        acc2, margin2 = classification_scores(scaled, x, y)
        assert acc2 == acc and margin2 == pytest.approx(margin, rel=1e-12)
        assert path_norm(scaled) == pytest.approx(3 * norm, rel=1e-13)


def test_ties_count_as_errors():
    net = ShallowNet(np.ones((1, 1)), [0.0], [[1.0, 1.0, 0.0]], [0.0, 0.0, -1.0])
    x = np.array([[0.5], [-0.5]])  # f = (0.5, 0.5, -1) and (0, 0, -1): both tied
    acc, margin = classification_scores(net, x, [0, 1])
    assert acc == 0.0 and margin == 0.0


# ---------------------------------------------------------------------------
# Omega_N and the canonical form
# ---------------------------------------------------------------------------
def plant_vector(rng, net, D=1.0):
    """Append degenerate neurons to a vector network and return (planted, its affine
    correction): a split copy of an existing neuron (positively collinear, the output
    shared), dead, affine-on-Q, constant and zero neurons, and an opposite neuron (-a, -b).
    The planted network's realization is computed by hand in the tests, not assumed."""
    a, b, c = [net.a], [net.b], [net.c.copy()]
    d, m = net.dim, net.outputs
    for kind in ("split", "dead", "affine", "const", "zero", "opp", "opp"):
        ai = rng.standard_normal(d)
        reach = D * np.abs(ai).sum()
        ci = rng.standard_normal(m)
        i = rng.integers(net.width)
        if kind == "split":  # c rho(z) = lam c rho(z) + (1 - lam) c / s rho(s z)
            lam, s = rng.uniform(0.2, 0.8), rng.uniform(0.3, 3.0)
            ai, bi, ci = s * net.a[i], s * net.b[i], (1 - lam) * net.c[i] / s
            c[0][i] = lam * net.c[i]
        elif kind == "dead":
            bi = -reach - abs(rng.standard_normal())
        elif kind == "affine":
            bi = reach + abs(rng.standard_normal())
        elif kind == "const":
            ai, bi = np.zeros(d), rng.standard_normal()
        elif kind == "zero":
            ai, bi, ci = np.zeros(d), 0.0, np.zeros(m)
        else:
            s = rng.uniform(0.3, 3.0)
            ai, bi = -s * net.a[i], -s * net.b[i]
        a.append(ai[None])
        b.append([bi])
        c.append(ci[None])
    return ShallowNet(np.vstack(a), np.concatenate(b), np.vstack(c), net.e, net.w)


def dense_points(rng, net, D):
    x = rng.uniform(-D, D, (3000, net.dim))
    if net.dim == 1:  # the kinks themselves and the ends too
        a = net.a[:, 0]
        t = -net.b[a != 0] / a[a != 0]
        x = np.vstack([x, np.linspace(-D, D, 2001)[:, None], t[np.abs(t) <= D][:, None]])
    return x


def random_vector_nets(seed, count, m=3):
    rng = np.random.default_rng(seed)
    for k in range(count):
        d = 1 + k % 2
        D = float(rng.choice([0.5, 1.0, 2.0]))
        net = vector_net(rng, int(rng.integers(2, 12)), d, m, D, restricted=bool(k % 3))
        yield rng, D, (plant_vector(rng, net, D) if k % 4 else net)


def test_vector_canonical_form_keeps_the_realization_and_lies_in_omega():
    worst = 0.0
    for rng, D, net in random_vector_nets(7, 200):
        canon = canonical_form(net, D)
        assert canon.outputs == 3 and canon.restricted and canon.width == net.width
        x = dense_points(rng, net, D)
        fx = outputs_by_hand(net, x)
        err = np.abs(outputs_by_hand(canon, x) - fx).max() / max(np.abs(fx).max(), 1e-3)
        worst = max(worst, err)
        assert restricted_set_margins(canon, D)["member"]
        live = np.any(canon.neurons() != 0, axis=1)
        np.testing.assert_allclose(
            np.linalg.norm(canon.c[live], axis=1),
            np.linalg.norm(canon.a[live], axis=1),
            rtol=1e-12,
        )
    assert worst < 1e-12


def assert_same_net(f, g, atol=1e-12):
    for name in ("a", "b", "c", "e", "linear"):
        np.testing.assert_allclose(getattr(f, name), getattr(g, name), rtol=0, atol=atol)


def test_vector_canonical_form_is_idempotent_and_invariant():
    for rng, D, net in random_vector_nets(8, 60):
        canon = canonical_form(net, D)
        scale = max(1.0, np.abs(canon.neurons()).max(), np.abs(canon.affine()).max())
        assert_same_net(canonical_form(canon, D), canon, 1e-12 * scale)
        perm = rng.permutation(net.width)
        s = rng.uniform(0.2, 5.0, net.width)
        moved = ShallowNet(
            s[perm, None] * net.a[perm],
            s[perm] * net.b[perm],
            net.c[perm] / s[perm, None],
            net.e,
            net.w,
        )
        assert_same_net(canonical_form(moved, D), canon, 1e-11 * scale)


def test_a_split_pair_merges_into_one_neuron():
    rng = np.random.default_rng(9)
    for d in (1, 2):
        net = canonical_form(vector_net(rng, 4, d, 3), 1.0)
        live = int(restricted_set_margins(net, 1.0)["n_live"])
        i, lam, s = 0, 0.3, 2.5
        split = ShallowNet(
            np.vstack([net.a, s * net.a[i]]),
            np.append(net.b, s * net.b[i]),
            np.vstack(
                [
                    net.c * np.where(np.arange(net.width) == i, lam, 1.0)[:, None],
                    (1 - lam) * net.c[i] / s,
                ]
            ),
            net.e,
            net.w,
        )
        assert not restricted_set_margins(split, 1.0)["R3"]
        canon = canonical_form(split, 1.0)
        assert restricted_set_margins(canon, 1.0)["n_live"] == live
        assert_same_net(canon, canonical_form(net, 1.0, width=split.width), 1e-12)


def test_opposite_pair_with_opposite_outputs_is_affine():
    """c rho(z) - c rho(-z) = c z: the pair leaves no neuron, only W = c a^T, e = c b."""
    a, b, c = np.array([0.6, -0.8]), 0.1, np.array([1.0, -2.0, 0.5])
    net = ShallowNet(np.vstack([a, -a]), [b, -b], np.vstack([c, -c]), np.zeros(3))
    canon = canonical_form(net, 1.0)
    assert restricted_set_margins(canon, 1.0)["n_live"] == 0
    np.testing.assert_allclose(canon.w, np.outer(c, a), atol=1e-15)
    np.testing.assert_allclose(canon.e, c * b, atol=1e-15)


def test_vector_teacher_is_canonical():
    from realspace.core.targets import random_teacher

    rng = np.random.default_rng(4)
    teacher = random_teacher(5, 2, 1.0, rng, outputs=3)
    assert teacher.outputs == 3 and in_restricted_set(teacher, 1.0)
    gamma = np.linalg.norm(teacher.c, axis=1) * np.linalg.norm(teacher.a, axis=1)
    assert np.all((gamma >= 0.5 - 1e-12) & (gamma <= 1.5 + 1e-12))


def test_census_of_a_vector_network():
    from realspace.core.census import degeneracy_census

    rng = np.random.default_rng(5)
    net = vector_net(rng, 4, 2, 3)
    c = np.vstack([net.c, [[1.0, 2.0, 2.0]]])  # ||c|| = 3 against ||a|| = 1: imbalance log 3
    a = np.vstack([net.a, [[1.0, 0.0]]])
    planted = ShallowNet(a, np.append(net.b, 5.0), c, net.e)  # affine on Q
    census = degeneracy_census(planted, 1.0)
    assert census["affine"] == pytest.approx(1 / 5)
    assert census["imbalance_max"] >= np.log(3.0) - 1e-12
    assert census["effective_width"] <= 4


# ---------------------------------------------------------------------------
# Distances
# ---------------------------------------------------------------------------
def component(net, k):
    """Output component k as a scalar network, built from the parameters by hand."""
    w = None if net.w is None else net.w[k]
    return ShallowNet(net.a, net.b, net.c[:, k], net.e[k], w)


def test_exact_1d_vector_distances_agree_with_a_dense_grid():
    rng = np.random.default_rng(11)
    for _ in range(25):
        D = float(rng.choice([1.0, 2.0]))
        f = vector_net(rng, int(rng.integers(1, 10)), 1, 3, D, restricted=True)
        g = vector_net(rng, int(rng.integers(1, 10)), 1, 3, D)
        kinks = np.concatenate([-f.b / f.a[:, 0], -g.b / g.a[:, 0]])
        grid = np.linspace(-D, D, 200_001)
        x = np.concatenate([grid, kinks[np.abs(kinks) < D]])[:, None]
        h = outputs_by_hand(f, x) - outputs_by_hand(g, x)
        # |f - g| peaks at a kink or an end, all on the grid: its max is the sup
        sup = np.abs(h).max()
        # difference quotients on the grid are piece slopes or averages of two: their max
        # is the largest slope (every piece is far wider than a grid step here)
        hg = h[: grid.size]
        slope = np.abs(np.diff(hg, axis=0) / (grid[1] - grid[0])).max()
        d_inf, d_w = uniform_distance(f, g, D), sobolev_distance(f, g, D)
        assert d_inf.exact and d_w.exact
        assert d_inf == pytest.approx(sup, rel=1e-12)
        assert d_w == pytest.approx(max(sup, slope), rel=1e-7)
        # and the largest component: the component distances, one by one, by the grid
        per = [np.abs(h[:, k]).max() for k in range(3)]
        assert d_inf == pytest.approx(max(per), rel=1e-12)


def test_2d_vector_estimate_is_the_largest_component_lower_bound():
    from test_distances import exact_2d

    rng = np.random.default_rng(12)
    for _ in range(8):
        f = vector_net(rng, int(rng.integers(1, 4)), 2, 3, restricted=True)
        g = vector_net(rng, int(rng.integers(1, 4)), 2, 3)
        truth = [exact_2d(component(f, k), component(g, k), 1.0) for k in range(3)]
        truth_inf = max(s for s, _ in truth)
        truth_w = max(max(s, gr) for s, gr in truth)
        est_w, est_inf = sobolev_distance(f, g, 1.0), uniform_distance(f, g, 1.0)
        assert est_w.bound == "lower" and est_inf.bound == "lower"
        assert truth_w * 0.99 <= est_w <= truth_w * (1 + 1e-12)
        assert truth_inf * 0.99 <= est_inf <= truth_inf * (1 + 1e-12)


def brute_vector_param_distance(f, g):
    """min over all permutations of the sup norm over stacked rows (a, b, c) and (W, e),
    the narrower network padded by hand."""
    n, m = max(f.width, g.width), f.outputs

    def rows(net):
        r = np.column_stack([net.a, net.b, net.c])
        return np.vstack([r, np.zeros((n - net.width, r.shape[1]))])

    th, ph = rows(f), rows(g)
    affine = np.abs(np.column_stack([f.linear, f.e]) - np.column_stack([g.linear, g.e])).max()
    assert affine.size == 1 and th.shape[1] == f.dim + 1 + m
    best = min(np.abs(th - ph[list(p)]).max() for p in itertools.permutations(range(n)))
    return max(best, affine)


def test_vector_param_distance_matches_brute_force_over_permutations():
    rng = np.random.default_rng(13)
    for _ in range(60):
        d, m = int(rng.integers(1, 3)), int(rng.integers(2, 4))
        f = vector_net(rng, int(rng.integers(1, 6)), d, m, restricted=bool(rng.integers(2)))
        g = vector_net(rng, int(rng.integers(1, 6)), d, m, restricted=bool(rng.integers(2)))
        assert param_distance(f, g) == pytest.approx(brute_vector_param_distance(f, g), rel=1e-15)
    with pytest.raises(ValueError):
        param_distance(vector_net(rng, 2, 1, 2), vector_net(rng, 2, 1, 3))


def flip_by_hand(net, mask):
    """c rho(z) = c rho(-z) + c z for the neurons in mask: W += c a^T, e += c b."""
    a, b = net.a.copy(), net.b.copy()
    w, e = net.linear.copy(), net.e.copy()
    for i in np.flatnonzero(mask):
        w += np.outer(net.c[i], a[i])
        e += net.c[i] * b[i]
        a[i], b[i] = -a[i], -b[i]
    return ShallowNet(a, b, net.c, e, w)


def test_flip_neurons_keeps_a_vector_realization():
    rng = np.random.default_rng(14)
    net = vector_net(rng, 5, 2, 3)
    mask = np.array([1, 0, 1, 1, 0], bool)
    flipped = flip_neurons(net, mask)
    assert_same_net(flipped, flip_by_hand(net, mask), 1e-14)
    x = rng.uniform(-1, 1, (500, 2))
    np.testing.assert_allclose(outputs_by_hand(flipped, x), outputs_by_hand(net, x), atol=1e-12)


def test_fibre_distance_of_a_vector_network_and_its_reparametrizations_is_zero():
    rng = np.random.default_rng(15)
    for _ in range(15):
        d = int(rng.integers(1, 3))
        f = canonical_form(vector_net(rng, int(rng.integers(2, 7)), d, 3), 1.0)
        live = np.any(f.neurons() != 0, axis=1)
        mask = live & (rng.uniform(size=f.width) < 0.5)
        moved = flip_by_hand(f, mask)  # still in Omega_N: Gamma is itself
        assert in_restricted_set(moved, 1.0)
        perm = rng.permutation(f.width)
        s = rng.uniform(0.2, 5.0, f.width)  # rescaled too: off Omega_N, so canonicalized
        g = ShallowNet(
            s[perm, None] * moved.a[perm],
            s[perm] * moved.b[perm],
            moved.c[perm] / s[perm, None],
            moved.e,
            moved.w,
        )
        scale = max(1.0, np.abs(f.neurons()).max(), np.abs(f.affine()).max())
        for x, y in ((f, g), (moved, f), (g, moved)):
            value = fibre_distance(x, y, 1.0)
            assert value.exact and value <= 1e-12 * scale


def brute_vector_fibre(f, g, D):
    gamma = f if in_restricted_set(f, D) else canonical_form(f, D)
    phi = canonical_form(g, D)
    live = np.flatnonzero(np.any(phi.neurons() != 0, axis=1))
    best = np.inf
    for bits in itertools.product([0, 1], repeat=live.size):
        mask = np.zeros(phi.width, bool)
        mask[live[np.array(bits, bool)]] = True
        best = min(best, brute_vector_param_distance(gamma, flip_by_hand(phi, mask)))
    return best


def test_vector_fibre_distance_matches_brute_force_and_the_milp():
    rng = np.random.default_rng(16)
    for _ in range(12):
        d = int(rng.integers(1, 3))
        f = vector_net(rng, int(rng.integers(1, 5)), d, 3)
        near = ShallowNet(f.a + 0.05 * rng.standard_normal(f.a.shape), f.b, f.c, f.e)
        for g in (near, vector_net(rng, int(rng.integers(1, 5)), d, 3, restricted=True)):
            value = fibre_distance(f, g, 1.0)
            assert value.exact
            assert value == pytest.approx(brute_vector_fibre(f, g, 1.0), rel=1e-14)
            milp = fibre_distance(f, g, 1.0, exact_width=0)
            assert milp == pytest.approx(value, rel=1e-8, abs=1e-12)


def test_a_tiny_output_vector_has_a_norm():
    """||c|| of 1e-160 would underflow to 0 as a plain sum of squares."""
    t = 1e-160
    sizes = output_norms(t * np.array([[0.0, 0.6, 0.8], [0.0, 0.0, 0.0], [3.0, 4.0, 0.0]]))
    np.testing.assert_allclose(sizes, [t, 0.0, 5 * t], rtol=1e-15, atol=0)
