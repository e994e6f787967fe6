"""A shard's records, built for the whole shard at once, against the records built network
by network as before: every field equal, bit for bit, on small trained shards."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from realspace.core.canonical import canonical_form
from realspace.core.census import degeneracy_census
from realspace.core.nets import ShallowNet
from realspace.core.problem import make_data, network_from_params
from realspace.core.restricted import in_restricted_set, restricted_set_margins
from realspace.core.targets import classification_scores
from realspace.train import (
    RunRecord,
    RunSpec,
    TrainOptions,
    build_records,
    certify,
    polish,
    train_shard,
)
from realspace.train import _shard_data as shard_data
from realspace.train.record import canonical_objective
from realspace.train.state import RunStatus


def old_build_records(result, certificates, data=None, polish=None):
    """build_records as it was: every field computed network by network."""
    records = []
    for m, spec in enumerate(result.specs):
        params = {k: v[m] for k, v in result.params.items()}
        net = network_from_params(params, spec.has_linear)
        cert = certificates[m]
        canonical = canonical_form(net, spec.D)
        keep = result.history_step[m] >= 0
        scores = (float("nan"), float("nan"))
        if spec.loss in ("logistic", "cross_entropy"):
            scores = classification_scores(net, *(make_data(spec) if data is None else data[m]))
        records.append(
            RunRecord(
                spec=spec,
                status=RunStatus(int(result.status[m])).label,
                steps=int(result.steps[m]),
                diverged_step=int(result.diverged_step[m]),
                loss=cert["loss"],
                objective=cert["objective"],
                grad_norm=cert["grad_norm"],
                min_eig=cert["min_eig"],
                eig_method=cert["eig_method"],
                certified=cert["certified"],
                near_kink=cert["near_kink"],
                min_kink_distance=cert["min_kink_distance"],
                params=params,
                canonical=canonical,
                margins=restricted_set_margins(net, spec.D),
                history_step=result.history_step[m][keep],
                history_loss=result.history_loss[m][keep],
                projections={k: int(v[m]) for k, v in result.counts.items()},
                census=degeneracy_census(net, spec.D, canonical=canonical),
                dtype=result.dtype,
                device=result.device,
                canonical_objective=canonical_objective(
                    canonical, spec, None if data is None else data[m]
                ),
                canonical_member=in_restricted_set(canonical, spec.D),
                accuracy=scores[0],
                normalized_margin=scores[1],
                **({} if polish is None else polish.fields(m)),
            )
        )
    return records


def old_summary(record):
    """RunRecord.summary as it was."""
    m = {k: v for k, v in record.margins.items() if np.ndim(v) == 0}
    out = {k: getattr(record, k) for k in SUMMARY_FIELDS}
    out.update({f"proj_{k}": int(v) for k, v in record.projections.items()})
    out.update({f"census_{k}": v for k, v in record.census.items()})
    out.update(
        {
            f"margin_{k}": (bool(v) if isinstance(v, bool | np.bool_) else float(v))
            for k, v in m.items()
        }
    )
    return out


SUMMARY_FIELDS = (
    "status steps diverged_step loss objective grad_norm min_eig eig_method certified "
    "near_kink min_kink_distance dtype device canonical_objective canonical_member accuracy "
    "normalized_margin objective_before_polish polish_iterations"
).split()


def identical(got, want, what):
    """The same value bit for bit (NaN where NaN, the signs of zeros too), of the same type;
    dicts key by key in the same order, networks array by array."""
    if isinstance(want, dict):
        assert list(got) == list(want), what
        for k in want:
            identical(got[k], want[k], f"{what}.{k}")
    elif isinstance(want, ShallowNet):
        for k in ("a", "b", "c", "e", "w"):
            identical(getattr(got, k), getattr(want, k), f"{what}.{k}")
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype, what
        np.testing.assert_array_equal(got, want, err_msg=what)
        if want.dtype.kind == "f":
            number = ~np.isnan(want)
            assert np.array_equal(np.signbit(got[number]), np.signbit(want[number])), what
    else:
        assert type(got) is type(want), (what, type(got), type(want))
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(got), what
        else:
            assert got == want, (what, got, want)
            if isinstance(want, float):
                assert math.copysign(1.0, got) == math.copysign(1.0, want), what


FIELDS = [f.name for f in dataclasses.fields(RunRecord) if f.name != "_"]
F32, F64 = TrainOptions(dtype=torch.float32), TrainOptions(dtype=torch.float64)
SIN = dict(target="sin", d=1, n_samples=32, steps=30)

SHARDS = {
    "unrestricted w4": ([RunSpec(**SIN, width=4, seed=s) for s in range(24)], F32),
    "unrestricted w8": ([RunSpec(**SIN, width=8, seed=s) for s in range(24)], F32),
    "intrinsic w4": (
        [RunSpec(**SIN, width=4, parametrization="restricted", seed=s) for s in range(24)],
        F32,
    ),
    "intrinsic w8": (
        [RunSpec(**SIN, width=8, parametrization="restricted", seed=s) for s in range(24)],
        F32,
    ),
    # data per seed, weight decays, a linear term and two domains in one shard
    "decayed, noisy, linear, two domains": (
        [
            RunSpec(
                **{**SIN, "sampling": "uniform"},
                width=6,
                noise=0.1,
                weight_decay=1e-2 * (s % 3),
                linear_term=True,
                D=1.0 + s % 2,
                seed=s,
            )
            for s in range(16)
        ],
        F32,
    ),
    "projection d=2": (
        [
            RunSpec(
                target="teacher",
                teacher_width=3,
                d=2,
                n_samples=25,
                steps=30,
                width=5,
                parametrization="restricted",
                restricted_method="projection",
                seed=s,
            )
            for s in range(12)
        ],
        F32,
    ),
    "logistic": (
        [
            RunSpec(
                target="teacher_labels", teacher_width=3, n_samples=32, steps=30, width=4, seed=s
            )
            for s in range(12)
        ],
        F32,
    ),
    "cross-entropy (per network)": (
        [
            RunSpec(target="spirals", n_classes=3, d=2, n_samples=30, steps=20, width=5, seed=s)
            for s in range(4)
        ],
        F32,
    ),
    "polished": ([RunSpec(**SIN, width=4, polish=5, seed=s) for s in range(6)], F64),
}


@pytest.mark.parametrize("name", list(SHARDS))
def test_records_equal_those_built_network_by_network(name):
    specs, options = SHARDS[name]
    data = shard_data(specs)
    result = train_shard(specs, options, data=data)
    result, polished = polish(result, data)
    certificates = certify(result, data=data)
    if not specs[0].has_linear:  # a stored w is ignored where w = 0 is fixed
        result.params["w"] = np.random.default_rng(0).normal(size=result.params["w"].shape)
    want = old_build_records(result, certificates, data, polished)
    for given in (data, None):  # None: each run's data drawn again
        got = build_records(result, certificates, given, polished)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            for field in FIELDS:
                identical(getattr(g, field), getattr(w, field), f"{name} {w.spec.seed} {field}")
            identical(g.summary(), old_summary(w), f"{name} {w.spec.seed} summary")
    members = [r.canonical_member for r in want]
    assert any(members) or name == "cross-entropy (per network)"


def test_records_built_a_few_networks_at_a_time_are_the_same(monkeypatch):
    """The shard split into stacked calls of 3 networks (the last one shorter), in two
    domains: each network's record is its own."""
    import realspace.train.record as record

    specs = [RunSpec(**SIN, width=4, D=1.0 + (s % 3 == 0), seed=s) for s in range(11)]
    data = shard_data(specs)
    result = train_shard(specs, F32, data=data)
    certificates = certify(result, data=data)
    want = build_records(result, certificates, data)
    N, n = 4, specs[0].n_points()
    monkeypatch.setattr(record, "_STACK_ENTRIES", 3 * (N * N * 2 + n * N))
    got = build_records(result, certificates, data)
    for g, w in zip(got, want, strict=True):
        for field in FIELDS:
            identical(getattr(g, field), getattr(w, field), f"{w.spec.seed} {field}")


def test_runs_share_a_data_set_exactly_when_their_data_do_not_depend_on_the_seed():
    def spec(**kw):
        return RunSpec(**{**SIN, "width": 4, **kw})

    specs = [
        *(spec(seed=s) for s in range(3)),  # a grid without noise: one set
        *(spec(seed=s, n_samples=16) for s in range(2)),  # another cell: its own set
        *(spec(seed=s, sampling="uniform") for s in range(2)),  # drawn from each seed
        *(spec(seed=s, noise=0.1) for s in range(2)),  # noise from each seed
        *(RunSpec(target="spirals", d=2, n_samples=20, seed=s) for s in range(2)),  # one set
    ]
    data = shard_data(specs)
    groups = [[i for i, xy in enumerate(data) if xy is one] for one in data]
    assert [g[0] for g in groups] == [0, 0, 0, 3, 3, 5, 6, 7, 8, 9, 9]
    for s, (x, y) in zip(specs, data, strict=True):
        want = make_data(s)
        assert np.array_equal(x, want[0]) and np.array_equal(y, want[1])
        assert not x.flags.writeable and not y.flags.writeable
