"""Credentials never shown; names never become paths outside their folder; bad config
documents only ever raise the loader's validation error."""

import re
import subprocess

import pytest
from factories import sweep_config, write_config
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from procs import CLI, free_port

from realspace.core.choices import (
    BY_WIDTH,
    OPTIMIZERS,
    PARAMETRIZATIONS,
    RESTRICTED_METHODS,
    SAMPLINGS,
    TARGET_NAMES,
)
from realspace.sweep.config import ConfigError, SweepConfig, parse_config
from realspace.tracking.secrets import hide_uri, mask, reveal_uri


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "postgresql+psycopg2://bob:pa%40ss@db:5432/mlflow",
            "postgresql+psycopg2://bob:***@db:5432/mlflow",
        ),
        ("http://alice:s3cret@mlflow:5000", "http://alice:***@mlflow:5000"),
        (
            "see https://:tok@host/x and sqlite:///a.db",
            "see https://:***@host/x and sqlite:///a.db",
        ),
        ("http://mlflow:5000", "http://mlflow:5000"),
        # a password holding "/", "?" or "#" (not percent-encoded): all of it masked
        ("http://bob:top/secret@mlflow:5000/x", "http://bob:***@mlflow:5000/x"),
        ("http://bob:a?b#c@mlflow:5000", "http://bob:***@mlflow:5000"),
        # secrets in the query, whatever the case of the key; other parameters kept
        (
            "postgresql://bob@db/mlflow?sslmode=require&password=hunter2&x=1",
            "postgresql://bob@db/mlflow?sslmode=require&password=***&x=1",
        ),
        ("https://h/api?Token=abc.def;api_key=k-1", "https://h/api?Token=***;api_key=***"),
        ("mysql://db/x?sslpassword=pw#frag", "mysql://db/x?sslpassword=***#frag"),
        # a path with ":" and "@" is no userinfo, a plain query is no secret
        ("http://host/a:b@c?page=2", "http://host/a:b@c?page=2"),
    ],
)
def test_passwords_in_urls_are_masked(text, expected):
    assert mask(text, environ={}) == expected


def test_secret_environment_values_are_masked():
    env = {
        "MLFLOW_TRACKING_PASSWORD": "hunter2!",
        "AWS_SECRET_ACCESS_KEY": "AKIAXYZW",
        "HOME": "/r",
    }
    out = mask("failed with hunter2! and AKIAXYZW in /r", environ=env)
    assert out == "failed with *** and *** in /r"


def test_a_hidden_uri_is_revealed_only_in_its_process(monkeypatch):
    monkeypatch.delenv("REALSPACE_TRACKING_URI", raising=False)
    real = "http://u:pw@127.0.0.1:5000"
    hidden = hide_uri(real)
    assert hidden == "http://u:***@127.0.0.1:5000" and reveal_uri(hidden) == real
    monkeypatch.delenv("REALSPACE_TRACKING_URI")
    assert reveal_uri(hidden) == hidden
    assert hide_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_the_cli_never_prints_a_password(tmp_path):
    cfg = write_config(
        tmp_path / "c.yaml", sweep_config(tracking={"uri": "http://bob:topsecret@127.0.0.1:9/"})
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "MLFLOW_TRACKING_PASSWORD": "envsecret9",
        "DO_NOT_TRACK": "true",
    }
    for args in (
        ["sweep", str(cfg), "--dry-run"],
        ["status", str(cfg)],
        [
            "sweep",
            str(cfg),
            "--tracking-uri",
            "postgresql+psycopg2://bob:topsecret@127.0.0.1:9/x",
            "--dry-run",
        ],
    ):
        res = subprocess.run(
            CLI + args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        shown = res.stdout + res.stderr
        assert "topsecret" not in shown and "envsecret9" not in shown, shown
        assert "bob:***@" in shown, shown


@pytest.mark.parametrize("name", ["..", ".hidden", "-rf", "a/b", "../../etc", "a\\b", ""])
def test_sweep_names_cannot_leave_the_report_folder(name):
    with pytest.raises(ConfigError, match="name"):
        parse_config(sweep_config(name=name))


def test_the_loader_is_safe_yaml(tmp_path):
    from realspace.sweep.config import load_config

    bad = tmp_path / "evil.yaml"
    bad.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 300)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = [
    "name",
    "targets",
    "widths",
    "seeds",
    "parametrizations",
    "optimizer",
    "data",
    "weight_decay",
    "analysis",
    "execution",
    "tracking",
    "input_dim",
    "domain",
]


# the keys a document must give (the rest have defaults)
REQUIRED = ("name", "targets", "widths")
# a name becomes a folder: letters, digits, _ . -, never starting with a dot or a dash
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
# the separators after a key's name at the start of an error line ("  widths[0]: ...")
AFTER_KEY = (":", ".", "[")


def _axis(value) -> list:
    """A grid axis as a list (a single value or a list of values)."""
    return list(value) if isinstance(value, list) else [value]


