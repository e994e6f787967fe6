"""Absurd sweeps are refused from their axes, before anything is planned: the run count
comes from the config alone, every size has an upper bound naming its key, and the memory
estimate counts what a network's outputs and teacher add."""

import time
import tracemalloc

import pytest
from factories import sweep_config, write_config
from typer.testing import CliRunner

from realspace.app.cli import app
from realspace.core.spec import RunSpec
from realspace.sweep import plan as plan_module
from realspace.sweep.budget import size_problems
from realspace.sweep.config import ConfigError, parse_config
from realspace.sweep.plan import (
    PlannedCell,
    PlanTooLarge,
    check_plan_size,
    pack_shards,
    plan_cells,
    plan_runs,
)


def refused(doc) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(doc, "c.yaml")
    return str(info.value)


def test_a_hundred_million_seeds_are_refused_in_a_second_with_little_memory():
    doc = sweep_config(seeds=100_000_000)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        msg = refused(doc)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "seeds" in msg and "10000000" in msg, msg
    assert elapsed < 1.0 and peak < 100 * 2**20, (elapsed, peak)


def test_the_cli_refuses_them_before_opening_a_store(tmp_path):
    path = write_config(tmp_path / "huge.yaml", sweep_config(seeds=100_000_000))
    result = CliRunner().invoke(app, ["sweep", str(path)])
    assert result.exit_code == 2, result.output
    assert "seeds" in result.output
    assert not (tmp_path / "mlruns.db").exists()


@pytest.mark.parametrize(
    "doc, key",
    [
        (sweep_config(seeds=10**12), "seeds"),
        (sweep_config(seeds=[0, 2**63]), "seeds[1]"),
        (sweep_config(optimizer={"steps": 2**63}), "optimizer.steps"),
        (sweep_config(optimizer={"steps": [10, 2**63]}), "optimizer.steps"),
        (sweep_config(widths=[4, 10**9]), "widths[1]"),
        (sweep_config(input_dim=10**6), "input_dim"),
        (sweep_config(targets=[{"name": "teacher", "teacher_width": 10**9}]), "targets[0].teac"),
        (sweep_config(targets=[{"name": "teacher_labels", "n_classes": 10**9}]), "targets[0].n_c"),
        (sweep_config(targets=[{"name": "sin", "teacher_seed": 2**63}]), "targets[0].teacher_seed"),
        (sweep_config(data={"n_samples": 2**40}), "data.n_samples"),
        (sweep_config(domain=float("inf")), "domain"),
        (sweep_config(optimizer={"lr": [0.1, float("inf")]}), "optimizer.lr"),
        (sweep_config(weight_decay=float("nan")), "weight_decay"),
        (sweep_config(analysis={"retrain_steps": 10**12}), "analysis.retrain_steps"),
        (sweep_config(analysis={"stability_seeds": 10**9}), "analysis.stability_seeds"),
        (sweep_config(execution={"max_shard_size": 10**12}), "execution.max_shard_size"),
    ],
)
def test_each_absurd_value_is_refused_naming_its_key(doc, key):
    msg = refused(doc)
    assert f"  {key}" in msg, msg


def test_a_grid_in_high_dimension_is_refused_with_the_way_out():
    # 256 samples on a grid in d = 2000: 2 points a side, 2^2000 points (the estimate of
    # its memory used to end in an OverflowError)
    msg = refused(sweep_config(input_dim=2000))
    assert "input_dim = 2000" in msg and "2^2000" in msg and "sampling: uniform" in msg
    cfg = parse_config(sweep_config(input_dim=2000, data={"sampling": "uniform"}))
    assert cfg.input_dim == 2000
    msg = refused(sweep_config(targets=[{"name": "sin", "input_dim": 64}]))
    assert "targets[0].input_dim = 64" in msg


def test_the_product_of_the_axes_is_bounded_even_when_each_axis_is_not():
    # 10^6 seeds and 20 widths: every value within its bound, 2 10^7 networks in all
    msg = refused(sweep_config(seeds=10**6, widths=list(range(1, 11)), targets=[{"name": "sin"}]))
    assert "2e+07 networks" in msg, msg
    parse_config(sweep_config(seeds=10**6, widths=[4], parametrizations=["unrestricted"]))


CONFIGS = [
    sweep_config(),
    sweep_config(seeds=[3, 1, 7], widths=[2, 8], restricted_methods=["intrinsic", "projection"]),
    sweep_config(
        targets=[
            {"name": "sin", "widths": [4], "weight_decay": [0.0, 1e-3]},
            {"name": "teacher", "parametrizations": ["restricted"]},
        ],
        optimizer={"kind": ["adam", "gd"], "lr": [1e-2, 1e-3], "steps": [5, 10]},
        restricted_methods=["intrinsic", "projection"],
        widths=[2, 32],
        seeds=2,
    ),
    sweep_config(targets=[{"name": "gaussian", "parametrizations": ["unrestricted"]}]),
]


@pytest.mark.parametrize("doc", CONFIGS)
def test_the_count_from_the_axes_is_the_plans_length(doc):
    cfg = parse_config(doc)
    assert cfg.run_count() == len(plan_runs(cfg))


