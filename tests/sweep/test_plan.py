import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from factories import sweep_config

from realspace.core.spec import RunSpec
from realspace.sweep.config import ConfigError, load_config, parse_config
from realspace.sweep.memory import bytes_per_network
from realspace.sweep.plan import (
    MIN_SPLIT,
    Segment,
    cell_key,
    network_work,
    pack_shards,
    plan_cells,
    plan_runs,
    run_key,
    sweep_key,
)

DOC = sweep_config(
    name="p",
    targets=[{"name": "sin"}, {"name": "teacher", "teacher_width": 3}],
    widths=[2, 8, 32],
    seeds=4,
    optimizer={"lr": [0.01, 0.03]},
    weight_decay=[0.0, 1e-3],
)

PROBE = """
import json, sys
from realspace.sweep.config import parse_config
from realspace.sweep.plan import plan_runs
print(json.dumps([r.key for r in plan_runs(parse_config(json.loads(sys.argv[1])))]))
"""


def test_plan_is_the_product_of_the_axes_with_unique_keys():
    runs = plan_runs(parse_config(DOC))
    assert len(runs) == 2 * 2 * 3 * 2 * 2 * 4
    assert len({r.key for r in runs}) == len(runs)


def test_planned_keys_are_the_run_keys_of_fully_built_specs():
    """The planner fills each seed into a key template and copies the spec per seed;
    both must agree with a spec built (and validated) from scratch and hashed alone."""
    for run in plan_runs(parse_config({**DOC, "seeds": [0, 3, 11, 250]})):
        fresh = RunSpec.from_dict(run.spec.to_dict())
        assert fresh == run.spec and run_key(fresh) == run.key


def test_cells_group_the_seeds_of_one_grid_point():
    runs = plan_runs(parse_config(DOC))
    cells = {}
    for r in runs:
        cells.setdefault(cell_key(r.spec), []).append(r.spec)
    assert len(cells) == len(runs) // 4  # every axis but the seed
    for specs in cells.values():
        assert sorted(s.seed for s in specs) == [0, 1, 2, 3]
        assert len({RunSpec.from_dict({**s.to_dict(), "seed": 0}) for s in specs}) == 1


def test_a_plan_holds_cells_whose_runs_are_the_expanded_plans_in_order():
    """plan_cells builds no run; its cells, expanded seed by seed, are plan_runs (keys,
    specs and order), each cell's key is the cell_key of each of its runs, and a seed
    found in a cell's tables is exactly its run's key found there."""
    for doc in (DOC, {**DOC, "seeds": [7, 0, 250]}):
        plan = plan_cells(parse_config(doc))
        runs = plan_runs(parse_config(doc))
        assert [(r.key, r.spec) for r in plan] == [(r.key, r.spec) for r in runs]
        assert len(plan) == len(runs) and len(plan.cells) == len(runs) // len(plan.cells[0])
        for cell in plan.cells:
            assert {cell_key(r.spec) for r in cell.runs()} == {cell.key}
            assert [run_key(r.spec) for r in cell.runs()] == cell.keys()
        cell = plan.cells[-1]
        seeds = list(cell.seeds)
        stored = [seeds[-1], seeds[0], seeds[0], 10**6]  # a repeat and a foreign seed
        found = cell.found(stored)
        assert found.tolist() == [s in stored for s in seeds]
        assert not cell.found(None).any() and not cell.found([]).any()


def test_shards_of_pending_segments_hold_exactly_the_pending_runs():
    plan = plan_cells(parse_config(DOC))
    first, second = plan.cells[0], plan.cells[5]
    pending = [Segment(first, (1, 3)), Segment(second, second.seeds[2:])]
    shards = pack_shards(pending, 2**30, max_size=3)
    got = sorted(r.key for s in shards for r in s.runs)
    assert got == sorted(first.keys((1, 3)) + second.keys(second.seeds[2:]))
    assert all(len(s) <= 3 for s in shards)


def test_keys_are_stable_across_processes_and_hash_seeds():
    keys = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps(DOC)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        keys.append(json.loads(out.stdout))
    assert keys[0] == keys[1] == [r.key for r in plan_runs(parse_config(DOC))]


