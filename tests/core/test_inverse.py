"""Inverse-stability experiments against closed forms and the pathology numbers
of docs/science.md."""

import time

import numpy as np
import pytest
from netgen import random_net

from realspace import ShallowNet, canonical_form, sobolev_distance
from realspace.core.inverse import (
    SlopeInterval,
    bootstrap_slope,
    fit_slope,
    pathology_table,
    perturb,
    ratios,
    retrain_distances,
    seed_pair_table,
)

D = 2.0


@pytest.fixture(scope="module")
def table():
    rows = pathology_table(12, D)
    return {(r["family"], int(r["n"])): r for r in rows}


def test_the_stage_covers_every_family_at_n_2_to_4096(table):
    assert {f for f, _ in table} == {"P0", "P1", "P1b", "P2", "P3", "P4"}
    assert {n for _, n in table} == {2**k for k in range(1, 13)}


@pytest.mark.parametrize("n", [2, 64, 4096])
def test_pathology_numbers_of_science_md(table, n):
    p1, p1b, p2, p3, p4, p0 = (table[(f, n)] for f in ("P1", "P1b", "P2", "P3", "P4", "P0"))
    assert p1["d_W"] == pytest.approx(2 / n, rel=1e-12) and p1["d_P_raw"] >= n
    assert p1b["d_W"] == pytest.approx(2 / n, rel=1e-12)
    assert p1b["d_P_raw"] == pytest.approx(2 * n**-0.5, rel=1e-12)
    assert p1b["r_half_raw"] == pytest.approx(np.sqrt(2), rel=1e-12)
    assert p1b["r_one_raw"] == pytest.approx(n**0.5, rel=1e-12)  # grows like sqrt(n)
    assert p2["d_W"] == pytest.approx(2 / n, rel=1e-12) and p2["d_P_raw"] >= 1
    assert p3["d_W"] == pytest.approx(2 / n, rel=1e-12) and p3["d_P_raw"] >= 2 * D
    assert p4["d_W"] == pytest.approx(1 / n, rel=1e-12) and p4["d_P_raw"] >= 0.5
    assert p0["d_inf"] <= 1 / n + 1e-15


def test_raw_ratios_blow_up_at_the_predicted_rates_and_stay_bounded_on_omega(table):
    def series(f, col):
        ns = [2**k for k in range(6, 13)]
        return ns, [table[(f, n)][col] for n in ns]

    assert fit_slope(*series("P1", "r_half_raw")) == pytest.approx(1.5, abs=0.02)
    for f in ("P2", "P3", "P4"):
        assert fit_slope(*series(f, "r_half_raw")) == pytest.approx(0.5, abs=0.02)
    for f in ("P0", "P1", "P1b", "P2", "P3", "P4"):
        assert fit_slope(*series(f, "r_half_canonical")) <= 0.02


def test_fit_slope_is_exact_on_a_power_law_and_its_tail():
    x = np.geomspace(1, 1e4, 9)
    assert fit_slope(x, 7 * x**-0.75) == pytest.approx(-0.75, abs=1e-12)
    y = np.where(x < 100, 1.0, x / 100) ** 2  # flat start, then a square law
    assert fit_slope(x, y, tail=0.5) == pytest.approx(2.0, abs=1e-12)
    assert np.isnan(fit_slope([1.0], [1.0]))


def test_ratios():
    assert ratios(2.0, 4.0) == {"r_half": 1.0, "r_one": 0.5}
    assert ratios(1.0, 0.0)["r_half"] == np.inf


@pytest.mark.parametrize("kind", ["add", "scale"])
@pytest.mark.parametrize("delta", [1e-4, 1e-2, 1e-1])
def test_perturbations_sit_at_the_requested_sobolev_distance(kind, delta):
    rng = np.random.default_rng(3)
    net = random_net(rng, 6, 1)
    g, d_w = perturb(net, kind, delta, 1.0, np.random.default_rng(0))
    assert d_w == pytest.approx(delta, rel=1e-9)
    assert float(sobolev_distance(net, g, 1.0)) == pytest.approx(delta, rel=1e-9)


def test_moving_a_kink_costs_its_slope_jump_in_w1inf():
    net = random_net(np.random.default_rng(4), 5, 1)
    can = canonical_form(net, 1.0)
    gamma = np.abs(can.c * can.a[:, 0])
    g, d_w = perturb(net, "kink", 1e-6, 1.0, np.random.default_rng(0))
    assert d_w >= gamma[gamma > 0].min() * (1 - 1e-9)


def test_a_network_and_its_canonical_form_are_at_sobolev_distance_zero():
    """Regression: one kink computed two ways used to leave a zero-width piece whose slope
    difference counted as the whole jump."""
    for seed in range(200):
        net = random_net(np.random.default_rng(seed), 8, 1)
        assert float(sobolev_distance(net, canonical_form(net, 1.0), 1.0)) < 1e-9


