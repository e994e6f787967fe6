"""Claim 3 on trained networks (realspace.core.stability) against closed forms, enumeration and
brute force, built by hand here."""

import itertools

import numpy as np
import pandas as pd
import pytest
from netgen import random_net

from realspace import ShallowNet, canonical_form
from realspace.core.distances import param_distance
from realspace.core.inverse import fit_slope
from realspace.core.restricted import in_restricted_set
from realspace.core.stability import (
    SHIFT,
    STABILITY_DELTAS,
    STABILITY_KINDS,
    free_neuron_rows,
    free_neurons,
    kink_lower_bound,
    kinks_1d,
    perturbation,
    stability_rows,
)
from realspace.report.stability import stability_exponents

D = 1.0
# two balanced neurons with kinks -0.5 and 0.3 (|c| = |a|, |b| < D |a|), an affine part
GAMMA = ShallowNet([[1.0], [-1.2]], [0.5, 0.36], [1.0, -1.2], 0.2, [0.3])
# d_W of an O(1) realization is a difference of O(1) values: float64 rounding leaves ~1e-15
FLOOR = 1e-14


@pytest.fixture(scope="module")
def hand_rows():
    assert in_restricted_set(GAMMA, D)
    return stability_rows(GAMMA, D)


def _of(rows, kind):
    return [r for r in rows if r["kind"] == kind]


def _line_distance(a, b, kappa):
    """The sup-norm distance from (a, b) to {b' + kappa a' = 0}, by brute force: the convex
    piecewise-linear max(|a' - a|, |kappa a' + b|) over a' is least at one of its breakpoints."""
    cands = [a, -b / kappa if kappa else a]
    for sgn in (1.0, -1.0):  # a' - a = sgn (kappa a' + b)
        if 1.0 - sgn * kappa != 0:
            cands.append((a + sgn * b) / (1.0 - sgn * kappa))
    return min(max(abs(x - a), abs(kappa * x + b)) for x in cands)


def test_every_row_sits_at_its_delta_and_is_exact(hand_rows):
    net = canonical_form(random_net(np.random.default_rng(5), 6, 1, restricted=True), D)
    # D = 8: the shift Delta = 2 > 1, the ramp's height s Delta decides d_W
    for rows in (hand_rows, stability_rows(net, D), stability_rows(GAMMA, 8.0)):
        assert len(rows) == len(STABILITY_KINDS) * len(STABILITY_DELTAS)
        for r in rows:
            assert r["d_W"] == pytest.approx(r["delta"], rel=1e-12, abs=FLOOR)
            assert r["d_W_bound"] == "exact" and r["d_P_bound"] == "exact"
    for r in _of(rows, "shift"):  # d_P = sqrt(s) Delta with s = delta / Delta
        assert r["d_P"] == pytest.approx(np.sqrt(r["delta"] / 2.0) * 2.0, rel=1e-9)


def test_add_matches_the_closed_form_at_rate_one_half(hand_rows):
    rows = _of(hand_rows, "add")
    for r in rows:  # the balanced new neuron against the zero padding slot
        s = r["delta"] / max(D - r["t"], 1.0)
        assert r["d_P"] == pytest.approx(np.sqrt(s) * max(1.0, abs(r["t"])), rel=1e-9)
        assert r["width"] == 2 and r["neuron"] == 2
    r_half = np.array([r["r_half"] for r in rows])
    assert np.ptp(r_half) <= 1e-8 * r_half.mean()
    assert fit_slope([r["d_W"] for r in rows], [r["d_P"] for r in rows]) == pytest.approx(
        0.5, abs=1e-6
    )


def test_scale_matches_the_closed_form_at_rate_one(hand_rows):
    rows = _of(hand_rows, "scale")
    for r in rows:
        i = r["neuron"]
        a, b, c = GAMMA.a[i, 0], GAMMA.b[i], GAMMA.c[i]
        u = r["delta"] / (abs(c) * max(abs(a) * D + b, abs(a)))
        expect = (np.sqrt(1 + u) - 1) * max(abs(a), abs(b), abs(c))
        assert r["d_P"] == pytest.approx(expect, rel=1e-9)
    x, y = [r["d_W"] for r in rows], [r["d_P"] for r in rows]
    # sqrt(1 + u) - 1 = u/2 (1 - u/4 + ...): linear up to O(delta) corrections
    assert fit_slope(x, y) == pytest.approx(1.0, abs=1e-2)
    assert fit_slope(x[2:], y[2:]) == pytest.approx(1.0, abs=1e-4)


