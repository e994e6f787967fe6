"""The retraining experiment and its control: the start, the control's floor, the exponent
of the travel against the realization's own travel (every row kept), and the bootstrap
interval over networks."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from realspace import in_restricted_set, uniform_distance
from realspace.core.inverse import bootstrap_slope, fit_slope
from realspace.core.problem import network_from_params
from realspace.core.spec import RunSpec
from realspace.report.retraining import FIT_RATIO, retrain_exponents
from realspace.train import TrainOptions, train_shard
from realspace.train.retrain import HEADROOM_SCALE, retrain_start, retrain_table


@pytest.fixture(scope="module")
def trained():
    """A width-8 sin network trained with weight decay: its end point is the regularized
    solution, which retraining toward any g must leave behind."""
    spec = RunSpec(target="sin", width=8, steps=1500, weight_decay=0.01, seed=3)
    result = train_shard([spec], TrainOptions(dtype=torch.float64))
    return spec, {k: v[0] for k, v in result.params.items()}


@pytest.mark.parametrize("restricted", [False, True])
def test_the_start_has_gammas_realization_and_one_neuron_of_headroom(trained, restricted):
    spec, params = trained
    gamma = network_from_params(params, restricted=False)
    start = retrain_start(gamma, spec, restricted)
    assert start.width == spec.width + 1
    # the extra neuron moves f by at most |c| (D |a| + |b|) <= 2 D HEADROOM_SCALE^2
    assert uniform_distance(start, gamma, spec.D) <= 2 * spec.D * HEADROOM_SCALE**2 * (1 + 1e-6)
    if restricted:
        assert in_restricted_set(start, spec.D)


def test_retraining_fits_its_targets_without_weight_decay_and_reports_the_floor(trained):
    spec, params = trained
    rows = pd.DataFrame(
        retrain_table(spec, params, "restricted", ["add", "scale"], [1e-2, 1e-1], 1000, 1e-3)
    )
    assert len(rows) == 4 and rows["floor"].nunique() == 1
    assert rows["d_W"].to_numpy() == pytest.approx(rows["delta"].to_numpy(), rel=1e-9)
    # with the run's weight decay the end point would be the regularized solution for g,
    # at sup distance about lam-sized from g (0.1 - 0.2 for this problem); without it,
    # the targets of d_W = 0.1 are fitted to well below d_W, and the control barely moves
    big = rows[rows["delta"] == 0.1]
    assert (big["fit_d_inf"] <= FIT_RATIO * big["d_W"]).all()
    assert rows["floor"].iloc[0] < 0.02 and rows["floor_fit_d_inf"].iloc[0] < 1e-3
    assert (rows["weight_decay"] == 0.01).all() and (rows["width"] == 8).all()


def test_a_trainer_that_does_not_move_travels_nowhere_and_reaches_no_target(trained):
    """lr 1e-12: the control and every row stay at the start (d_P ~ 0; float64), no target
    is reached (fit error = d_W): the rows say so, none is dropped. The realization's
    travel in W^{1,inf} is not small all the same: a kink moved by 1e-11 changes f' by
    |c_i a_i| on a sliver, so d_W_travel is a neuron's slope jump (at most the largest)."""
    spec, params = trained
    float64 = TrainOptions(dtype=torch.float64)
    rows = pd.DataFrame(
        retrain_table(spec, params, "unrestricted", ["scale"], [1e-2, 1e-1], 50, 1e-12, float64)
    )
    assert (rows["floor"] < 1e-9).all() and (rows["d_P"] < 1e-9).all()
    jumps = np.abs(params["c"] * params["a"][:, 0])
    assert (rows["d_W_travel"] > 1e-3 * jumps.max()).all()
    assert (rows["d_W_travel"] <= jumps.sum() + 1e-9).all()
    assert rows["fit_d_inf"].to_numpy() == pytest.approx(rows["d_W"].to_numpy(), rel=1e-3)
    e = retrain_exponents(rows).iloc[0]
    assert e["rows"] == 2 and e["reached_g"] == 0.0


def _rows(network, d_w, d_p, **extra):
    n = len(d_w)
    base = dict(
        network=network,
        parametrization="restricted",
        kind="add",
        d_W=d_w,
        d_W_travel=d_w,
        d_P=d_p,
        d_P_bound="exact",
        fit_d_inf=0.01 * np.asarray(d_w),
        floor=1e-6,
        r_half=np.asarray(d_p) / np.sqrt(d_w),
    )
    base.update(extra)
    return pd.DataFrame(
        {k: np.broadcast_to(v, n) if np.ndim(v) == 0 else v for k, v in base.items()}
    )