def test_key_depends_on_every_field_and_on_nothing_else():
    spec = RunSpec(target="sin", width=4, seed=1)
    assert run_key(spec) == run_key(RunSpec(target="sin", width=4, seed=1))
    for change in (
        {"seed": 2},
        {"lr": 0.02},
        {"width": 5},
        {"parametrization": "restricted"},
        {"target_params": (("freq", 2.0),)},
    ):
        assert run_key(RunSpec(**{**spec.to_dict(), "target_params": (), **change})) != run_key(
            spec
        )


def test_shards_fit_the_budget_and_hold_one_shape():
    runs = plan_runs(parse_config(DOC))
    segments = plan_cells(parse_config(DOC)).segments()
    budget = 20 * 2**20
    shards = pack_shards(segments, budget, max_size=50)
    assert sum(len(s.runs) for s in shards) == len(runs)
    assert len({r.key for s in shards for r in s.runs}) == len(runs)
    for s in shards:
        assert len({r.spec.shape_key() for r in s.runs}) == 1
        assert len(s.runs) <= 50
        assert len(s.runs) == 1 or len(s.runs) * bytes_per_network(s.runs[0].spec) <= budget
    assert [s.id for s in shards] == [s.id for s in pack_shards(segments, budget, max_size=50)]
    assert [len(s) for s in shards] == [len(s.runs) for s in shards]


def _work(shard) -> float:
    return sum(network_work(r.spec) for r in shard.runs)


def test_shards_balance_the_work_and_come_largest_first():
    """One shape is most of the work (width 256 against 2 and 8): it is split into parts
    of about the share per_worker * workers gives each shard, the light shapes are not
    split, and shards come in order of decreasing work (longest first)."""
    doc = sweep_config(name="b", widths=[2, 8, 256], seeds=40)
    runs = plan_runs(parse_config(doc))
    segments = plan_cells(parse_config(doc)).segments()
    whole = pack_shards(segments, 2**40, per_worker=0)
    assert len(whole) == 6  # one per (width, parametrization)
    max_shape = max(whole, key=_work).runs[0].spec.shape_key()
    shards = pack_shards(segments, 2**40, workers=2, per_worker=4)
    total = sum(network_work(r.spec) for r in runs)
    share = total / 8
    assert sorted(r.key for s in shards for r in s.runs) == sorted(r.key for r in runs)
    for s in shards:
        assert len({r.spec.shape_key() for r in s.runs}) == 1
        assert _work(s) <= 1.5 * share
    light = [s for s in whole if _work(s) < share / 2]
    assert light and all(any(s.runs == w.runs for s in shards) for w in light)
    works = [_work(s) for s in shards]
    assert works == sorted(works, reverse=True)
    heavy = [len(s.runs) for s in shards if s.runs[0].spec.shape_key() == max_shape]
    assert len(heavy) >= 4 and max(heavy) - min(heavy) <= 1
    assert [s.id for s in shards] == [s.id for s in pack_shards(segments, 2**40, workers=2)]


def test_shapes_too_small_to_repay_a_task_are_not_split():
    """Four tiny networks over 8 shares: each shape stays one shard (a shard costs a task)."""
    doc = sweep_config(widths=[2], seeds=2, optimizer={"steps": 60})
    runs = plan_runs(parse_config(doc))
    assert all(network_work(r.spec) * 2 < MIN_SPLIT for r in runs)
    segments = plan_cells(parse_config(doc)).segments()
    assert len(pack_shards(segments, 2**40, workers=2, per_worker=4)) == 2


def test_network_work_grows_with_what_a_step_computes():
    base = RunSpec(target="sin", width=16, seed=0)
    double = {"steps": 2 * base.steps}
    assert network_work(RunSpec(**{**base.to_dict(), "target_params": (), **double})) == (
        2 * network_work(base)
    )
    wider = RunSpec(**{**base.to_dict(), "target_params": (), "width": 64})
    restricted = RunSpec(**{**base.to_dict(), "target_params": (), "parametrization": "restricted"})
    assert network_work(wider) > network_work(base)
    assert network_work(restricted) > network_work(base)


