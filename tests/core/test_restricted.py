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


# ---------------------------------------------------------------------------
# Mutation testing (docs/mutation.md, "restricted.py")
# ---------------------------------------------------------------------------
# found by mutation testing: ||a_i||_2 and the angles' row norms were plain sums of
# squares, which underflow below about 1e-154 (a balanced neuron at 1e-160 read as
# unbalanced, at 1e-170 as infinitely so, with NaN angles)
@pytest.mark.parametrize("s", [1e-160, 1e-170])
def test_a_balanced_neuron_decayed_to_1e_160_stays_balanced(s):
    """Weight decay shrinks unneeded neurons to 1e-90 and below (train/record.py takes the
    margins of the raw end point): scaling one neuron's (a, b, c) by s > 0 keeps it
    balanced and keeps every angle."""
    a = np.array([[0.6, 0.8], [1.0, 0.0]])
    b = np.array([0.1, 0.2])
    c = np.array([1.0, 1.0])
    ref = restricted_set_margins(ShallowNet(a, b, c, 0.0, np.zeros(2)), 1.0)
    scale = np.array([s, 1.0])
    m = restricted_set_margins(
        ShallowNet(a * scale[:, None], b * scale, c * scale, 0.0, np.zeros(2)), 1.0
    )
    assert m["max_imbalance"] <= 1e-15 and m["R1"] and m["member"]
    assert m["min_angle_same"] == pytest.approx(ref["min_angle_same"], rel=1e-14)
    assert m["min_angle_opposite"] == pytest.approx(ref["min_angle_opposite"], rel=1e-14)


def pairwise_angles(a, b):
    """Angles between the rows of (a, b), pair by pair: 2 atan2(|u - v|, |u + v|) of the unit
    vectors (accurate at every angle, and not the library's route)."""
    v = np.column_stack([a, b])
    n = len(v)
    ref = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            u, w = v[i] / np.linalg.norm(v[i]), v[j] / np.linalg.norm(v[j])
            ref[i, j] = 2.0 * np.arctan2(np.linalg.norm(u - w), np.linalg.norm(u + w))
    return ref


def test_hyperplane_angles_agree_with_a_pairwise_reference():
    from realspace.core.restricted import hyperplane_angles

    rng = np.random.default_rng(41)
    for d in (1, 2, 3, 5):
        for n in (2, 3, 7):
            a = rng.standard_normal((n, d)) * rng.choice([1e-3, 1.0, 1e3], (n, 1))
            b = rng.standard_normal(n) * rng.choice([0.1, 1.0, 10.0])
            if n >= 3:  # a pair 1e-7 from parallel and one 1e-7 from antiparallel
                turn = rng.standard_normal(d + 1) * 1e-7
                a[1], b[1] = 2.0 * (a[0] + turn[:d]), 2.0 * (b[0] + turn[d])
                a[2], b[2] = -0.5 * (a[0] - turn[:d]), -0.5 * (b[0] - turn[d])
            same, opposite = hyperplane_angles(a, b)
            ref = pairwise_angles(a, b)
            # the small angle of each pair (the one R3 or R4 reads) to rounding, the other
            # (within 1e-8 of pi at the planted pairs) to the conditioning of arcsin near 1
            acute = ref <= np.pi / 2
            np.testing.assert_allclose(same[acute], ref[acute], rtol=1e-9, atol=1e-13)
            np.testing.assert_allclose(opposite[~acute], np.pi - ref[~acute], rtol=1e-9, atol=1e-13)
            np.testing.assert_allclose(same, ref, rtol=0, atol=1e-7, err_msg=f"{d} {n}")
            np.testing.assert_allclose(opposite, np.pi - ref, rtol=0, atol=1e-7)


def test_margins_of_two_neurons_at_120_degrees():
    # (a, b) = (1, 0) and (-1/2, sqrt(3)/2): the angle 2 pi / 3, its opposite pi / 3.
    net = ShallowNet([[1.0], [-0.5]], [0.0, np.sqrt(3) / 2], [1.0, 1.0])
    m = restricted_set_margins(net, 1.0)
    assert m["min_angle_same"] == pytest.approx(2 * np.pi / 3, rel=1e-14)
    assert m["min_angle_opposite"] == pytest.approx(np.pi / 3, rel=1e-14)
    assert m["min_hyperplane_angle"] == pytest.approx(np.pi / 3, rel=1e-14)


