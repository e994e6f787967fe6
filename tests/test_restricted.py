import numpy as np
import pytest

from realspace import ShallowNet, in_restricted_set, pathology, restricted_set_margins


def conditions(net, D=2.0):
    m = restricted_set_margins(net, D)
    return {k: m[k] for k in ("R1", "R2", "R3", "R4")}


def test_each_pathology_breaks_exactly_its_condition():
    n = 10
    ok = dict(R1=True, R2=True, R3=True, R4=True)
    assert conditions(pathology("P0", n)[0]) == ok
    assert conditions(pathology("P1b", n)[0]) == ok
    assert conditions(pathology("P1", n)[0]) == {**ok, "R1": False}
    assert conditions(pathology("P2", n)[0]) == {**ok, "R3": False}
    assert conditions(pathology("P3", n)[0]) == {**ok, "R2": False}
    assert conditions(pathology("P4", n)[0]) == {**ok, "R4": False}


def test_margins_have_the_closed_form_values():
    n = 16.0
    m = restricted_set_margins(pathology("P0", n)[0], 2.0)
    # neurons (a, b) = n^-1/2 (1, 0) and n^-1/2 (1, -1): kinks at 0 and 1 in [-2, 2].
    np.testing.assert_allclose(m["kink_margins"], [2.0, 1.0])
    assert m["min_kink_margin"] == pytest.approx(1.0)
    assert m["min_angle_same"] == pytest.approx(np.pi / 4, rel=1e-14)
    assert m["min_angle_opposite"] == pytest.approx(3 * np.pi / 4, rel=1e-14)
    assert m["min_abs_c"] == pytest.approx(n**-0.5)
    m1 = restricted_set_margins(pathology("P1", n)[0], 2.0)
    assert m1["max_imbalance"] == pytest.approx(np.log(n**3))  # |c| / |a| = n^-2 / n
    m3 = restricted_set_margins(pathology("P3", n)[0], 2.0)
    assert m3["min_kink_margin"] == pytest.approx(-2.0)  # kink at x = 4 = D + 2


def test_tiny_angles_are_resolved():
    # (a, b) at angles phi and phi + 1e-11: collinear at tol 1e-9, distinct at tol 1e-12.
    eps, phi = 1e-11, 0.3
    a = np.array([[np.cos(phi)], [np.cos(phi + eps)]])
    b = np.array([np.sin(phi), np.sin(phi + eps)])
    net = ShallowNet(a, b, np.abs(a[:, 0]), 0.0, np.zeros(1))
    assert restricted_set_margins(net, 1.0)["min_angle_same"] == pytest.approx(eps, rel=1e-4)
    assert not in_restricted_set(net, 1.0, tol=1e-9)
    assert in_restricted_set(net, 1.0, tol=1e-12)
    flipped = ShallowNet(a * [[1], [-1]], b * [1, -1], np.abs(a[:, 0]), 0.0, np.zeros(1))
    m = restricted_set_margins(flipped, 1.0)
    assert m["min_angle_opposite"] == pytest.approx(eps, rel=1e-4)
    assert (m["R3"], m["R4"]) == (True, False)


def test_padding_is_allowed_and_empty_network_is_member():
    net = ShallowNet(np.zeros((3, 2)), np.zeros(3), np.zeros(3), 1.5, np.zeros(2))
    m = restricted_set_margins(net, 1.0)
    assert m["member"] and m["n_live"] == 0 and m["n_padding"] == 3
    half = ShallowNet([[0.0], [0.0]], [0.5, 0.0], [0.0, 0.0])  # a = c = 0 but b != 0
    assert not in_restricted_set(half, 1.0)