def test_the_exponent_is_fitted_per_kind_against_the_realizations_travel():
    """Two networks on d_P = C x^(1/2), x = d_W_travel (not the nominal d_W, which here is
    ten times larger and constant): p = 1/2 exactly in every resample. A second kind with
    p = 1 is fitted apart. A row at the control's floor and a row that missed g stay in:
    they are reported (reached_g), never dropped."""
    x = np.array([1e-4, 1e-3, 1e-2, 1e-1])
    rows = pd.concat(
        [
            _rows("n0", np.full(4, 1.0), 0.3 * np.sqrt(x), d_W_travel=x),
            _rows("n1", np.full(4, 1.0), 2.0 * np.sqrt(x), d_W_travel=x),
            _rows("n0", x, 0.5 * x, kind="scale"),
            _rows("n1", x, 0.7 * x, kind="scale", fit_d_inf=x),
        ],
        ignore_index=True,
    )
    e = retrain_exponents(rows).set_index("kind")
    assert (e.loc["add", "networks"], e.loc["add", "rows"]) == (2, 8)
    for kind, p in (("add", 0.5), ("scale", 1.0)):
        assert e.loc[kind, "exponent"] == pytest.approx(p, abs=1e-12)
        assert e.loc[kind, "ci_low"] == pytest.approx(p, abs=1e-12)
        assert e.loc[kind, "ci_high"] == pytest.approx(p, abs=1e-12)
    assert e.loc["scale", "reached_g"] == 0.5  # n1's rows fit g no better than d_W
    # a row near the floor stays in and bends the fit: nothing is filtered on d_P
    low = pd.concat([rows, _rows("n1", np.array([1.0]), np.array([1e-6]), d_W_travel=1e-5)])
    bent = retrain_exponents(low).set_index("kind").loc["add"]
    assert bent["rows"] == 9 and bent["exponent"] > 0.55
    assert retrain_exponents(rows.drop(columns="d_W_travel")).empty  # rows before it existed


def test_bootstrap_interval_lies_within_the_slopes_of_every_resample():
    """Three networks with exponents 0.3, 0.5, 0.8: each bootstrap sample is one of the 27
    ordered draws of three networks; the interval lies between the smallest and largest
    slope over all of them, contains the full fit, and is the same for the same seed."""
    rng = np.random.default_rng(0)
    x = np.tile(np.logspace(-4, -1, 4), 3)
    groups = np.repeat(["a", "b", "c"], 4)
    y = x ** np.repeat([0.3, 0.5, 0.8], 4) * np.exp(0.01 * rng.standard_normal(12))
    p, lo, hi, degenerate = bootstrap_slope(x, y, groups, n_boot=500, seed=1)
    every = [
        fit_slope(
            np.concatenate([x[groups == g] for g in draw]),
            np.concatenate([y[groups == g] for g in draw]),
        )
        for draw in itertools.product("abc", repeat=3)
    ]
    assert min(every) <= lo <= p <= hi <= max(every)
    assert lo < 0.45 and hi > 0.6  # the networks disagree: a wide interval
    assert bootstrap_slope(x, y, groups, n_boot=500, seed=1) == (p, lo, hi, degenerate)
    assert degenerate == 0  # every network spans three decades of x
    assert np.isnan(bootstrap_slope(x[:4], y[:4], groups[:4])[1])  # one network: no interval


def test_fit_slope_is_least_squares_in_log_log_and_has_none_across_one_point():
    """Against numpy's polyfit where the fit is well posed; NaN (never a warning: the
    suite turns realspace's warnings into errors) where the x are one point to 1e-12."""
    rng = np.random.default_rng(3)
    x = np.logspace(-5, -1, 9)
    y = 0.7 * x**0.55 * np.exp(0.1 * rng.standard_normal(9))
    ref = np.polyfit(np.log(x), np.log(y), 1)[0]
    assert fit_slope(x, y) == pytest.approx(ref, rel=1e-12)
    near = 1e-3 * (1 + 1e-12 * np.arange(5))  # polyfit: "poorly conditioned"
    assert np.isnan(fit_slope(near, near**0.5))
    apart = 1e-3 * (1 + 1e-6 * np.arange(5))  # distinct at 1e-6: a slope, the exact one
    assert fit_slope(apart, apart**0.5) == pytest.approx(0.5, rel=1e-6)


def test_resamples_without_a_slope_are_counted_not_warned():
    """Network "a" has all its rows at one x: a resample that draws only "a" has no
    slope. The count equals a brute-force recount of the same draws (seeded generator,
    labels sorted), and the interval comes from the rest."""
    x = np.concatenate([np.full(4, 1e-2), np.logspace(-4, -1, 4), np.logspace(-4, -1, 4)])
    groups = np.repeat(["a", "b", "c"], 4)
    y = x**0.5
    n_boot = 2700
    p, lo, hi, degenerate = bootstrap_slope(x, y, groups, n_boot=n_boot, seed=5)
    rng = np.random.default_rng(5)
    only_a = sum(bool((rng.integers(0, 3, 3) == 0).all()) for _ in range(n_boot))
    assert degenerate == only_a and only_a > 50  # about n_boot / 27
    assert lo == pytest.approx(0.5, rel=1e-9) and hi == pytest.approx(0.5, rel=1e-9)