def _assert_schema_invariants(cfg: SweepConfig, doc: dict) -> None:
    """What an accepted document guarantees, checked on the parsed values rather than
    through the validators: every width, seed count, step count, sample count, dimension
    and rate positive; seeds non-negative and distinct; widths distinct; every choice among
    the science core's (realspace.core.spec); the name a safe folder name."""
    assert NAME.fullmatch(cfg.name) and cfg.name == doc["name"]
    assert len(cfg.targets) == len(doc["targets"]) >= 1
    for t in cfg.targets:
        assert t.name in TARGET_NAMES
        assert t.teacher_width >= 1 and t.teacher_seed >= 0 and t.n_classes >= 2
        assert t.noise is None or t.noise >= 0
        assert t.input_dim is None or t.input_dim >= 1
        assert t.widths is None or (t.widths and min(t.widths) >= 1)
        assert t.parametrizations is None or set(t.parametrizations) <= set(PARAMETRIZATIONS)
        assert all(wd >= 0 for wd in _axis(t.weight_decay if t.weight_decay is not None else 0))
    assert len(cfg.widths) == len(doc["widths"]) >= 1
    assert all(isinstance(w, int) and w >= 1 for w in cfg.widths)
    assert len(set(cfg.widths)) == len(cfg.widths)
    seeds = cfg.seed_list()
    assert seeds and all(isinstance(s, int) and s >= 0 for s in seeds)
    assert len(set(seeds)) == len(seeds)
    assert cfg.parametrizations and set(cfg.parametrizations) <= set(PARAMETRIZATIONS)
    methods = cfg.restricted_methods
    assert methods and set(methods) <= {*RESTRICTED_METHODS, BY_WIDTH}
    assert len(set(methods)) == len(methods)
    assert cfg.input_dim >= 1 and cfg.domain > 0
    assert cfg.data.n_samples >= 1 and cfg.data.sampling in SAMPLINGS and cfg.data.noise >= 0
    opt = cfg.optimizer
    assert set(_axis(opt.kind)) <= set(OPTIMIZERS)
    assert all(lr > 0 for lr in _axis(opt.lr)) and all(n >= 1 for n in _axis(opt.steps))
    assert all(0 <= m < 1 for m in (opt.momentum, opt.beta1, opt.beta2))
    assert opt.batch_size >= 0 and opt.init_scale > 0
    assert all(wd >= 0 for wd in _axis(cfg.weight_decay))


def _named_fields(message: str) -> set[str]:
    """The schema's top-level keys that the error lines of a ConfigError name."""
    fields = SweepConfig.model_fields
    return {f for f in fields if any(f"\n  {f}{sep}" in message for sep in AFTER_KEY)}


def _assert_rejection_names_the_document(err: ConfigError, doc) -> None:
    """A rejected document's error names what is wrong with it: the top level when it is
    no mapping; else a key it has (or a required key it lacks), and no other key."""
    message = str(err)
    if not isinstance(doc, dict):
        assert "expected a mapping at the top level" in message, message
        return
    assert message.startswith("config: invalid sweep configuration\n"), message
    missing = {k for k in REQUIRED if k not in doc}
    keys = {*doc, *missing}
    lines = [f"\n  {k}{sep}" for k in keys if k for sep in AFTER_KEY]
    lines += ["\n  (top level): unknown key"] if "" in doc else []
    lines += ["\n  (top level): targets["] if "targets" in doc else []  # a cross-key rule
    assert any(line in message for line in lines), (message, doc)
    assert _named_fields(message) <= keys, (message, doc)
    for k in missing:
        assert f"\n  {k}: Field required" in message, message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8) | json_values)
