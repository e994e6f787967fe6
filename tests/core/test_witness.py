"""Claim 2's witnesses (realspace.core.witness), each checked against an independent truth:
finite differences, brute-force searches over dense grids, and J and d_W recomputed from
the networks."""

import json

import numpy as np
import pytest

from realspace import ShallowNet, gaussian_population_loss, sobolev_distance
from realspace.core.witness import (
    candidate_directions,
    descent_direction,
    find_gaussian_witness,
    find_witness,
    free_neurons,
    loss_gradient,
    objective,
    witness_network,
)

D = 1.0


def relu(z):
    return np.maximum(z, 0.0)


# independent formulas of the three data losses as functions of the values f
PLAIN_LOSS = {
    "mse": lambda f, y: np.mean((f - y) ** 2),
    "logistic": lambda f, y: np.mean(np.log1p(np.exp(-y * f))),
    "cross_entropy": lambda f, y: np.mean(
        np.log(np.exp(f).sum(axis=1)) - f[np.arange(len(y)), y.astype(int)]
    ),
}


def labels(loss, x):
    """Targets on points x (n, d): sin for MSE, its sign for logistic, 3 bins for CE."""
    s = np.sin(np.pi * x.sum(axis=1))
    if loss == "mse":
        return s
    if loss == "logistic":
        return np.where(s >= 0, 1.0, -1.0)
    return np.digitize(s, [-0.5, 0.5]).astype(float)


def brute_1d(G, x, lam, D, n_grid=20001):
    """max over u = +-1 and t on a dense grid of [-D, D] plus every +-sample of
    ||sum_k G_k rho(u x_k - t)|| - lam."""
    G2 = G.reshape(len(G), -1)
    T = np.concatenate([np.linspace(-D, D, n_grid), x, -x])
    T = T[np.abs(T) <= D]
    best = max(np.linalg.norm(G2.T @ relu(u * x[:, None] - T), axis=0).max() for u in (1, -1))
    return best - lam


def brute_over(G, X, U, D, n_grid=2001):
    """max over the directions U and, per u, t on a grid of [-D|u|_1, D|u|_1] plus every
    <u, x_k> inside it, of ||sum_k G_k rho(<u, x_k> - t)||."""
    G2 = G.reshape(len(G), -1)
    best = -np.inf
    for u in U:
        r, s = D * np.abs(u).sum(), X @ u
        T = np.concatenate([np.linspace(-r, r, n_grid), s[np.abs(s) <= r]])
        best = max(best, np.linalg.norm(G2.T @ relu(s[:, None] - T), axis=0).max())
    return best


def random_net(rng, width, d, m=1, dead_slot=None):
    c = rng.standard_normal((width, m)) if m > 1 else rng.standard_normal(width)
    a, b = rng.standard_normal((width, d)), rng.uniform(-0.5, 0.5, width)
    if dead_slot is not None:  # all-zero: free, exact on Q, no penalty to remove
        a[dead_slot], b[dead_slot], c[dead_slot] = 0.0, 0.0, 0.0
    return ShallowNet(a, b, c, np.zeros(m) if m > 1 else 0.1)


