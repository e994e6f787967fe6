"""The pathology numbers of docs/science.md (d = 1, D = 2), asserted exactly."""

import numpy as np
import pytest

from realspace import (
    canonical_form,
    fibre_distance,
    in_restricted_set,
    param_distance,
    pathology,
    sobolev_distance,
    uniform_distance,
)

D = 2.0
NS = [10, 100, 1000]

# name -> (d_W(n), lower bound on d_P of the aligned parametrizations)
NUMBERS = {
    "P1": (lambda n: 2 / n, lambda n: n),
    "P2": (lambda n: 2 / n, lambda n: 1.0),
    "P3": (lambda n: 2 / n, lambda n: 2 * D),
    "P4": (lambda n: 1 / n, lambda n: 0.5),
    "P1b": (lambda n: 2 / n, lambda n: 2 * n**-0.5),
}


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("name", sorted(NUMBERS))
def test_sobolev_distance_and_parameter_gap(name, n):
    gamma, g = pathology(name, n, D)
    d_w_expected, d_p_lower = NUMBERS[name]
    d_w = sobolev_distance(gamma, g, D)
    assert d_w.exact
    assert d_w == pytest.approx(d_w_expected(n), rel=1e-12, abs=0)
    assert param_distance(gamma, g) >= d_p_lower(n) * (1 - 1e-15)


@pytest.mark.parametrize("n", NS)
def test_p1_balanced_ratios(n):
    gamma, g = pathology("P1b", n, D)
    d_w, d_p = sobolev_distance(gamma, g, D), param_distance(gamma, g)
    assert d_p == pytest.approx(2 * n**-0.5, rel=1e-14)
    assert d_p / np.sqrt(d_w) == pytest.approx(np.sqrt(2), rel=1e-12)  # r_1/2 constant
    assert d_p / d_w == pytest.approx(np.sqrt(n), rel=1e-12)  # r_1 grows like sqrt(n)
    # With the free affine part the fibre of g contains Gamma's neuron: only w differs.
    assert fibre_distance(gamma, g, D) == pytest.approx(1 / n, rel=1e-12)


@pytest.mark.parametrize("n", NS)
def test_p0_uniform_norm_pathology(n):
    gamma, g = pathology("P0", n, D)
    assert in_restricted_set(gamma, D) and in_restricted_set(g, D)
    d_inf = uniform_distance(gamma, g, D)
    assert d_inf == pytest.approx(1 / n - 1 / n**3, rel=1e-12) and d_inf <= 1 / n
    assert sobolev_distance(gamma, g, D) == pytest.approx(n - 1 / n, rel=1e-12)
    for net in (g, canonical_form(g, D)):
        assert np.max(np.abs(net.c) * np.abs(net.a[:, 0])) >= n / 2
    # balanced: |c a| >= n/2 forces an entry >= sqrt(n/2), far from Gamma's n^-1/2 entries
    assert param_distance(gamma, g) >= np.sqrt(n / 2) - n**-0.5


@pytest.mark.parametrize("name", sorted(NUMBERS))
def test_raw_ratios_blow_up_as_predicted(name):
    """Unrestricted r_1/2 grows: P1 like n^{3/2}, P2-P4 like n^{1/2}."""
    rates = {"P1": 1.5, "P2": 0.5, "P3": 0.5, "P4": 0.5, "P1b": 0.0}
    r = []
    for n in (1e2, 1e4):
        gamma, g = pathology(name, n, D)
        r.append(param_distance(gamma, g) / np.sqrt(sobolev_distance(gamma, g, D)))
    slope = np.log10(r[1] / r[0]) / 2
    assert slope == pytest.approx(rates[name], abs=0.02)