def test_neurons_with_a_zero_are_outside_the_cube_and_unbalanced():
    # live neurons: (1, 0.2, 1) inside and balanced; (0, 0.5, 0) and (0, -0.5, 2), whose
    # a = 0 puts them outside the cube (margin -inf) and makes |log(|c| / ||a||)| infinite
    # (0 / 0 too); the fourth neuron is padding.
    net = ShallowNet([[1.0], [0.0], [0.0], [0.0]], [0.2, 0.5, -0.5, 0.0], [1.0, 0.0, 2.0, 0.0])
    m = restricted_set_margins(net, 1.0)
    assert m["kink_margins"].tolist() == [0.8, -np.inf, -np.inf]
    assert m["min_kink_margin"] == -np.inf and m["max_imbalance"] == np.inf
    assert (m["n_live"], m["n_padding"]) == (3, 1)
    assert not (m["R1"] or m["R2"] or m["member"])
    for keep in ([0, 1], [0, 2]):  # each alone beside a balanced neuron
        part = ShallowNet(net.a[keep], net.b[keep], net.c[keep])
        m = restricted_set_margins(part, 1.0)
        assert m["max_imbalance"] == np.inf and m["min_kink_margin"] == -np.inf, keep
        assert not (m["R1"] or m["R2"]), keep
    # a = b = 0, c != 0: a live neuron, outside (-inf, not 0 / 0)
    m = restricted_set_margins(ShallowNet([[0.0, 0.0]], [0.0], [2.0], 0.0, np.zeros(2)), 1.0)
    assert m["kink_margins"].tolist() == [-np.inf] and m["n_live"] == 1 and not m["R2"]


def test_each_condition_at_its_boundary():
    # R2: a kink exactly on the cube's boundary (|b| = D ||a||_1) does not meet the open
    # cube; 1e-12 inside it does.
    for a, b in (([1.0], 1.0), ([0.5, -0.25], -0.75)):
        d = len(a)
        c = [float(np.linalg.norm(a))]
        m = restricted_set_margins(ShallowNet([a], [b], c, 0.0, np.zeros(d)), 1.0)
        assert m["min_kink_margin"] == 0.0 and not m["R2"] and not m["member"]
        m = restricted_set_margins(ShallowNet([a], [b * (1 - 1e-12)], c, 0.0, np.zeros(d)), 1.0)
        assert m["min_kink_margin"] > 0.0 and m["R2"] and m["member"]
    # R1 holds at max_imbalance <= tol, equality included
    net = ShallowNet([[1.0], [1.0]], [0.2, -0.3], [1.0, 1.5])
    imbalance = restricted_set_margins(net, 1.0)["max_imbalance"]
    assert imbalance == pytest.approx(np.log(1.5), rel=1e-15)
    assert restricted_set_margins(net, 1.0, tol=imbalance)["R1"]
    assert not restricted_set_margins(net, 1.0, tol=np.nextafter(imbalance, 0.0))["R1"]
    # R3 and R4: an angle equal to tol is collinear (canonical_form merges at angle <= tol)
    eps, phi = 1e-7, 0.3
    a = np.array([[np.cos(phi)], [np.cos(phi + eps)]])
    b = np.array([np.sin(phi), np.sin(phi + eps)])
    for sign, key, rule in ((1.0, "min_angle_same", "R3"), (-1.0, "min_angle_opposite", "R4")):
        net = ShallowNet(a * [[1.0], [sign]], b * [1.0, sign], np.abs(a[:, 0]), 0.0, np.zeros(1))
        angle = restricted_set_margins(net, 1.0)[key]
        assert angle == pytest.approx(eps, rel=1e-6)
        assert not restricted_set_margins(net, 1.0, tol=angle)[rule]
        assert restricted_set_margins(net, 1.0, tol=np.nextafter(angle, 0.0))[rule]


def test_output_norms_are_the_row_norms_at_every_scale():
    from realspace.core.restricted import output_norms

    rng = np.random.default_rng(42)
    c = rng.standard_normal((6, 3))
    ref = np.sqrt((c * c).sum(axis=1))
    for s in (1.0, 1e-160, 1e160):
        np.testing.assert_allclose(output_norms(c * s), ref * s, rtol=1e-15)
    c[2] = 0.0  # a zero row has norm 0
    got = output_norms(c)
    assert got[2] == 0.0 and got.shape == (6,)
    np.testing.assert_allclose(output_norms(c[:, :1]), np.abs(c[:, 0]), rtol=1e-15)  # m = 1
    np.testing.assert_array_equal(output_norms(c[:, 0]), np.abs(c[:, 0]))  # scalar outputs
