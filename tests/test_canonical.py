import numpy as np
import pytest
from netgen import plant_degenerate, random_net, reparametrize

from realspace import (
    ShallowNet,
    canonical_form,
    in_restricted_set,
    param_distance,
    restricted_set_margins,
)


def dense_points(rng, d, D, net):
    x = rng.uniform(-D, D, (3000, d))
    if d == 1:  # also the kinks themselves and the ends
        a = net.a[:, 0]
        t = -net.b[a != 0] / a[a != 0]
        x = np.vstack([x, np.linspace(-D, D, 2001)[:, None], t[np.abs(t) <= D][:, None]])
    return x


def relative_sup_error(f, g, x):
    fx = f(x)
    return np.abs(fx - g(x)).max() / max(np.abs(fx).max(), 1e-3)


def test_canonical_form_keeps_the_realization_on_1000_networks():
    rng = np.random.default_rng(2024)
    worst = 0.0
    for k in range(1000):
        d = int(rng.integers(1, 4))
        D = float(rng.choice([0.5, 1.0, 2.0]))
        net = random_net(rng, int(rng.integers(1, 65)), d, D, restricted=bool(k % 2))
        if k % 3:
            net = plant_degenerate(rng, net, D)
        canon = canonical_form(net, D)
        assert canon.width == net.width and canon.restricted
        worst = max(worst, relative_sup_error(net, canon, dense_points(rng, d, D, net)))
        assert in_restricted_set(canon, D), k
    assert worst <= 1e-10


def test_planted_degeneracies_are_removed():
    D = 1.0
    # base network: neurons (1, 0.2, 1) and (2, -0.4, -3), kinks at -0.2 and 0.2
    planted = ShallowNet(
        [[1.0], [2.0], [1.0], [0.0], [3.0], [4.0], [-2.0]],
        # dead, constant, affine, duplicate of neuron 1, opposite of neuron 2
        [0.2, -0.4, -5.0, 0.7, 3.5, 0.8, 0.4],
        [1.0, -3.0, 7.0, 2.0, -1.0, 0.25, 0.5],
    )
    canon = canonical_form(planted, D)
    m = restricted_set_margins(canon, D)
    assert m["n_live"] == 2 and m["member"]
    x = np.linspace(-D, D, 1001)[:, None]
    np.testing.assert_allclose(canon(x), planted(x), atol=1e-13)
    # Neuron 1 merged with its duplicate: gamma = 1 + 0.25 * 4 = 2 on x + 0.2.
    # Neuron 2 (gamma = -6 on 2x - 0.4) merged with its opposite (gamma = +1): -5.
    gammas = sorted(canon.c[:2] * np.linalg.norm(canon.a[:2], axis=1))
    np.testing.assert_allclose(gammas, [-5.0, 2.0], rtol=1e-14)
    assert not np.any(canon.c[2:])  # padded


def test_canonical_forms_of_one_realization_coincide():
    rng = np.random.default_rng(7)
    for k in range(300):
        d = int(rng.integers(1, 4))
        D = float(rng.choice([1.0, 2.0]))
        net = random_net(rng, int(rng.integers(1, 20)), d, D, restricted=bool(k % 2))
        other = reparametrize(rng, net, D)
        x = rng.uniform(-D, D, (500, d))
        np.testing.assert_allclose(other(x), net(x), atol=1e-10)  # the helper is honest
        c1, c2 = canonical_form(net, D), canonical_form(other, D)
        assert param_distance(c1, c2) <= 1e-9, k
        assert in_restricted_set(c1, D) and in_restricted_set(c2, D)


def test_canonical_form_is_idempotent():
    rng = np.random.default_rng(3)
    for _ in range(50):
        net = random_net(rng, 12, 2, 1.0)
        once = canonical_form(net, 1.0)
        assert param_distance(once, canonical_form(once, 1.0)) <= 1e-12


def test_canonical_form_of_an_opposite_pair_is_affine():
    # rho(x) - rho(-x) = x: no neuron survives, the slope moves into w.
    net = ShallowNet([[1.0], [-1.0]], [0.0, 0.0], [1.0, -1.0])
    canon = canonical_form(net, 2.0)
    assert not np.any(canon.c)
    assert canon.w.tolist() == [1.0] and canon.e == 0.0


def test_width_too_small_is_refused():
    net = ShallowNet([[1.0], [2.0]], [0.1, 0.5], [1.0, 1.0])
    with pytest.raises(ValueError, match="needs width 2"):
        canonical_form(net, 1.0, width=1)


# ---------------------------------------------------------------------------
# The numpy fast path of the merge step against scipy (the reference it replaced)
# ---------------------------------------------------------------------------
def scipy_chord_distances(u):
    from scipy.spatial.distance import pdist, squareform

    return squareform(pdist(u))


def scipy_merge_groups(close):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    return connected_components(coo_matrix(close), directed=False)


