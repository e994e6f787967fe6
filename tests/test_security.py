"""Credentials never shown; names never become paths outside their folder; bad config
documents only ever raise the loader's validation error."""

import subprocess
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realspace.sweep.config import ConfigError, parse_config
from realspace.tracking.secrets import hide_uri, mask, reveal_uri

GOOD = {"name": "t", "targets": [{"name": "sin"}], "widths": [2, 4]}
CLI = [sys.executable, "-m", "realspace.cli"]


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
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump({**GOOD, "tracking": {"uri": "http://bob:topsecret@127.0.0.1:9/"}})
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
        parse_config({**GOOD, "name": name})


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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8) | json_values)
def test_random_documents_raise_only_config_errors(doc):
    try:
        parse_config(doc)
    except ConfigError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional={k: json_values for k in KEYS}))
def test_random_mutations_of_a_good_config_raise_only_config_errors(extra):
    try:
        parse_config({**GOOD, **extra})
    except ConfigError:
        pass


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

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(GOOD))
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


def _write(tmp_path, doc):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    return cfg


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
    cfg = _write(tmp_path, {**GOOD, **extra})
    res = subprocess.run(
        CLI + ["sweep", str(cfg)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    shown = " ".join(res.stderr.split())
    assert res.returncode == 2 and message in shown and "--yes" in shown, shown
    assert not (tmp_path / "mlruns.db").exists()  # nothing started, nothing written


@pytest.mark.integration
def test_yes_confirms_a_sweep_over_its_stated_budget(tmp_path):
    doc = {
        **GOOD,
        "widths": [2],
        "seeds": 1,
        "optimizer": {"steps": 5},
        "execution": {"max_runs": 1},
    }
    cfg = _write(tmp_path, doc)
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
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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