def test_shift_matches_the_closed_form_at_rate_one_half(hand_rows):
    rows = _of(hand_rows, "shift")
    step = SHIFT * D
    for r in rows:  # the small neuron's b moves by sqrt(s) Delta, a and c stay
        s = r["delta"] / max(step, 1.0)
        assert r["d_P"] == pytest.approx(np.sqrt(s) * step, rel=1e-9)
        assert r["base"] == "gamma + small neuron"
        assert -D < r["t"] and r["t"] + step < D
    assert fit_slope([r["d_W"] for r in rows], [r["d_P"] for r in rows]) == pytest.approx(
        0.5, abs=1e-6
    )


def test_fibre_distance_is_at_most_the_obvious_alignment(hand_rows):
    for k, kind in enumerate(STABILITY_KINDS):
        for r in _of(hand_rows, kind):
            rng = np.random.default_rng((0, k))  # the rows' own draws
            base, g, info = perturbation(GAMMA, kind, r["delta"], D, rng)
            assert info["t"] == r["t"]
            assert in_restricted_set(base, D)
            assert r["d_P"] <= float(param_distance(base, g)) * (1 + 1e-12)


def test_rows_are_reproducible_and_follow_the_seed():
    one = stability_rows(GAMMA, D, kinds=("add",), deltas=(1e-2,), seed=3)
    assert one == stability_rows(GAMMA, D, kinds=("add",), deltas=(1e-2,), seed=3)
    assert one[0]["t"] != stability_rows(GAMMA, D, kinds=("add",), deltas=(1e-2,))[0]["t"]


def test_kinks_merge_cancel_and_stay_inside():
    net = ShallowNet(
        [[1.0], [2.0], [1.0], [-1.0], [1.0], [-1.0], [1.0], [0.0], [1.0]],
        [-0.2, -0.4, -0.5, 0.5, 0.4, -0.4, -3.0, 1.0, -1.0],
        [1.0, 0.5, 1.0, -1.0, 0.7, 0.7, 5.0, 2.0, 3.0],
    )
    # 0.2: a duplicate pair, one kink with jump 2; 0.5: rho(x - .5) - rho(.5 - x) = x - .5,
    # no kink; -0.4: 0.7 |x + 0.4|, a kink; then a dead, a constant and a kink on x = D
    assert np.allclose(kinks_1d(net, D), [-0.4, 0.2], rtol=0, atol=1e-15)


def _free_theta(rng, n, dead=1):
    """n - dead live neurons with kinks inside Q (random signs), then ``dead`` dead neurons
    of random sizes 1e-2 .. 2 (so that bounds both below and above 1 occur)."""
    kinks = np.sort(rng.uniform(-0.9, 0.9, n - dead))
    a = rng.uniform(0.3, 2.0, n - dead) * rng.choice([-1.0, 1.0], n - dead)
    c = rng.uniform(0.3, 2.0, n - dead) * rng.choice([-1.0, 1.0], n - dead)
    size = 10.0 ** -rng.uniform(0, 2, dead)
    ad = size * rng.uniform(0.3, 2.0, dead) * rng.choice([-1.0, 1.0], dead)
    bd = -D * np.abs(ad) - size * rng.uniform(0.1, 2.0, dead)
    theta = ShallowNet(
        np.append(a, ad)[:, None],
        np.append(-a * kinks, bd),
        np.append(c, rng.standard_normal(dead)),
        rng.standard_normal(),
    )
    return theta, kinks


def _target(theta, t, sigma, s):
    a = np.vstack([theta.a, [[sigma]]])
    return ShallowNet(a, np.append(theta.b, -sigma * t), np.append(theta.c, s), theta.e)


