"""Sweep configs: bad input is refused before any work, naming the key and the reason."""

from pathlib import Path

import pytest
from factories import sweep_config, write_config
from typer.testing import CliRunner

from realspace.app.cli import app
from realspace.sweep.config import ConfigError, load_config, parse_config


def check(doc, *fragments):
    with pytest.raises(ConfigError) as info:
        parse_config(doc, "c.yaml")
    for f in fragments:
        assert f in str(info.value), str(info.value)
    return str(info.value)


def test_good_config_and_defaults():
    cfg = parse_config(sweep_config())
    assert cfg.seed_list() == list(range(8))
    assert cfg.parametrizations == ["unrestricted", "restricted"]


@pytest.mark.parametrize(
    "doc, fragments",
    [
        (sweep_config(widht=[2]), ["widht: unknown key"]),
        (sweep_config(optimizer={"lr": 0.1, "momentun": 0.9}), ["optimizer.momentun: unknown key"]),
        (sweep_config(widths=[]), ["widths: List should have at least 1 item"]),
        (sweep_config(widths=[4, 0]), ["widths[1]: Input should be greater than 0"]),
        (sweep_config(widths="four"), ["widths: Input should be a valid list"]),
        (sweep_config(seeds=[1, 2, 2]), ["seeds: duplicate seeds [2]"]),
        (sweep_config(seeds=0), ["seeds"]),
        (sweep_config(targets=[{"name": "cosine"}]), ["targets[0].name: unknown target 'cosine'"]),
        (sweep_config(targets=[]), ["targets: List should have at least 1 item"]),
        (sweep_config(domain=-1), ["domain: Input should be greater than 0"]),
        (sweep_config(optimizer={"lr": [0.1, -1]}), ["optimizer.lr"]),
        (sweep_config(optimizer={"kind": "lbfgs"}), ["optimizer.kind"]),
        (sweep_config(parametrizations=["balanced"]), ["parametrizations[0]"]),
        (sweep_config(targets=[{"name": "gaussian"}]), ["targets[0] (gaussian)", "unrestricted"]),
        (sweep_config(name="../evil"), ["name: String should match pattern"]),
        (sweep_config(execution={"device": "tpu"}), ["execution.device"]),
    ],
)
def test_bad_configs_name_key_and_reason(doc, fragments):
    check(doc, "c.yaml: invalid sweep configuration", *fragments)


def test_every_problem_is_listed_at_once():
    msg = check(sweep_config(targets=[{"name": "sin", "colour": 1}], widths=[0]))
    assert "targets[0].colour: unknown key" in msg and "widths[0]" in msg


def test_yaml_errors_and_shapes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\ntargets: [sin\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML \(line"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level, got list"):
        load_config(lst)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(unsafe)


def test_cli_refuses_a_bad_config_before_any_work(tmp_path):
    path = write_config(tmp_path / "bad.yaml", sweep_config(widths=[2, -4]))
    result = CliRunner().invoke(app, ["sweep", str(path)])
    assert result.exit_code == 2
    assert "widths[1]: Input should be greater than 0" in result.output
    assert not (tmp_path / "mlruns.db").exists()


def test_shipped_configs_are_valid():
    for name in ("default", "paper"):
        cfg = load_config(Path(__file__).parents[2] / "configs" / f"{name}.yaml")
        assert cfg.name == name


def test_analysis_settings_are_validated_and_never_change_the_sweep_key():
    from realspace.sweep.plan import plan_runs, sweep_key

    check(sweep_config(analysis={"retrain_kinds": ["move"]}), "analysis.retrain_kinds[0]")
    check(sweep_config(analysis={"gap_eps": 0}), "analysis.gap_eps")
    check(sweep_config(analysis={"pathology_max_log2": 40}), "analysis.pathology_max_log2")
    base = parse_config(sweep_config())
    other = parse_config(sweep_config(analysis={"gap_eps": 0.1, "seed_pairs": 0}))
    assert sweep_key(base) == sweep_key(other)
    assert [r.key for r in plan_runs(base)] == [r.key for r in plan_runs(other)]


def test_the_kernel_is_checked_reaches_the_workers_and_keeps_the_key():
    """``execution.kernel``: auto or graph (every other name refused up front), told to
    every shard's task, and no part of the sweep's identity (like dtype: the same
    networks, trained to rounding)."""
    from realspace.flows.sweep import _worker_options
    from realspace.sweep.plan import sweep_key

    check(sweep_config(execution={"kernel": "prefix"}), "execution.kernel", "graph")
    graph = parse_config(sweep_config(execution={"kernel": "graph"}))
    assert _worker_options(graph, "sqlite:///x.db")["kernel"] == "graph"
    assert _worker_options(parse_config(sweep_config()), "sqlite:///x.db")["kernel"] == "auto"
    assert sweep_key(graph) == sweep_key(parse_config(sweep_config()))


def test_a_target_may_set_its_own_weight_decay():
    from realspace.core.spec import target_label
    from realspace.sweep.plan import plan_runs

    cfg = parse_config(
        sweep_config(seeds=1, targets=[{"name": "sin"}, {"name": "sin", "weight_decay": 0.01}])
    )
    runs = plan_runs(cfg)
    assert sorted({r.spec.weight_decay for r in runs}) == [0.0, 0.01]
    assert {target_label(r.spec) for r in runs} == {"sin", "sin wd=0.01"}
    check(sweep_config(targets=[{"name": "sin", "weight_decay": -1}]), "targets[0].weight_decay")


def test_restricted_methods_are_an_axis_with_a_default_and_known_names():
    from realspace.core.choices import DEFAULT_RESTRICTED_METHOD

    assert parse_config(sweep_config()).restricted_methods == [DEFAULT_RESTRICTED_METHOD]
    both = parse_config(sweep_config(restricted_methods=["intrinsic", "projection"]))
    assert both.restricted_methods == ["intrinsic", "projection"]
    check(
        sweep_config(restricted_methods=["clamp"]),
        "restricted_methods: unknown restricted method 'clamp'; known: intrinsic, projection",
    )
    check(sweep_config(restricted_methods=[]), "restricted_methods")
    check(sweep_config(restricted_methods=["intrinsic", "intrinsic"]), "duplicate")
