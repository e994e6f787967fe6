"""The retraining experiment and its controls: the start, the control's floor, which rows
enter the exponent, and the bootstrap interval over networks."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from realspace import in_restricted_set, uniform_distance
from realspace.inverse import bootstrap_slope, fit_slope
from realspace.problem import network_from_params
from realspace.report.retraining import (
    FIT_RATIO,
    FLOOR_RATIO,
    exclusion,
    retrain_exponents,
)
from realspace.spec import RunSpec
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


def test_a_trainer_that_does_not_move_fits_nothing_and_is_left_out(trained):
    """lr 1e-12: the control and every row stay at the start (d_P ~ 0; float64, or the
    float32 rounding of the start, ~1e-7, would be the floor), no target is reached (fit
    error = d_W), so every row is excluded as not fitted."""
    spec, params = trained
    float64 = TrainOptions(dtype=torch.float64)
    rows = pd.DataFrame(
        retrain_table(spec, params, "unrestricted", ["scale"], [1e-2, 1e-1], 50, 1e-12, float64)
    )
    assert (rows["floor"] < 1e-9).all() and (rows["d_P"] < 1e-9).all()
    assert rows["fit_d_inf"].to_numpy() == pytest.approx(rows["d_W"].to_numpy(), rel=1e-3)
    assert (exclusion(rows) == "fit").all()


def _rows(network, d_w, d_p, **extra):
    n = len(d_w)
    base = dict(
        network=network,
        parametrization="restricted",
        kind="add",
        d_W=d_w,
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


def test_rows_are_left_out_for_kink_bound_fit_and_floor():
    d_w = np.array([1e-3, 1e-2, 1e-1, 1e-1, 1e-1, 1e-1])
    rows = _rows("n0", d_w, np.sqrt(d_w))
    rows.loc[2, "kind"] = "kink"
    rows.loc[3, "d_P_bound"] = "upper"
    rows.loc[4, "fit_d_inf"] = 2 * FIT_RATIO * rows.loc[4, "d_W"]
    rows.loc[5, "floor"] = rows.loc[5, "d_P"] / FLOOR_RATIO  # exactly at the limit
    assert exclusion(rows).tolist() == ["", "", "kink", "bound", "fit", "floor"]
    assert (exclusion(rows.drop(columns="floor")) == "no control").all()


def test_the_exponent_of_controlled_rows_and_its_interval_over_networks():
    """Two networks on d_P = C d_W^(1/2) with their own C: p = 1/2 exactly, in every
    resample; rows left out (a floor-level one) do not bend it."""
    d_w = np.array([1e-4, 1e-3, 1e-2, 1e-1])
    rows = pd.concat(
        [
            _rows("n0", d_w, 0.3 * np.sqrt(d_w)),
            _rows("n1", d_w, 2.0 * np.sqrt(d_w)),
            _rows("n1", np.array([1e-5]), np.array([1e-6]), floor=1e-6),
        ],
        ignore_index=True,
    )
    e = retrain_exponents(rows).iloc[0]
    assert (e["networks"], e["rows"], e["excluded_floor"]) == (2, 8, 1)
    assert e["exponent"] == pytest.approx(0.5, abs=1e-12)
    assert e["ci_low"] == pytest.approx(0.5, abs=1e-12)
    assert e["ci_high"] == pytest.approx(0.5, abs=1e-12)


def test_bootstrap_interval_lies_within_the_slopes_of_every_resample():
    """Three networks with exponents 0.3, 0.5, 0.8: each bootstrap sample is one of the 27
    ordered draws of three networks; the interval lies between the smallest and largest
    slope over all of them, contains the full fit, and is the same for the same seed."""
    rng = np.random.default_rng(0)
    x = np.tile(np.logspace(-4, -1, 4), 3)
    groups = np.repeat(["a", "b", "c"], 4)
    y = x ** np.repeat([0.3, 0.5, 0.8], 4) * np.exp(0.01 * rng.standard_normal(12))
    p, lo, hi = bootstrap_slope(x, y, groups, n_boot=500, seed=1)
    every = [
        fit_slope(
            np.concatenate([x[groups == g] for g in draw]),
            np.concatenate([y[groups == g] for g in draw]),
        )
        for draw in itertools.product("abc", repeat=3)
    ]
    assert min(every) <= lo <= p <= hi <= max(every)
    assert lo < 0.45 and hi > 0.6  # the networks disagree: a wide interval
    assert bootstrap_slope(x, y, groups, n_boot=500, seed=1) == (p, lo, hi)
    assert np.isnan(bootstrap_slope(x[:4], y[:4], groups[:4])[1])  # one network: no interval
