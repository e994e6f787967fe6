"""`realspace submit` and `realspace cancel` refuse before any work, with a message that
says what is missing: no Prefect server named, one that does not answer, a run id that
is not one. (The commands against a real server and worker: test_submit_server.py.)"""

import subprocess
import time

import pytest
from factories import sweep_config, write_config
from procs import CLI, free_port, quiet_env

DOC = sweep_config(name="submit-args", widths=[2], seeds=1)


def _cli(tmp_path, *args, **env):
    t = time.monotonic()
    res = subprocess.run(
        CLI + list(args), cwd=tmp_path, env=quiet_env(**env), capture_output=True, text=True
    )
    return res.returncode, " ".join((res.stdout + res.stderr).split()), time.monotonic() - t


@pytest.fixture
def cfg(tmp_path):
    return write_config(tmp_path / "s.yaml", DOC)


def test_submit_without_a_prefect_server_named_is_refused_before_any_work(tmp_path, cfg):
    code, text, _ = _cli(tmp_path, "submit", str(cfg))
    assert code == 2, text
    assert "error: PREFECT_API_URL is not set: submitting needs a running Prefect server" in text
    assert not (tmp_path / "mlruns.db").exists()  # no store was created, nothing ran


def test_submit_and_cancel_against_a_server_that_does_not_answer_fail_within_seconds(tmp_path, cfg):
    url = f"http://127.0.0.1:{free_port()}/api"
    code, text, took = _cli(tmp_path, "submit", str(cfg), PREFECT_API_URL=url)
    assert code == 2 and f"error: no Prefect server at {url}" in text, text
    assert took < 30, took
    assert not (tmp_path / "mlruns.db").exists()
    run = "6f1f4c1e-0000-4000-8000-000000000000"
    code, text, took = _cli(tmp_path, "cancel", run, PREFECT_API_URL=url)
    assert code == 2 and f"error: no Prefect server at {url}" in text, text
    assert took < 30, took


def test_cancel_refuses_what_is_not_a_flow_run_id_and_needs_a_server(tmp_path):
    code, text, _ = _cli(tmp_path, "cancel", "not-a-run")
    assert code == 2, text
    assert "error: 'not-a-run' is not a flow run id (a UUID, as `submit` printed)" in text
    code, text, _ = _cli(tmp_path, "cancel", "6f1f4c1e-0000-4000-8000-000000000000")
    assert code == 2 and "error: PREFECT_API_URL is not set" in text, text


def test_status_without_a_prefect_server_shows_the_store_alone(tmp_path, cfg):
    code, text, _ = _cli(tmp_path, "status", str(cfg))
    assert code == 0, text
    assert "total: 0 done, 2 pending of 2" in text and "submitted flow runs" not in text


def test_a_masked_tracking_uri_is_completed_from_the_workers_environment(monkeypatch):
    """Prefect stores a flow run's parameters, so a URI with a password is submitted
    masked; the worker finds the real one in its MLFLOW_TRACKING_URI, or refuses."""
    from realspace.app.service import NotStarted
    from realspace.app.submit import worker_uri
    from realspace.tracking.secrets import mask

    real = "http://user:s3cret@mlflow.example:5000"
    masked = mask(real)
    assert "s3cret" not in masked and "***" in masked
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert worker_uri("http://mlflow.example:5000") == "http://mlflow.example:5000"
    with pytest.raises(NotStarted, match="set MLFLOW_TRACKING_URI to the real one"):
        worker_uri(masked)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:s3cret@elsewhere:5000")
    with pytest.raises(NotStarted):  # another server's URI is not this one
        worker_uri(masked)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", real)
    assert worker_uri(masked) == real


def test_status_warns_and_still_shows_the_store_when_the_prefect_server_is_away(tmp_path, cfg):
    url = f"http://127.0.0.1:{free_port()}/api"
    code, text, took = _cli(tmp_path, "status", str(cfg), PREFECT_API_URL=url)
    assert code == 0, text
    assert "total: 0 done, 2 pending of 2" in text
    assert f"warning: Prefect server {url}:" in text, text
    assert took < 30, took


def _holder(since, heartbeat=0.0, released=False, host="node-a", pid=4242):
    from realspace.tracking.lease import Holder

    return Holder(
        generation=3,
        owner="o",
        host=host,
        pid=pid,
        started="1",
        since=since,
        heartbeat=heartbeat,
        released=released,
    )


def test_a_submitted_run_is_judged_dead_only_when_old_enough_and_the_lease_is_free():
    """The rule that marks a submitted flow run Crashed: Pending or Running for longer
    than the lease's expiry while the sweep's lease is free (its own generation or an
    older one); never a run that may still be starting, nor one while the lease is live."""
    from realspace.app.submit import dead_driver
    from realspace.tracking.lease import EXPIRY_S

    t0 = 1_000_000.0  # the flow run's start
    alive = lambda pid, started: True  # noqa: E731
    gone = lambda pid, started: False  # noqa: E731

    def judge(state="Running", started=t0, holder=None, now=t0 + 60, host="node-b", pid=alive):
        return dead_driver(state, started, holder, now, host=host, alive=pid)

    # its own generation (taken after its start), heartbeat stale: dead, holder named
    stale = _holder(since=t0 + 3, heartbeat=t0 + 10)
    why = judge(holder=stale, now=t0 + 10 + EXPIRY_S + 1)
    assert why and "lease expired" in why and "host node-a, pid 4242" in why, why
    assert "generation 3 has had no heartbeat" in why
    # ... released without the run ending (its process killed after the release)
    assert "was released" in judge(holder=_holder(since=t0 + 3, released=True))
    # ... its process gone on this host: at once, once the run is older than the expiry
    local = _holder(since=t0 + 3, heartbeat=t0 + 55)
    assert "process that is gone" in judge(holder=local, host="node-a", pid=gone)
    assert judge(holder=local, now=t0 + EXPIRY_S - 1, host="node-a", pid=gone) is None
    # a live lease of its own generation: alive
    assert judge(holder=_holder(since=t0 + 3, heartbeat=t0 + 55)) is None
    # a live lease of an older generation (another driver): nothing can be told yet
    assert judge(holder=_holder(since=t0 - 100, heartbeat=t0 + 55)) is None
    # never took the lease (only an older generation, released) in over the expiry: dead
    older = _holder(since=t0 - 100, released=True)
    why = judge(holder=older)
    assert why and "did not take the sweep's lease in 60 s" in why and "node-a" in why, why
    # ... but a freshly started run that has not taken it yet is left alone
    assert judge(holder=older, now=t0 + EXPIRY_S - 1) is None
    assert judge(state="Pending", holder=older, now=t0 + 5) is None
    assert "did not take" in judge(state="Pending", holder=older)
    # no lease in the store read (perhaps another store): no evidence, left alone
    assert judge(holder=None, now=t0 + 1000) is None
    # final or not yet started runs are never judged
    for state in ("Completed", "Failed", "Cancelled", "Crashed", "Scheduled", "Cancelling"):
        assert judge(state=state, holder=older) is None
    assert judge(started=None, holder=older) is None