@example(sweep_config(widths=[2, 2]))
@example(sweep_config(widths=[0]))
@example(sweep_config(name="..", widths=[2]))
@example([sweep_config()])
def test_random_documents_raise_only_config_errors(doc):
    """Any document is either accepted, with the schema's invariants holding, or rejected
    with a ConfigError that names a key of the document; never another exception."""
    try:
        cfg = parse_config(doc)
    except ConfigError as err:
        _assert_rejection_names_the_document(err, doc)
    else:
        _assert_schema_invariants(cfg, doc)


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional={k: json_values for k in KEYS}))
@example({})
@example({"widths": [3, 3]})
@example({"widths": [0]})
@example({"seeds": [0, 0]})
@example({"seeds": 0})
@example({"seeds": [-1]})
@example({"name": "-rf"})
@example({"targets": [{"name": "nope"}]})
@example({"targets": [{"name": "spirals"}]})  # the plane, at input_dim 1
@example({"parametrizations": ["neither"]})
@example({"input_dim": 0})
@example({"domain": 0.0})
@example({"weight_decay": -0.1})
@example({"optimizer": {"lr": 0}})
@example({"data": {"noise": -1}})
def test_random_mutations_of_a_good_config_raise_only_config_errors(extra):
    """A good document with keys replaced: accepted with the schema's invariants holding, or
    rejected with a ConfigError naming only replaced keys (the good document alone is
    accepted; the targets through the rules that tie a target to the other keys)."""
    doc = sweep_config(**extra)
    try:
        cfg = parse_config(doc)
    except ConfigError as err:
        _assert_rejection_names_the_document(err, doc)
        named = _named_fields(str(err))
        assert named <= set(extra), (str(err), extra)
        assert named or "\n  (top level): targets[" in str(err), str(err)
    else:
        _assert_schema_invariants(cfg, doc)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tracking-uri", "http://127.0.0.1:9"], "is not reachable"),
        (["--tracking-uri", "postgresql+psycopg2://u:pw@127.0.0.1:9/db"], "is not reachable"),
        (["--tracking-uri", "sqlite:////nonexistent-folder/x.db"], "does not exist"),
        (["--ray-address", "127.0.0.1:9"], "no Ray cluster at 127.0.0.1:9"),
    ],
)
def test_unreachable_services_fail_fast_before_any_work(tmp_path, args, message):
    import time

    cfg = write_config(tmp_path / "c.yaml", sweep_config())
    t0 = time.perf_counter()
    res = subprocess.run(
        CLI + ["sweep", str(cfg), *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    elapsed = time.perf_counter() - t0
    shown = " ".join(res.stderr.split())
    assert res.returncode == 2 and message in shown, res.stderr
    assert elapsed < 15, elapsed
    assert "pw@" not in res.stderr
    assert not (tmp_path / "reports").exists()  # nothing half-written


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"execution": {"max_runs": 3}}, "32 runs planned, over the stated budget"),
        (
            {
                "widths": [200_000],
                "data": {"n_samples": 100_000},
                "execution": {"memory_budget_mb": 64},
            },
            "more than the 64.0 MiB a shard may use",
        ),
    ],
)
def test_oversized_sweeps_are_refused_with_the_estimate(tmp_path, extra, message):
    cfg = write_config(tmp_path / "c.yaml", sweep_config(**extra))
    res = subprocess.run(
        CLI + ["sweep", str(cfg)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    shown = " ".join(res.stderr.split())
    assert res.returncode == 2 and message in shown and "--yes" in shown, shown
    assert not (tmp_path / "mlruns.db").exists()  # nothing started, nothing written


@pytest.mark.integration
@pytest.mark.slow  # a sweep in a subprocess: 16 s here; the refusal itself stays above
def test_yes_confirms_a_sweep_over_its_stated_budget(tmp_path):
    doc = sweep_config(widths=[2], seeds=1, optimizer={"steps": 5}, execution={"max_runs": 1})
    cfg = write_config(tmp_path / "c.yaml", doc)
    res = subprocess.run(
        CLI + ["sweep", str(cfg), "--yes", "--in-process", "--quiet", "--no-analysis"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0 and "2 trained" in res.stdout, res.stdout + res.stderr


def test_the_ui_warns_when_it_binds_beyond_loopback(tmp_path):
    import os
    import signal

    port = free_port()
    proc = subprocess.Popen(
        CLI
        + [
            "ui",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'x.db'}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = proc.stderr.readline()
        assert "warning: binding 0.0.0.0" in line and "no authentication" in " ".join(
            (line + proc.stderr.readline()).split()
        )
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


LEAK = "API request to http://bob:topsecret@127.0.0.1:5000/api/2.0/mlflow/runs/search failed"


@pytest.mark.parametrize("command", ["sweep", "submit", "status", "report", "ui", "cancel"])
def test_an_unexpected_error_in_any_command_ends_in_one_masked_line(
    tmp_path, monkeypatch, capsys, command
):
    """MLflow's error text carries the tracking URI with its password. Raised where no
    command expects it, it ends in one line with the password masked and exit 1: no
    traceback (typer's would also print the local variables, the URI among them)."""
    import sys

    from mlflow.exceptions import MlflowException

    import realspace.app.cli as cli
    import realspace.app.service
    import realspace.app.submit

    def broken(*args, **kwargs):
        raise MlflowException(LEAK)

    cfg = write_config(tmp_path / "c.yaml", sweep_config())
    # where each command first touches a config or a service
    monkeypatch.setattr(cli, "_load", broken)  # status, report, ui
    monkeypatch.setattr(realspace.app.service, "plan_sweep", broken)  # sweep, submit
    monkeypatch.setattr(realspace.app.submit, "cancel", broken)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # submit asks first
    arg = "0d4f6a1e-0000-4000-8000-000000000000" if command == "cancel" else str(cfg)
    monkeypatch.setattr(sys, "argv", ["realspace", command, arg])
    monkeypatch.delenv("REALSPACE_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as ended:
        cli.main()
    assert ended.value.code == 1
    shown = capsys.readouterr()
    assert "topsecret" not in shown.err + shown.out and "Traceback" not in shown.err
    assert "error: MlflowException: API request to http://bob:***@127.0.0.1:5000" in shown.err
    # asked for, the traceback is shown, masked as well
    monkeypatch.setenv("REALSPACE_TRACEBACK", "1")
    with pytest.raises(SystemExit):
        cli.main()
    shown = capsys.readouterr()
    assert "Traceback" in shown.err and "topsecret" not in shown.err + shown.out
