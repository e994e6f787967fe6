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