def chain_net(rng, d, links, step=0.6e-9):
    """Neurons whose normalised (a, b) turn by ``step`` (under the merge angle 1e-9) one
    after another: only the chain's ends are farther apart than the angle, so they merge
    into one group through the middle ones. Mixed with generic neurons and shuffled."""
    base = random_net(rng, 1, d)
    v = np.append(base.a[0], base.b[0])
    v /= np.linalg.norm(v)
    turn = rng.standard_normal(d + 1)
    turn -= (turn @ v) * v
    turn /= np.linalg.norm(turn)
    chain = [np.cos(k * step) * v + np.sin(k * step) * turn for k in range(links)]
    chain = [rng.uniform(0.5, 2.0) * (1 if k % 2 else -1) * u for k, u in enumerate(chain)]
    rest = random_net(rng, int(rng.integers(0, 6)), d)
    ab = np.vstack([np.array(chain), np.column_stack([rest.a, rest.b])])
    c = rng.standard_normal(ab.shape[0])
    order = rng.permutation(ab.shape[0])
    return ShallowNet(ab[order, :d], ab[order, d], c[order], 0.3), rest.width


def test_merge_groups_agree_with_scipy_on_random_relations():
    from realspace.canonical import _merge_groups

    rng = np.random.default_rng(11)
    for k in range(600):
        n = int(rng.integers(1, 90))  # both sides of the dense-closure limit
        p = rng.choice([0.0, 0.5 / n, 2.0 / n, 0.3])
        close = rng.random((n, n)) < p
        close |= close.T
        np.fill_diagonal(close, True)
        groups, label = _merge_groups(close)
        ref_groups, ref_label = scipy_merge_groups(close)
        assert groups == ref_groups and np.array_equal(label, ref_label), k


def test_chord_distances_equal_pdist():
    from realspace.canonical import _chord_distances

    rng = np.random.default_rng(12)
    for n, k in [(1, 2), (5, 2), (17, 3), (64, 4), (300, 4)]:  # the last one goes to pdist
        u = rng.standard_normal((n, k))
        u[n // 2] = u[0] * (1 + 1e-12)
        assert np.array_equal(_chord_distances(u), scipy_chord_distances(u))


@pytest.mark.parametrize("kind", ["random", "planted", "chains"])
def test_canonical_fast_path_equals_the_scipy_path(monkeypatch, kind):
    import realspace.canonical as canonical

    rng = np.random.default_rng({"random": 21, "planted": 22, "chains": 23}[kind])
    nets, rest = [], []
    for k in range(150):
        d = int(rng.integers(1, 4))
        if kind == "chains":
            net, n_rest = chain_net(rng, d, int(rng.integers(3, 7)))
            nets.append(net)
            rest.append(n_rest)
            continue
        net = random_net(rng, int(rng.integers(1, 40)), d, restricted=bool(k % 2))
        nets.append(plant_degenerate(rng, net) if kind == "planted" else net)
    fast = [canonical_form(net, 1.0) for net in nets]
    with monkeypatch.context() as m:
        m.setattr(canonical, "_chord_distances", scipy_chord_distances)
        m.setattr(canonical, "_merge_groups", scipy_merge_groups)
        slow = [canonical_form(net, 1.0) for net in nets]
    for k, (f, s) in enumerate(zip(fast, slow, strict=True)):
        for name in ("a", "b", "c", "e", "w"):
            np.testing.assert_array_equal(getattr(f, name), getattr(s, name), err_msg=f"{k} {name}")
    if kind == "chains":  # each chain merged into (at most) one neuron through its links
        assert all(np.count_nonzero(f.c) <= r + 1 for f, r in zip(fast, rest, strict=True))


@pytest.mark.parametrize("tiny", [1e-90, 1e-170])
def test_neurons_decayed_to_tiny_sizes_keep_a_finite_canonical_form(tiny):
    """Weight decay can shrink unneeded neurons to 1e-90 and below, where a sum of squares
    underflows (below about 1e-154): the canonical form stays finite and keeps the
    realization, the tiny neurons dropped as negligible."""
    rng = np.random.default_rng(5)
    D = 1.0
    for d in (1, 2):
        net = random_net(rng, 10, d, D, restricted=True)
        a, b, c = net.a.copy(), net.b.copy(), net.c.copy()
        small = np.arange(10) % 2 == 0
        a[small] *= tiny
        b[small] *= tiny
        c[small] *= tiny
        decayed = ShallowNet(a, b, c, net.e, net.linear)
        with np.errstate(divide="raise", invalid="raise"):
            canon = canonical_form(decayed, D)
        assert all(np.isfinite(v).all() for v in (canon.a, canon.b, canon.c, canon.linear))
        err = relative_sup_error(decayed, canon, dense_points(rng, d, D, decayed))
        assert err <= 1e-10
        all_tiny = ShallowNet(a * tiny, b * tiny, c * tiny, 0.3, net.linear)
        with np.errstate(divide="raise", invalid="raise"):
            flat = canonical_form(all_tiny, D)
        assert np.isfinite(flat.a).all() and abs(flat.e - 0.3) < 1e-12