@pytest.mark.parametrize("loss", ["mse", "logistic", "cross_entropy"])
def test_loss_gradient_matches_central_differences(loss):
    rng = np.random.default_rng(1)
    n = 7
    f = rng.standard_normal((n, 3)) if loss == "cross_entropy" else rng.standard_normal(n)
    y = labels(loss, rng.uniform(-1, 1, (n, 1)))
    G = loss_gradient(f, y, loss)
    assert G.shape == f.shape
    fd = np.zeros_like(f)
    h = 1e-6
    for idx in np.ndindex(f.shape):
        e = np.zeros_like(f)
        e[idx] = h
        fd[idx] = (PLAIN_LOSS[loss](f + e, y) - PLAIN_LOSS[loss](f - e, y)) / (2 * h)
    np.testing.assert_allclose(G, fd, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("loss", ["mse", "logistic", "cross_entropy"])
def test_the_1d_rate_is_exact_against_a_dense_brute_force(loss):
    rng = np.random.default_rng(2)
    Dq, lam = 2.0, 1e-3
    x = rng.uniform(-Dq, Dq, 40)
    net = random_net(rng, 4, 1, m=3 if loss == "cross_entropy" else 1)
    G = loss_gradient(net(x[:, None]), labels(loss, x[:, None]), loss)
    desc = descent_direction(G, x[:, None], lam, Dq)
    brute = brute_1d(G, x, lam, Dq)
    assert desc.bound == "exact"
    assert desc.rate == pytest.approx(brute, rel=1e-12)
    assert brute <= desc.rate + 1e-12 * abs(desc.rate)
    # the reported (u, t, v) attains it, v against h: <G, v rho> = -||h||
    phi = relu(desc.u[0] * x - desc.t)
    h = G.reshape(40, -1).T @ phi
    assert np.linalg.norm(h) - lam == pytest.approx(desc.rate, rel=1e-12)
    assert float(np.atleast_1d(desc.v) @ h) == pytest.approx(-np.linalg.norm(h), rel=1e-12)


def test_the_1d_rate_reaches_the_kink_at_the_cube_boundary():
    # all G_k > 0 (f above y everywhere): h(t) = sum G_k rho(x_k - t) grows as t falls, so
    # the best kink is t = -D, left of every sample: a search over samples alone misses it
    x = np.linspace(-0.5, 0.5, 11)
    G = loss_gradient(np.ones(11), np.zeros(11), "mse")
    desc = descent_direction(G, x[:, None], 0.0, D)
    assert (desc.u[0], desc.t, desc.v) == (1.0, -D, -1.0)
    assert desc.rate == pytest.approx(G @ (x + D), rel=1e-14)
    assert desc.rate > G @ (x - x.min()) * 1.5


def test_the_2d_lower_bound_is_exact_over_its_candidates_and_attained():
    rng = np.random.default_rng(3)
    X = rng.uniform(-D, D, (60, 2))
    y, lam = labels("mse", X), 1e-3
    net = random_net(rng, 4, 2, dead_slot=3)
    G = loss_gradient(net(X), y, "mse")
    desc = descent_direction(G, X, lam, D, n_directions=64)
    U = candidate_directions(X, G, 64, 0)
    assert desc.bound == "lower" and len(U) > 2 * (64 + 64)
    assert desc.rate == pytest.approx(brute_over(G, X, U, D) - lam, rel=1e-12)
    # a lower bound of the true max: not above a dense random search with more directions
    # (that search also holds the candidates), and close to it
    more = rng.standard_normal((3000, 2))
    dense = brute_over(G, X, np.vstack([U, more / np.linalg.norm(more, axis=1)[:, None]]), D)
    assert desc.rate <= dense - lam + 1e-12 and desc.rate >= 0.98 * (dense - lam)
    # attained: J moves at -rate to first order, recomputed from the networks
    free = free_neurons(net, X, D)
    g = 1e-7
    moved = witness_network(net, free, desc, g)
    slope = (objective(moved, X, y, "mse", lam) - objective(net, X, y, "mse", lam)) / g
    assert slope == pytest.approx(-desc.rate, rel=1e-4)


def test_free_neurons_finds_exactly_the_planted_ones():
    axis = np.linspace(-0.9, 0.9, 10)
    X = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    rows = [  # (a, b, c)
        ((1.0, 0.0), 0.1, 1.0),  # 0 live
        ((1.0, 1.0), -3.0, 0.5),  # 1 dead on Q (b <= -D ||a||_1 = -2)
        ((0.0, 0.0), -1.0, 0.7),  # 2 a = 0, b < 0: dead everywhere
        ((0.0, 1.0), 0.2, -1.0),  # 3 live
        ((1.0, -1.0), 0.3, 0.0),  # 4 zero output
        ((0.0, 2.0), 0.4, 0.5),  # 5 = 2 x neuron 3: merges into it
        ((1.0, 1.0), -1.85, 1.0),  # 6 dead on the samples (max 1.8), alive near (1, 1)
        ((-1.0, 0.5), 0.0, 0.3),  # 7 live
        ((0.0, 0.0), 0.0, 0.0),  # 8 padding: dead
        ((0.0, 1.0), 0.2 + 1e-3, 0.4),  # 9 near neuron 3, but 1e-3 rad off: not a duplicate
    ]
    net = ShallowNet([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    free = free_neurons(net, X, D)
    assert free.dead == (1, 2, 6, 8)
    assert free.zero_output == (4,)
    assert free.duplicates == ((5, 3),)
    assert free.slots == (1, 2, 6, 8, 4, 5) and free.count == 6
    assert free.exact_on_Q == (True, True, False, True, True, True)
    assert free.preferred == 1
    # the same with the exact slots gone: only the data-dead one is left
    keep = [0, 3, 6, 7]
    only = ShallowNet(net.a[keep], net.b[keep], net.c[keep])
    f2 = free_neurons(only, X, D)
    assert (f2.slots, f2.exact_on_Q, f2.preferred) == ((2,), (False,), 2)


def witness_case(loss):
    """d = 1 grid data; a width-4 network fitting part of it, neuron 3 dead on Q."""
    x = np.linspace(-D, D, 40)[:, None]
    a, b = [[1.0], [1.0], [-1.0], [1.0]], [0.5, -0.2, 0.1, -5.0]
    if loss == "cross_entropy":
        net = ShallowNet(a, b, [[0.8, 0, -0.8], [-1, 0.5, 0], [0.5, 0, 0], [1, 1, 1]], np.zeros(3))
    else:
        net = ShallowNet(a, b, [0.8, -1.0, 0.5, 1.0], 0.0)
    return net, x, labels(loss, x)


@pytest.mark.parametrize("loss", ["mse", "logistic", "cross_entropy"])
def test_a_constructed_witness_is_verified(loss):
    net, x, y = witness_case(loss)
    lam = 1e-3
    w = find_witness(net, x, y, loss, lam, D)
    G = loss_gradient(net(x), y, loss)
    assert (w.free_neurons, w.slot, w.exact_on_Q, w.witness) == (1, 3, True, True)
    assert w.rate_bound == "exact" and w.distance_bound == "exact"
    assert w.descent_rate == pytest.approx(brute_1d(G, x[:, 0], lam, D), rel=1e-12)
    assert all(drop > 0 for drop in w.j_drop)
    # d_W (sobolev_distance, exact in d = 1) / g is the closed form of ||v rho(u x - t)||:
    # ||rho(u x - t)|| times the largest output component |v_k| (d_W takes that component)
    c0 = max(D * abs(w.u[0]) - w.t, 1.0)
    assert w.C == pytest.approx(c0 * np.abs(w.v).max(), rel=1e-9)
    assert w.C0 == pytest.approx(c0, rel=1e-14)
    # the drop at the smallest g: the dead neuron's penalty plus g times the rate
    removed = lam / 2 * (np.sum(net.c[3] ** 2) + 1.0)
    assert (w.j_drop[-1] - removed) / 1e-6 == pytest.approx(w.descent_rate, rel=1e-4)
    row = w.to_row()
    assert set(row) == {
        "free_neurons", "descent_rate", "rate_bound", "witness",
        "witness_C", "witness_t", "witness_u", "witness_slot",
    }  # fmt: skip
    assert json.loads(json.dumps(row))["witness_u"] == [float(w.u[0])]


def test_no_free_neuron_is_no_witness():
    x = np.linspace(-D, D, 41)[:, None]
    net = ShallowNet([[1.0], [-1.0], [1.0]], [0.2, 0.3, -0.4], [1.0, 0.5, -0.7], 0.1)
    w = find_witness(net, x, labels("mse", x), "mse", 1e-3, D)
    assert (w.free_neurons, w.witness, w.slot) == (0, False, -1)
    assert np.isnan(w.descent_rate) and np.isnan(w.to_row()["descent_rate"])


def test_weight_decay_above_the_correlation_is_no_witness():
    net, x, y = witness_case("mse")
    top = brute_1d(loss_gradient(net(x), y, "mse"), x[:, 0], 0.0, D)
    w = find_witness(net, x, y, "mse", top + 0.05, D)
    assert w.free_neurons == 1 and not w.witness
    assert w.descent_rate == pytest.approx(-0.05, rel=1e-9)


def test_a_data_dead_slot_alive_on_Q_is_not_verified_and_exact_slots_come_first():
    rng = np.random.default_rng(4)
    x = np.sort(rng.uniform(-0.9, 0.9, 30))[:, None]
    y = labels("mse", x)
    a, b, c = [[1.0], [-1.0], [1.0]], [0.3, 0.2, -0.95], [0.7, -0.4, 1.0]  # 2: alive on (0.95, 1]
    net = ShallowNet(a, b, c, 0.0)
    w = find_witness(net, x, y, "mse", 1e-4, D)
    assert (w.free_neurons, w.slot, w.exact_on_Q) == (1, 2, False)
    # J does drop and the rate is positive: only the distance, which does not scale with
    # g (the removed neuron's 0.05 on (0.95, 1]), refuses it
    assert w.descent_rate > 0 and all(drop > 0 for drop in w.j_drop)
    assert not w.witness and w.C > 1e3
    padded = net.padded(4)
    w2 = find_witness(padded, x, y, "mse", 1e-4, D)
    assert (w2.free_neurons, w2.slot, w2.exact_on_Q, w2.witness) == (2, 3, True, True)


def test_a_duplicate_slot_merges_without_moving_the_realization():
    x = np.linspace(-D, D, 40)[:, None]
    y = labels("mse", x)
    # neuron 2 = 3 x neuron 0 in (a, b), unbalanced; neuron 1 live elsewhere
    net = ShallowNet([[1.0], [-1.0], [3.0]], [0.2, 0.1, 0.6], [0.5, -0.8, 2.0], 0.0)
    free = free_neurons(net, x, D)
    assert free.duplicates == ((2, 0),) and free.count == 1
    desc = descent_direction(loss_gradient(net(x), y, "mse"), x, 0.0, D)
    g = 1e-3
    moved = witness_network(net, free, desc, g)
    assert abs(moved.c[0]) == pytest.approx(abs(moved.a[0, 0]), rel=1e-14)  # balanced
    c0 = max(D - desc.t, 1.0)
    assert sobolev_distance(net, moved, D) == pytest.approx(c0 * g, rel=1e-9)
    assert find_witness(net, x, y, "mse", 0.0, D).witness


def test_gaussian_witness_at_a_zero_row_and_none_at_the_teacher():
    rng = np.random.default_rng(5)
    V = rng.standard_normal((2, 3))
    W = np.vstack([rng.standard_normal((2, 3)), np.zeros((1, 3))])
    w = find_gaussian_witness(W, V)
    assert (w.free_neurons, w.slot, w.witness, w.rate_bound) == (1, 2, True, "lower")
    assert w.descent_rate > 0 and all(drop > 0 for drop in w.j_drop)
    assert w.C == pytest.approx(1 / np.sqrt(2), rel=1e-14)
    # attained: L moves at -rate to first order (L recomputed in closed form)
    g = 1e-7
    moved = W.copy()
    moved[2] = g * w.u
    slope = (gaussian_population_loss(moved, V) - gaussian_population_loss(W, V)) / g
    assert slope == pytest.approx(-w.descent_rate, rel=1e-4)
    # the global minimum: student = teacher plus a zero row has no descent
    at_min = find_gaussian_witness(np.vstack([V, np.zeros((1, 3))]), V)
    assert at_min.free_neurons == 1 and at_min.descent_rate <= 1e-15 and not at_min.witness
    # a collinear pair is free too (merges into its partner)
    pair = find_gaussian_witness(np.vstack([W[:2], 2.5 * W[1]]), V)
    assert (pair.free_neurons, pair.slot, pair.exact_on_Q) == (1, 2, True)


def test_in_2d_exact_slots_use_the_closed_form_and_data_dead_ones_the_estimate():
    rng = np.random.default_rng(6)
    X = rng.uniform(-0.9, 0.9, (100, 2))
    y = labels("mse", X)
    a, b, c = rng.standard_normal((4, 2)), rng.uniform(-0.5, 0.5, 4), rng.standard_normal(4)
    a[3], b[3], c[3] = (1.0, 1.0), -1.85, 1.0  # dead on the samples, alive near (1, 1)
    net = ShallowNet(a, b, c, 0.1)
    w = find_witness(net, X, y, "mse", 1e-3, D)
    assert (w.slot, w.exact_on_Q, w.distance_bound, w.witness) == (3, False, "lower", False)
    # the estimate finds the removed neuron's slope 1 at every g: d_W / g = 1 / g
    assert w.C == pytest.approx(1e6, rel=1e-6)
    zeroed = ShallowNet(a, np.where(np.arange(4) == 3, 0.0, b), c * [1, 1, 1, 0], 0.1)
    w0 = find_witness(zeroed, X, y, "mse", 1e-3, D)
    assert (w0.slot, w0.exact_on_Q, w0.distance_bound, w0.witness) == (3, True, "closed form", True)
    assert w0.C == pytest.approx(w0.C0, rel=1e-14)
    assert w0.C0 == pytest.approx(max(D * np.abs(w0.u).sum() - w0.t, np.abs(w0.u).max()))


def test_an_affine_neuron_is_a_free_slot_only_where_the_linear_part_trains():
    """c rho(a x + b) with b >= D |a| is the affine c (a x + b) on Q: with a trained linear
    part it folds into (w, e), its slot freed without moving the realization on Q; in the
    plain unrestricted network (w = 0) it is no free slot."""
    x = np.linspace(-D, D, 40)[:, None]
    y = labels("mse", x)
    a, b, c = [[1.0], [-1.0], [0.5]], [0.2, 0.1, 2.0], [0.5, -0.8, 0.7]  # neuron 2 affine on Q
    linear = ShallowNet(a, b, c, 0.1, [0.3])
    free = free_neurons(linear, x, D)
    assert free.affine == (2,) and free.slots == (2,) and free.exact_on_Q == (True,)
    assert free_neurons(ShallowNet(a, b, c, 0.1), x, D).count == 0
    desc = descent_direction(loss_gradient(linear(x), y, "mse"), x, 0.0, D)
    g = 1e-4
    moved = witness_network(linear, free, desc, g)
    assert moved.w[0] == pytest.approx(0.3 + 0.7 * 0.5, rel=1e-15)  # w += c a
    assert moved.e == pytest.approx(0.1 + 0.7 * 2.0, rel=1e-15)  # e += c b
    assert sobolev_distance(linear, moved, D) == pytest.approx(max(D - desc.t, 1.0) * g, rel=1e-9)


def test_a_merge_within_the_angle_tolerance_is_not_exact_on_Q():
    """Two neurons 1e-8 rad off parallel merge (the trainer's tolerance) but not exactly:
    the slot counts, yet not as exact on Q; exactly parallel ones are exact."""
    x = np.linspace(-D, D, 40)[:, None]
    tilt = 1e-8
    near = ShallowNet([[1.0], [-1.0], [3.0]], [0.2, 0.1, 0.6 + 3 * tilt], [0.5, -0.8, 2.0])
    free = free_neurons(near, x, D)
    assert free.duplicates == ((2, 0),) and free.exact_on_Q == (False,)
    exact = ShallowNet([[1.0], [-1.0], [3.0]], [0.2, 0.1, 0.6], [0.5, -0.8, 2.0])
    assert free_neurons(exact, x, D).exact_on_Q == (True,)
