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
    from realspace.core.canonical import _merge_groups

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
    from realspace.core.canonical import _chord_distances

    rng = np.random.default_rng(12)
    for n, k in [(1, 2), (5, 2), (17, 3), (64, 4), (300, 4)]:  # the last one goes to pdist
        u = rng.standard_normal((n, k))
        u[n // 2] = u[0] * (1 + 1e-12)
        assert np.array_equal(_chord_distances(u), scipy_chord_distances(u))


@pytest.mark.parametrize("kind", ["random", "planted", "chains"])
def test_canonical_fast_path_equals_the_scipy_path(monkeypatch, kind):
    import realspace.core.canonical as canonical

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


# ---------------------------------------------------------------------------
# The tolerance decisions at their documented thresholds (mutation testing:
# docs/mutation.md, "canonical.py")
# ---------------------------------------------------------------------------
def live(net):
    return int(np.count_nonzero(np.any(net.neurons() != 0.0, axis=1)))


def test_the_given_tolerance_decides_which_kinks_count_as_outside():
    # Kinks at x = -0.9999 and x = 0.9999 on [-1, 1]: within tol = 1e-3 of the boundary,
    # so outside (the first affine on Q, folded; the second dead); inside at 1e-9.
    net = ShallowNet([[1.0], [1.0]], [0.9999, -0.9999], [2.0, 3.0])
    loose = canonical_form(net, 1.0, tol=1e-3)
    assert live(loose) == 0
    assert loose.w.tolist() == [2.0] and loose.e == pytest.approx(2 * 0.9999, rel=1e-15)
    assert live(canonical_form(net, 1.0)) == 2


def test_negligible_merged_neurons_are_dropped_relative_to_the_largest():
    # Neurons 1 and 2 lie on one hyperplane (x + 0.2) with gammas 1 and -(1 - 1e-12): the
    # merged gamma 1e-12 is below tol = 1e-9 times the largest |gamma| (1 or 3) and is
    # dropped; neuron 3 (gamma 3 on x - 0.3, oriented to -x + 0.3) stays. The same at any
    # scale of c.
    for s in (1.0, 1e-6, 1e6):
        net = ShallowNet(
            [[1.0], [2.0], [1.0]], [0.2, 0.4, -0.3], s * np.array([1.0, -0.5 + 5e-13, 3.0])
        )
        canon = canonical_form(net, 1.0)
        assert live(canon) == 1, s
        np.testing.assert_allclose(
            [canon.a[0, 0], canon.b[0], canon.c[0]],
            np.sqrt(3 * s) * np.array([-1.0, 0.3, 1.0]),
            rtol=1e-12,
        )
        x = np.linspace(-1.0, 1.0, 201)[:, None]
        np.testing.assert_allclose(canon(x), net(x), rtol=0, atol=1e-11 * s)


def test_kinks_through_the_origin_are_oriented_by_their_first_entry():
    """orientation_flips's rule: b^ > 0; when |b^| <= tol D, the first entry of a^ with
    |a^_k| > tol positive. Hand cases at the thresholds, D = 2 so that tol D = 2e-9."""
    from realspace.core.canonical import orientation_flips

    tol, D = 1e-9, 2.0
    s = np.sqrt(0.5)
    cases = [  # (a^, b^, flipped)
        ([-1.0, 0.0], 0.0, True),
        ([0.6, 0.8], 0.0, False),  # lead 0.6 > 0: kept
        ([-0.6, 0.8], 0.0, True),
        ([0.0, -1.0], 1e-12, True),  # the first nonzero entry leads
        ([1e-9, -1.0], 0.0, True),  # an entry of exactly tol does not count: -1 leads
        ([-s, s], 2e-9, True),  # |b^| = tol D is a tie
        ([-s, s], -2e-9, True),
        ([s, -s], 2e-9, False),
        ([-s, s], 1.5e-9, True),  # tol D, not tol / D
        ([-s, s], 3e-9, False),  # beyond the tie: the sign of b^ decides
        ([s, s], -3e-9, True),
        ([-0.6, 0.8], 0.5, False),
        ([0.6, 0.8], -0.5, True),
    ]
    a_hat = np.array([c[0] for c in cases])
    b_hat = np.array([c[1] for c in cases])
    expected = [c[2] for c in cases]
    assert orientation_flips(a_hat, b_hat, D, tol).tolist() == expected
    # canonical_form follows the rule: a kink at distance 1.5e-9 of the origin, given
    # either way round, comes out with a first entry > 0 (and b < 0)
    for sign in (1.0, -1.0):
        net = ShallowNet([[-sign * 2.0, sign * 2.0]], [sign * 3e-9], [1.0], 0.0, np.zeros(2))
        canon = canonical_form(net, D)
        assert canon.a[0, 0] > 0 and canon.b[0] < 0, sign


def test_a_kink_through_the_origin_given_either_way_round_has_one_canonical_form():
    # c rho(<a, x>) = c rho(<-a, x>) + c <a, x>: one realization, one canonical form.
    rng = np.random.default_rng(31)
    for d in (1, 2, 3):
        for _ in range(20):
            a = rng.standard_normal(d)
            c = rng.standard_normal()
            rest = random_net(rng, 3, d, restricted=True)
            one = ShallowNet(
                np.vstack([rest.a, a]), np.append(rest.b, 0.0), np.append(rest.c, c), rest.e, rest.w
            )
            other = ShallowNet(
                np.vstack([rest.a, -a]),
                np.append(rest.b, 0.0),
                np.append(rest.c, c),
                rest.e,
                rest.w + c * a,
            )
            x = rng.uniform(-1, 1, (200, d))
            np.testing.assert_allclose(other(x), one(x), atol=1e-12)
            assert param_distance(canonical_form(one, 1.0), canonical_form(other, 1.0)) <= 1e-12


@pytest.mark.parametrize("angle", [1.3e-9, 0.7e-9])
def test_hyperplanes_merge_within_the_angle_tol_among_many_neurons(angle):
    # A neuron whose (a, b) is 1.3e-9 from another's in angle (more than tol = 1e-9), among
    # 40, keeps its own neuron (the canonical form is in Omega_N); at 0.7e-9 the two merge.
    rng = np.random.default_rng(32)
    for d in (1, 2):
        base = canonical_form(random_net(rng, 40, d, restricted=True), 1.0)
        n0 = live(base)
        assert n0 >= 30
        v = np.append(base.a[0], base.b[0])
        v /= np.linalg.norm(v)
        turn = rng.standard_normal(d + 1)
        turn -= (turn @ v) * v
        turn /= np.linalg.norm(turn)
        u = np.cos(angle) * v + np.sin(angle) * turn
        net = ShallowNet(
            np.vstack([base.a, u[:d]]),
            np.append(base.b, u[d]),
            np.append(base.c, 1.0),
            base.e,
            base.w,
        )
        canon = canonical_form(net, 1.0)
        m = restricted_set_margins(canon, 1.0)
        assert m["member"]
        if angle > 1e-9:
            assert live(canon) == n0 + 1
            assert m["min_angle_same"] == pytest.approx(angle, rel=1e-3)
        else:
            assert live(canon) == n0


def test_merged_direction_is_the_gamma_weighted_mean():
    # Kinks at -0.3 and -0.3 - 5e-10 (angle 4.6e-10 < tol in (a^, b^)): one neuron, gamma
    # g1 + g2, b^ the |gamma|-weighted mean 0.3 + 5e-10 g2 / (g1 + g2) (docs/science.md,
    # step 5); small gammas, so that a weight of |gamma| + 1 would give the plain mean.
    g1, g2 = 3e-6, 1e-6
    net = ShallowNet([[1.0], [1.0]], [0.3, 0.3 + 5e-10], [g1, g2])
    canon = canonical_form(net, 1.0)
    assert live(canon) == 1
    t = canon.a[0, 0]
    assert canon.c[0] * t == pytest.approx(g1 + g2, rel=1e-14)
    assert canon.b[0] / t == pytest.approx(0.3 + 5e-10 * g2 / (g1 + g2), rel=1e-15)


def test_the_drop_threshold_is_inclusive_and_a_network_without_output_weights_is_affine():
    # docs/science.md step 6: drop |gamma| <= tol * max |gamma|. gamma = 1e-9 next to 1
    # is dropped; 1.1e-9 stays.
    for g, n in ((1e-9, 1), (1.1e-9, 2)):
        net = ShallowNet([[1.0], [1.0]], [0.3, -0.2], [1.0, g])
        assert live(canonical_form(net, 1.0)) == n, g
    # every c_i = 0: the realization is the affine part, which needs no neuron at all
    net = ShallowNet([[1.0], [2.0]], [0.1, -0.3], [0.0, 0.0], 0.5)
    canon = canonical_form(net, 1.0, width=0)
    assert canon.width == 0 and canon.e == 0.5 and canon.w.tolist() == [0.0]


def test_neurons_are_sorted_lexicographically_by_their_oriented_direction():
    rng = np.random.default_rng(33)
    for d in (1, 2, 3):
        for _ in range(10):
            canon = canonical_form(random_net(rng, 12, d), 1.0)
            n = live(canon)
            norm = np.linalg.norm(canon.a[:n], axis=1)
            keys = [
                tuple(row) for row in np.column_stack([canon.a[:n], canon.b[:n]]) / norm[:, None]
            ]
            assert keys == sorted(keys)
            assert n >= 2 and len({k[0] for k in keys}) >= 2  # the first entries decide


def test_a_network_of_neurons_below_1e_300_keeps_its_realization():
    # gamma = c ||a|| of about 1e-302: the merge weights |gamma| + 1e-300 stay positive (a weight
    # of |gamma| - 1e-300 would turn each neuron round without its affine correction).
    rng = np.random.default_rng(34)
    for d in (1, 2):
        net = random_net(rng, 6, d, restricted=True)
        s = 1e-151
        tiny = ShallowNet(net.a * s, net.b * s, net.c * s, 0.0, np.zeros(d))
        canon = canonical_form(tiny, 1.0)
        x = dense_points(rng, d, 1.0, net)
        fx = tiny(x)
        assert 1e-305 < np.abs(fx).max() < 1e-300
        assert np.abs(canon(x) - fx).max() <= 1e-10 * np.abs(fx).max()


def test_a_network_without_a_kink_in_the_cube_is_its_affine_part():
    # On [-1, 1]^2: neuron 1 is dead (b = -3 <= -||a||_1), neuron 2 affine (b = 2 >= 1):
    # it folds into w = -(0.5, -0.5), e = 0.25 - 2. No neuron is left, in d = 2 and 3.
    for d in (2, 3):
        a = np.zeros((2, d))
        a[0, :2], a[1, :2] = [1.0, 1.0], [0.5, -0.5]
        net = ShallowNet(a, [-3.0, 2.0], [2.0, -1.0], 0.25)
        canon = canonical_form(net, 1.0)
        assert live(canon) == 0 and canon.width == 2
        assert canon.w.tolist() == [-0.5, 0.5] + [0.0] * (d - 2) and canon.e == -1.75