def test_points_resolving_to_the_same_runs_count_twice_and_plan_once():
    cfg = parse_config(sweep_config(targets=[{"name": "sin"}, {"name": "sin"}]))
    assert cfg.run_count() == 2 * len(plan_runs(cfg))
    # by_width trains width 2 by projection: the same runs as the projection's
    doc = sweep_config(restricted_methods=["by_width", "projection"], widths=[2, 32])
    cfg = parse_config(doc)
    assert cfg.run_count() == 3 * 2 * 8 and len(plan_runs(cfg)) == 3 * 2 * 8 - 8


def test_a_plan_that_would_not_fit_in_memory_is_refused_before_planning(monkeypatch):
    cfg = parse_config(sweep_config(seeds=10**6, widths=[4], parametrizations=["unrestricted"]))
    with pytest.raises(PlanTooLarge, match=r"1,000,000 networks .* GiB"):
        check_plan_size(cfg, available=2**30)
    check_plan_size(cfg, available=4 * 2**30)  # 1.9 GB fits in 4 GiB

    built = []
    monkeypatch.setattr(plan_module, "default_budget", lambda device: 2**30)
    monkeypatch.setattr(plan_module, "plan_cells", lambda *a: built.append(a))
    with pytest.raises(PlanTooLarge):
        plan_runs(cfg)
    assert not built


def test_a_sweep_whose_analysis_would_not_fit_is_refused_unless_trained_without_it(
    monkeypatch, tmp_path
):
    """Training plans by cell, but the analysis stages plan network by network: with
    them, a sweep over the memory at hand is refused before any service is touched."""
    from realspace.app import service

    cfg = parse_config(sweep_config(seeds=10**6, widths=[4], parametrizations=["unrestricted"]))
    plan = service.plan_sweep(cfg, tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")
    monkeypatch.setattr(plan_module, "default_budget", lambda device: 2**30)
    touched = []
    monkeypatch.setattr(service, "check_services", lambda p: touched.append(p) or 1 / 0)
    with pytest.raises(service.NotStarted, match=r"1,000,000 networks .*--no-analysis"):
        service.run_sweep(plan, progress=False)
    assert not touched
    with pytest.raises(ZeroDivisionError):  # without the analysis it goes on to the services
        service.run_sweep(plan, progress=False, analysis=False)
    assert touched


def test_a_graph_kernel_sweep_without_a_compiler_is_refused_before_any_work(monkeypatch, tmp_path):
    """``execution.kernel: graph`` on a CPU needs the C++ compiler torch.compile builds
    with ($CXX, else g++): without one the sweep is refused when planned, naming it and
    the way out, not shard by shard in the workers."""
    from realspace.app import service

    doc = sweep_config(execution={"kernel": "graph", "device": "cpu"})
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    with pytest.raises(service.NotStarted, match="'no-such-compiler-here' was not found.*auto"):
        service.plan_sweep(doc, tracking_uri=uri)
    assert not (tmp_path / "mlruns.db").exists()
    monkeypatch.setenv("CXX", "sh")  # any program on the PATH stands for one here
    assert service.plan_sweep(doc, tracking_uri=uri).config.execution.kernel == "graph"
    monkeypatch.setenv("CXX", "no-such-compiler-here")  # the default kernel compiles nothing
    service.plan_sweep(sweep_config(execution={"device": "cpu"}), tracking_uri=uri)


def test_ten_million_networks_plan_as_cells_without_a_key_hashed(monkeypatch):
    cfg = parse_config(
        sweep_config(seeds=2_500_000, widths=[4, 8], restricted_methods=["intrinsic"])
    )

    def hashed(*a):
        raise AssertionError("a run key was hashed while planning")

    monkeypatch.setattr(plan_module, "_seeded_keys", hashed)
    tracemalloc.start()
    try:
        plan = plan_cells(cfg)
        shards = pack_shards(plan.segments(), 2**30, workers=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(plan) == 10**7 == cfg.run_count() and len(plan.cells) == 4
    assert sum(len(s) for s in shards) == 10**7
    assert max(len(s) for s in shards) <= 4096
    assert peak < 200 * 2**20  # the bound; about 1.5 MiB measured


def _over_budget(spec: RunSpec, budget: int) -> bool:
    _, problems = size_problems([PlannedCell.of(spec, range(1))], budget)
    return any("needs about" in p for p in problems)


def test_the_memory_estimate_counts_the_outputs_of_a_classifier():
    # 2^16 points at full batch, 10^4 classes: the logits alone are 2^16 10^4 float32,
    # 2.4 GiB, more than a 1 GiB shard
    kw = dict(target="teacher_labels", d=1, width=4, n_samples=2**16, sampling="uniform")
    assert _over_budget(RunSpec(**kw, n_classes=10_000), 2**30)
    assert not _over_budget(RunSpec(**kw, n_classes=3), 2**30)


def test_the_memory_estimate_counts_a_teachers_hidden_layer():
    # a teacher of 2^14 neurons on 2^16 points: its hidden layer is 2^30 float32, 4 GiB
    kw = dict(target="teacher", d=1, width=4, n_samples=2**16, sampling="uniform")
    assert _over_budget(RunSpec(**kw, teacher_width=2**14), 2**30)
    assert not _over_budget(RunSpec(**kw, teacher_width=4), 2**30)