@pytest.mark.parametrize(("n", "dead"), [(2, 1), (3, 1), (4, 1), (3, 2), (4, 2)])
@pytest.mark.parametrize("seed", range(4))
def test_kink_lower_bound_against_enumeration_and_an_explicit_parametrization(n, dead, seed):
    rng = np.random.default_rng((n, dead, seed))
    theta, kinks = _free_theta(rng, n, dead)
    t, sigma, s = rng.uniform(-0.8, 0.8), rng.choice([-1.0, 1.0]), 10.0 ** -rng.uniform(1, 6)
    g = _target(theta, t, sigma, s)
    lb = kink_lower_bound(theta, g, D)
    assert lb.bound == "lower"

    every = np.append(kinks, t)  # g's kinks, known by construction
    a, b = theta.a[:, 0], theta.b
    for i in range(n):  # the closed form against the breakpoint brute force
        for kappa in every:
            assert abs(b[i] + kappa * a[i]) / (1 + abs(kappa)) == pytest.approx(
                _line_distance(a[i], b[i], kappa), rel=1e-12, abs=1e-15
            )
    enum = min(
        max(abs(b[i] + kappa * a[i]) / (1 + abs(kappa)) for i, kappa in zip(p, every, strict=True))
        for p in itertools.permutations(range(n), every.size)  # injective kinks -> neurons
    )
    assert float(lb) == pytest.approx(enum, rel=1e-12, abs=1e-15)

    # Phi: the dead neuron moved onto the new kink (scaled by k > 0) realizes g at width n
    x = np.linspace(-D, D, 10001)
    for k in (1.0, abs(a[-1]), 0.1):
        phi = ShallowNet(
            np.append(a[:-1], k * sigma)[:, None],
            np.append(b[:-1], -k * sigma * t),
            np.append(theta.c[:-1], s / k),
            theta.e,
        )
        assert np.max(np.abs(phi(x) - g(x))) <= 1e-12
        assert float(lb) <= float(param_distance(theta, phi)) + 1e-15


@pytest.mark.parametrize("seed", range(3))
def test_kink_lower_bound_is_below_a_brute_force_over_the_fibre_at_width_two(seed):
    rng = np.random.default_rng((2, 100 + seed))
    theta, kinks = _free_theta(rng, 2)
    t, sigma, s = rng.uniform(-0.8, 0.8), rng.choice([-1.0, 1.0]), 1e-3
    g = _target(theta, t, sigma, s)
    # width-2 parametrizations of g without a linear term: one neuron per kink, each scaled
    # (a, b, c) -> (k a, k b, c / k), k > 0, in either slot; e is g's
    a0, c0 = theta.a[0, 0], theta.c[0]
    k = np.geomspace(1e-4, 1e4, 40001)
    units = [  # (a, b, c) at k = 1 of the neuron at each kink
        (np.sign(a0), -np.sign(a0) * kinks[0], c0 * abs(a0)),
        (sigma, -sigma * t, s),
    ]
    rows = theta.neurons()

    def best(unit, row):  # min over k of the sup-norm distance to one of theta's neurons
        ua, ub, uc = unit
        return np.min(
            np.maximum.reduce([abs(k * ua - row[0]), abs(k * ub - row[1]), abs(uc / k - row[2])])
        )

    brute = min(
        max(best(units[0], rows[p[0]]), best(units[1], rows[p[1]])) for p in ((0, 1), (1, 0))
    )
    u = np.array(units)  # this phi (k = 1, theta's slot order) realizes g
    phi = ShallowNet(u[:, :1], u[:, 1], u[:, 2], theta.e)
    x = np.linspace(-D, D, 10001)
    assert np.max(np.abs(phi(x) - g(x))) <= 1e-12
    assert float(kink_lower_bound(theta, g, D)) <= brute + 1e-15


def test_more_kinks_than_neurons_has_no_parametrization():
    theta = ShallowNet([[1.0], [-1.0]], [0.2, 0.3], [1.0, 1.0])
    g = _target(theta, 0.6, 1.0, 1e-3)
    assert kink_lower_bound(theta, g, D) == np.inf
    assert free_neuron_rows(theta, D) == []


def test_a_far_free_neuron_keeps_the_bound_constant_and_a_tiny_one_does_not():
    live = ([[1.0], [-1.5]], [0.3, -0.3], [0.8, -1.1])
    far = ShallowNet(live[0] + [[1.0]], live[1] + [-3.0], live[2] + [0.5])
    for seed in range(8):  # new kinks on both sides, both orientations sigma
        for r in free_neuron_rows(far, D, deltas=(1e-1, 1e-4), seed=seed):
            assert r["d_W"] == pytest.approx(r["delta"], rel=1e-12, abs=FLOOR)
    rows = free_neuron_rows(far, D)
    assert [r["delta"] for r in rows] == list(STABILITY_DELTAS)
    for r in rows:
        assert r["d_W"] == pytest.approx(r["delta"], rel=1e-12, abs=FLOOR)
        assert r["free_size"] == 3.0 and r["width"] == 3
        assert r["lower_bound"] >= 1.0  # whichever neuron takes which kink, (1, -3) travels
    p = fit_slope([r["d_W"] for r in rows], [r["lower_bound"] for r in rows])
    assert abs(p) < 0.05
    both = pd.DataFrame(
        [{**r, "network": n, "parametrization": "unrestricted"} for n in "ab" for r in rows]
    )
    (fit,) = stability_exponents(both).to_dict("records")
    assert fit["kind"] == "new kink" and fit["fitted"] and abs(fit["exponent"]) < 0.05

    tiny = ShallowNet(live[0] + [[1e-8]], live[1] + [-2e-8], live[2] + [0.5])
    rows = free_neuron_rows(tiny, D)
    assert rows and all(r["lower_bound"] < 1e-6 for r in rows)
    assert rows[0]["free_size"] == 2e-8


