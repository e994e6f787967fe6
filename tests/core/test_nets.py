import numpy as np
import pytest
from netgen import random_net

from realspace import ShallowNet, canonical_form, pathology, sobolev_distance


def loop_realization(net, x):
    out = np.full(len(x), net.e)
    for k, xk in enumerate(x):
        for i in range(net.width):
            out[k] += net.c[i] * max(float(net.a[i] @ xk + net.b[i]), 0.0)
        out[k] += net.linear @ xk
    return out


@pytest.mark.parametrize("d", [1, 2, 3])
def test_realization_matches_explicit_sum(d):
    rng = np.random.default_rng(d)
    net = random_net(rng, 7, d, restricted=True)
    x = rng.uniform(-1, 1, (50, d))
    assert net(x).shape == (50,)
    np.testing.assert_allclose(net(x), loop_realization(net, x), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_gradient_matches_central_differences_off_kinks(d):
    rng = np.random.default_rng(10 + d)
    net = random_net(rng, 9, d, restricted=True)
    x = rng.uniform(-1, 1, (200, d))
    x = x[np.abs(net.preactivation(x)).min(axis=1) > 1e-3]
    h = 1e-6
    fd = np.stack(
        [(net(x + h * np.eye(d)[j]) - net(x - h * np.eye(d)[j])) / (2 * h) for j in range(d)],
        axis=1,
    )
    assert net.gradient(x).shape == (len(x), d)
    np.testing.assert_allclose(net.gradient(x), fd, rtol=1e-7, atol=1e-7)


def test_gradient_on_a_kink_is_not_autograd_artifact():
    # f = rho(x) - rho(-x) = x has slope 1 everywhere, also at the shared kink 0
    # away from it; at the kink itself both neurons count as inactive.
    net = ShallowNet([[1.0], [-1.0]], [0.0, 0.0], [1.0, -1.0])
    assert net.gradient(np.array([[0.5], [-0.5]]))[:, 0].tolist() == [1.0, 1.0]


def test_one_dimensional_points_accepted_for_d1():
    net = ShallowNet([[2.0]], [0.0], [1.0])
    np.testing.assert_allclose(net(np.array([-1.0, 1.0])), [0.0, 2.0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(a=np.ones((3, 2)), b=np.ones(2), c=np.ones(3)), "shape mismatch"),
        (dict(a=np.ones(3), b=np.ones(3), c=np.ones(3)), "a must have 2"),
        (dict(a=np.ones((3, 2)), b=np.ones(3), c=[1, np.nan, 1]), "c contains NaN"),
        (dict(a=np.ones((3, 2)), b=np.ones(3), c=np.ones(3), e=np.inf), "e is NaN"),
        (dict(a=np.ones((3, 2)), b=np.ones(3), c=np.ones(3), w=np.ones(3)), "w must have shape"),
    ],
)
def test_bad_parameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShallowNet(**kwargs)


def test_bad_points_and_domain_are_refused():
    net = ShallowNet(np.ones((2, 2)), np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        net(np.ones((4, 3)))
    for D in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="half-width D"):
            canonical_form(net, D)
        with pytest.raises(ValueError, match="half-width D"):
            sobolev_distance(net, net, D)
    with pytest.raises(ValueError, match="different input dimensions"):
        sobolev_distance(net, ShallowNet(np.ones((1, 1)), [0.0], [1.0]), 1.0)


def test_unknown_pathology_and_bad_index():
    with pytest.raises(ValueError, match="unknown pathology 'P9'"):
        pathology("P9", 10)
    with pytest.raises(ValueError, match="n must be"):
        pathology("P1", 0)