def test_seed_pairs_are_the_closest_and_the_fibre_distance_ignores_reparametrization():
    rng = np.random.default_rng(5)
    nets = [random_net(rng, 4, 1) for _ in range(4)]
    same = canonical_form(nets[0], 1.0)  # a second parametrization of net 0's realization
    rows = seed_pair_table([*nets, same], 1.0, closest=3)
    d = [r["d_W"] for r in rows]
    assert d == sorted(d) and d[0] < 1e-9
    assert (rows[0]["i"], rows[0]["j"]) == (0, 4)
    assert rows[0]["d_P_canonical"] < 1e-9  # one realization, one fibre


def _same_realization_other_parameters(net: ShallowNet, rng) -> ShallowNet:
    """``net`` with each neuron rescaled, (a, b, c) -> (s a, s b, c / s) with s > 0, neuron 0
    flipped, c rho(z) = c rho(-z) + c z with c z moved into (w, e), and the neurons permuted
    (built by hand): one realization, other parameters, the width kept as retraining does."""
    s = rng.uniform(0.3, 3.0, net.width)
    a, b, c = s[:, None] * net.a, s * net.b, net.c / s
    w, e = net.linear + c[0] * a[0], net.e + c[0] * b[0]
    a[0], b[0] = -a[0], -b[0]
    perm = rng.permutation(net.width)
    return ShallowNet(a[perm], b[perm], c[perm], e, w)


def test_retrain_distances_use_the_fibre_on_omega():
    """A restricted run's travel is measured up to the symmetries of the realization: an
    end point that is the start rescaled, flipped and permuted has the start's realization,
    so it lies in the start's fibre and travelled 0 (to rounding), while its raw parameters
    are far from the start's (the unrestricted measure, d_P > 0)."""
    rng = np.random.default_rng(6)
    start = canonical_form(random_net(rng, 4, 1), 1.0)
    end = _same_realization_other_parameters(start, rng)
    x = np.linspace(-1.0, 1.0, 2001)[:, None]
    np.testing.assert_allclose(end(x), start(x), rtol=0, atol=1e-12)  # one realization
    assert not np.allclose(end.a, start.a)
    dist = retrain_distances(start, end, start, 1.0, restricted=True)
    assert dist["d_P"] == pytest.approx(0.0, abs=1e-12), dist
    assert dist["d_W_travel"] == pytest.approx(0.0, abs=1e-12)
    assert dist["fit_d_inf"] == pytest.approx(0.0, abs=1e-12)
    raw = retrain_distances(start, end, start, 1.0, restricted=False)
    assert raw["d_P"] > 0.1, raw
    assert raw["d_W_travel"] == dist["d_W_travel"]


def _bootstrap_by_scans(x, y, groups, n_boot, seed):
    """bootstrap_slope as it was: each group's members by a scan of every point."""
    p = fit_slope(x, y)
    labels = np.unique(groups)
    if labels.size < 2:
        return SlopeInterval(p, float("nan"), float("nan"), 0)
    members = [np.flatnonzero(groups == g) for g in labels]
    rng = np.random.default_rng(seed)
    slopes = []
    for _ in range(n_boot):
        idx = np.concatenate([members[k] for k in rng.integers(0, labels.size, labels.size)])
        slopes.append(fit_slope(x[idx], y[idx]))
    slopes = np.array(slopes)
    slopes = slopes[np.isfinite(slopes)]
    if slopes.size < n_boot / 2:
        return SlopeInterval(p, float("nan"), float("nan"), n_boot - slopes.size)
    lo, hi = np.percentile(slopes, [2.5, 97.5])
    return SlopeInterval(p, float(lo), float(hi), n_boot - slopes.size)


def test_bootstrap_groups_networks_by_one_sort():
    """The same intervals, to the last bit, as a scan per group; and 20,000 networks (their
    labels, strings) in well under the 40 s the scans take."""
    rng = np.random.default_rng(0)
    for trial in range(30):
        n, networks = int(rng.integers(1, 200)), int(rng.integers(1, 30))
        x = np.exp(rng.standard_normal(n))
        y = np.sqrt(x) * np.exp(0.1 * rng.standard_normal(n))
        names = np.array([f"net {k}" for k in range(networks)], dtype=object)
        groups = names[rng.integers(0, networks, n)] if trial % 2 else rng.integers(0, 9, n)
        got = bootstrap_slope(x, y, groups, 100, seed=trial)
        want = _bootstrap_by_scans(x, y, groups, 100, seed=trial)
        assert np.array(got).tobytes() == np.array(want).tobytes()
    names = np.array([f"sin w8 seed {k}" for k in range(20_000)], dtype=object)
    x = np.exp(rng.standard_normal(100_000))
    start = time.perf_counter()
    bootstrap_slope(x, np.sqrt(x), names[rng.integers(0, names.size, x.size)], 3)
    assert time.perf_counter() - start < 10