def test_unrestricted_keys_are_those_of_before_the_restricted_method_axis():
    """Unrestricted runs have no restricted method: their keys (pinned from before the
    axis existed) must not change, so that their results are found again."""
    assert run_key(RunSpec()) == "f8522908a61582d77c7efa37"
    spec = RunSpec(target="teacher", width=64, seed=3, weight_decay=0.01)
    assert run_key(spec) == "28f0d18884132f16d4cab96a"
    assert cell_key(RunSpec(width=8)) == "4c373b0f24638c4d"
    assert "restricted_method" not in RunSpec().to_dict()


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize(
    "name, runs, sweep, run_keys, cell_keys",
    [
        ("default", 384, "5c0c87b36dc693a6222173e6", "52765c6904308b9f", "02232b1670a156c9"),
        ("paper", 31232, "a49113cf3082f8d44fa955d0", "d6296c8a79cc877b", "1dc8ed4fe6505bba"),
    ],
)
def test_keys_of_the_shipped_configs_are_those_of_before_teacher_rows(
    name, runs, sweep, run_keys, cell_keys
):
    """Pinned before the Gaussian teacher's rows became a field: a resumed sweep must find
    its runs (paper.yaml has a gaussian target with the default rows). The float64 polish,
    on by default for weight-decay runs since, changes what those runs record and so their
    keys and cells: without it (``optimizer.polish: 0``) every key is as before; with it
    only the weight-decay runs' keys and cells differ, and the sweep's key is the same."""
    doc = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    unpolished = parse_config({**doc, "optimizer": {**doc.get("optimizer", {}), "polish": 0}})
    planned = plan_runs(unpolished)

    def digest(keys):
        return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]

    assert len(planned) == runs and sweep_key(load_config(CONFIGS / f"{name}.yaml")) == sweep
    assert digest(r.key for r in planned) == run_keys
    assert digest(sorted({cell_key(r.spec) for r in planned})) == cell_keys
    polished = plan_runs(load_config(CONFIGS / f"{name}.yaml"))
    assert [r.key == p.key for r, p in zip(planned, polished, strict=True)] == [
        not (r.spec.weight_decay > 0 and r.spec.loss != "gaussian") for r in planned
    ]
    same = [p.key == r.key for r, p in zip(planned, polished, strict=True)]
    cells = [cell_key(r.spec) == cell_key(p.spec) for r, p in zip(planned, polished, strict=True)]
    assert cells == same


def test_teacher_rows_other_than_the_default_are_keyed():
    target = {"name": "gaussian", "teacher_width": 4, "input_dim": 4}
    doc = sweep_config(name="g", widths=[4], seeds=2, parametrizations=["unrestricted"])
    keys, sweeps = [], []
    for rows in ("gaussian", "orthogonal", "identity"):
        cfg = parse_config({**doc, "targets": [{**target, "teacher_rows": rows}]})
        keys.append({r.key for r in plan_runs(cfg)})
        sweeps.append(sweep_key(cfg))
        assert {r.spec.teacher_rows for r in plan_runs(cfg)} == {rows}
    default = parse_config({**doc, "targets": [target]})
    assert keys[0] == {r.key for r in plan_runs(default)} and sweeps[0] == sweep_key(default)
    assert len(set(sweeps)) == 3 and not (keys[0] & keys[1] or keys[1] & keys[2])


def test_restricted_runs_are_planned_once_per_method_and_keyed_by_it():
    doc = {**DOC, "restricted_methods": ["intrinsic", "projection"]}
    runs = plan_runs(parse_config(doc))
    plain = plan_runs(parse_config(DOC))
    unres = [r.key for r in runs if not r.spec.restricted]
    assert unres == [r.key for r in plain if not r.spec.restricted]
    res = [r for r in runs if r.spec.restricted]
    assert len(res) == 2 * sum(r.spec.restricted for r in plain)
    assert {r.spec.restricted_method for r in res} == {"intrinsic", "projection"}
    assert len({r.key for r in runs}) == len(runs)
    for r in res:
        assert r.spec.to_dict()["restricted_method"] == r.spec.restricted_method
        assert RunSpec.from_dict(r.spec.to_dict()) == r.spec
    # a shard never mixes methods
    shards = pack_shards(plan_cells(parse_config(doc)).segments(), 1 << 30)
    assert all(len({r.spec.restricted_method for r in s.runs}) == 1 for s in shards)


def test_a_stored_restricted_spec_without_a_method_was_projected():
    stored = {k: v for k, v in RunSpec(parametrization="restricted").to_dict().items()}
    del stored["restricted_method"]
    assert RunSpec.from_dict(stored).restricted_method == "projection"
    assert RunSpec(parametrization="restricted").restricted_method == "intrinsic"
    assert RunSpec(restricted_method="projection").restricted_method == ""