def test_free_neurons_are_dead_silent_or_duplicate():
    # (1, -0.2) and (2, -0.4) a pair; (-1, 0.5) alone; (1, -2) dead; (0.5, 0.1) with c = 0
    theta = ShallowNet(
        [[1.0], [2.0], [-1.0], [1.0], [0.5]], [-0.2, -0.4, 0.5, -2.0, 0.1], [1, 0.5, 1, 1, 0]
    )
    assert free_neurons(theta, D).tolist() == [True, True, False, True, True]
    silent = ShallowNet([[1.0], [0.5]], [-0.2, 0.1], [1.0, 0.0])
    rows = free_neuron_rows(silent, D)
    assert rows and rows[0]["free_size"] == 0.5


def test_a_duplicate_pair_frees_a_neuron():
    dup = ShallowNet([[1.0], [2.0], [-1.0]], [-0.2, -0.4, 0.5], [1.0, 0.5, 1.0])
    rows = free_neuron_rows(dup, D)
    assert rows and np.isfinite([r["lower_bound"] for r in rows]).all()
    assert rows[0]["free_size"] == 1.0  # the smaller of the pair: |(1, -0.2)|_inf


def _synthetic(rng, n_net=5):
    rows = []
    for k in range(n_net):
        x = np.array(STABILITY_DELTAS)
        y = rng.uniform(0.5, 2.0) * x**0.5 * np.exp(0.05 * rng.standard_normal(x.size))
        head = {"network": f"net{k}", "parametrization": "restricted"}
        rows += [
            {**head, "kind": "add", "d_W": xi, "d_P": yi, "d_P_bound": "exact"}
            for xi, yi in zip(x, y, strict=True)
        ] + [  # x within a factor 1.1: it does not follow delta
            {**head, "kind": "scale", "d_W": 0.3 * (1 + 0.1 * xi), "d_P": yi, "d_P_bound": "upper"}
            for xi, yi in zip(rng.uniform(size=x.size), y, strict=True)
        ]
    return pd.DataFrame(rows)


def test_stability_exponents_recover_the_rate_and_flag_constant_x():
    out = stability_exponents(_synthetic(np.random.default_rng(0))).set_index("kind")
    add = out.loc["add"]
    assert add["fitted"] and add["ci_low"] <= add["exponent"] <= add["ci_high"]
    assert add["ci_low"] <= 0.5 <= add["ci_high"] and abs(add["exponent"] - 0.5) < 0.1
    assert add["networks"] == 5 and add["upper_bounds"] == 0
    assert not out.loc["scale", "fitted"] and out.loc["scale", "upper_bounds"] > 0


def test_the_exponent_is_the_asymptotic_one_as_delta_goes_to_zero():
    """A network whose new neuron, at large delta, is matched more cheaply against one of
    its own small neurons: y plateaus at that neuron's size above delta ~ 1e-3 and follows
    delta^(1/2) below. The fit reads the small-delta half (the rate as delta -> 0), not the
    plateau, which would pull p below 1/2."""
    x = np.array(STABILITY_DELTAS)
    y = np.minimum(np.sqrt(x), 0.03)
    rows = pd.DataFrame(
        dict(
            network=np.repeat(["a", "b"], x.size),
            parametrization="restricted",
            kind="add",
            d_W=np.tile(x, 2),
            d_P=np.tile(y, 2) * np.repeat([1.0, 2.0], x.size),
            d_P_bound="exact",
        )
    )
    assert fit_slope(x, y) < 0.4  # all rows: the plateau bends the slope
    e = stability_exponents(rows).iloc[0]
    assert e["exponent"] == pytest.approx(0.5, abs=1e-9)
    assert e["ci_high"] == pytest.approx(0.5, abs=1e-9)
