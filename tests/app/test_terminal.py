"""What a user's terminal meets: no warning flood from a sweep, and no server left behind
by `realspace ui` however it is stopped."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from factories import sweep_config, write_config
from procs import CLI, alive, descendants, free_port, port_free, quiet_env, wait_http

pytestmark = pytest.mark.integration


# SIGTERM in the default run (about 25 s: MLflow's server start); the others in the slow run
@pytest.mark.parametrize(
    "sig",
    [
        signal.SIGTERM,
        pytest.param(signal.SIGHUP, marks=pytest.mark.slow),
        pytest.param(signal.SIGINT, marks=pytest.mark.slow),
    ],
)
def test_a_stopped_ui_leaves_no_server_and_frees_its_port(tmp_path, sig):
    """The signal goes to `realspace ui` alone (as a process manager or `timeout` sends
    it): within 10 s none of the processes it started is alive and the port binds."""
    port = free_port()
    store = f"sqlite:///{tmp_path / 'x.db'}"
    proc = subprocess.Popen(
        CLI + ["ui", "--port", str(port), "--tracking-uri", store],
        cwd=tmp_path,
        env=quiet_env(),
        stdout=open(tmp_path / "ui.out", "w"),  # noqa: SIM115 - held by the process
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the test's own group: a leak cannot reach pytest
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, 120, tmp_path / "ui.out")
        servers = descendants(proc.pid)
        assert servers, "realspace ui started no server"
        # the store reaches the server by environment: no command line (`ps`) shows it,
        # a password in it included; the server serves that store
        for pid in servers:
            assert store not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
        assert (tmp_path / "x.db").exists()
        assert not port_free(port)
        os.kill(proc.pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            any(alive(p) for p in servers) or not port_free(port)
        ):
            time.sleep(0.2)
        left = [p for p in servers if alive(p)]
        assert not left, f"still running after 10 s: {left}"
        assert port_free(port)
        assert proc.wait(timeout=10) == 0
    finally:
        for p in [proc.pid, *descendants(proc.pid)]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()


def test_a_sweep_shows_progress_and_its_summary_and_no_warning(tmp_path):
    """The main command's terminal from a fresh folder: the header, progress, the summary;
    no Python warning (a degenerate bootstrap resample, an all-NaN ratio: handled, not
    warned per occurrence) and no routine INFO log line (MLflow creating its tables).
    Retraining and stability units run: both fit slopes under bootstrap resamples."""
    doc = sweep_config(
        widths=[2, 8],
        seeds=2,
        optimizer={"steps": 60},
        data={"n_samples": 32},
        analysis={
            "pathology_max_log2": 3,
            "seed_pairs": 1,
            "retrain_widths": [2],
            "retrain_seeds": 2,
            "retrain_kinds": ["add"],
            "retrain_deltas": [0.01, 0.1],
            "retrain_steps": 20,
            "stability_widths": [8],
            "stability_seeds": 2,
        },
    )
    cfg = write_config(tmp_path / "t.yaml", doc)
    res = subprocess.run(
        CLI + ["sweep", str(cfg), "--in-process"],
        cwd=tmp_path,
        env=quiet_env(COLUMNS="120"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "done: 8 trained" in res.stdout and "Analysis:" in res.stdout, res.stdout
    for line in res.stderr.splitlines():
        assert "Warning" not in line and " INFO " not in line, res.stderr
    assert res.stderr.splitlines()[0].startswith("sweep t: 8 runs"), res.stderr