def test_seed_pairs_and_cell_names_keep_restricted_methods_apart():
    from realspace.sweep.analysis import plan_analysis
    from realspace.tracking.layout import cell_names

    doc = sweep_config(
        name="m",
        widths=[4],
        seeds=3,
        restricted_methods=["intrinsic", "projection"],
        analysis={"retrain_seeds": 0, "pathology_max_log2": 2},
    )
    runs = plan_runs(parse_config(doc))
    pairs = [u for u in plan_analysis(parse_config(doc), runs) if u.stage == "seed_pairs"]
    assert len(pairs) == 3 and len({u.name for u in pairs}) == 3
    by_key = {r.key: r.spec for r in runs}
    for u in pairs:
        assert len({by_key[k].restricted_method for k in u.members}) == 1
    cells = {cell_key(r.spec): r.spec for r in runs}
    assert len(set(cell_names(cells).values())) == len(cells) == 3


def test_witness_and_stability_units_cover_their_problems():
    """One witness unit per unrestricted problem over all its end points; one stability
    unit per d = 1 problem and parametrization over the stability widths' lowest seeds;
    a weight decay is a problem of its own, and changing the analysis settings changes
    the units' keys (so a rerun recomputes them), never the runs' keys."""
    from realspace.sweep.analysis import plan_analysis

    doc = sweep_config(
        name="w",
        targets=[{"name": "sin"}, {"name": "sin", "weight_decay": 0.01}],
        widths=[4, 8, 16],
        seeds=5,
        analysis={"retrain_seeds": 0, "pathology_max_log2": 2, "seed_pairs": 0},
    )
    cfg = parse_config(doc)
    runs = plan_runs(cfg)
    by_key = {r.key: r.spec for r in runs}
    units = plan_analysis(cfg, runs)
    witness = [u for u in units if u.stage == "witness"]
    assert len(witness) == 2
    for u in witness:
        specs = [by_key[k] for k in u.members]
        assert {s.parametrization for s in specs} == {"unrestricted"}
        assert len(specs) == 3 * 5 and len({s.weight_decay for s in specs}) == 1
        assert u.inputs["keys"] == list(u.members)
    stability = [u for u in units if u.stage == "stability"]
    assert len(stability) == 4  # 2 problems x 2 parametrizations
    for u in stability:
        specs = [by_key[k] for k in u.members]
        assert sorted((s.width, s.seed) for s in specs) == [
            (w, s) for w in (8, 16) for s in range(4)
        ]
        assert u.inputs["kinds"] == ["add", "scale", "shift"]
    fewer = parse_config({**doc, "analysis": {**doc["analysis"], "stability_seeds": 2}})
    again = [u for u in plan_analysis(fewer, plan_runs(fewer)) if u.stage == "stability"]
    assert {u.key for u in again}.isdisjoint(u.key for u in stability)
    assert all(len(u.members) == 4 for u in again)
    assert [r.key for r in plan_runs(fewer)] == [r.key for r in runs]


def test_by_width_trains_the_projection_at_small_widths_and_intrinsic_above():
    from realspace.core.choices import PROJECTION_MAX_WIDTH

    doc = sweep_config(
        name="bw",
        widths=[2, PROJECTION_MAX_WIDTH, 2 * PROJECTION_MAX_WIDTH],
        seeds=2,
        restricted_methods=["by_width", "intrinsic"],
    )
    runs = plan_runs(parse_config(doc))
    methods = {(r.spec.width, r.spec.restricted_method) for r in runs if r.spec.restricted}
    assert methods == {
        (2, "projection"),
        (2, "intrinsic"),
        (PROJECTION_MAX_WIDTH, "projection"),
        (PROJECTION_MAX_WIDTH, "intrinsic"),
        (2 * PROJECTION_MAX_WIDTH, "intrinsic"),  # by_width and intrinsic: one run, one key
    }
    assert len(runs) == len({r.key for r in runs}) == 2 * (3 + 5)
    with pytest.raises(ConfigError, match="unknown restricted method 'sometimes'"):
        parse_config({**doc, "restricted_methods": ["sometimes"]})
