"""`realspace submit` through Prefect's own scheduling, on loopback: a real `prefect
server start`, a process work pool and a real `prefect worker start`. A submitted sweep
leaves the store `realspace sweep` leaves (same run keys, same losses); a submitted sweep
cancelled mid-run ends Cancelled in Prefect, shown by `realspace status`, its lease
given back and nothing half-written FINISHED; submitted again, its worker SIGKILLed
mid-run with the flow run, the dead run is shown Crashed (its lease free) and a new
worker and submission resume it and complete it. Prefect's UI, served by the same server,
shows the deployment and a finished run's tasks in headless Chromium."""

import json
import math
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from factories import sweep_config, write_config
from procs import BIN, CLI, quiet_env
from sweepstate import check_complete, check_consistent, planned, sweep_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POOL = "realspace-test"
DOC = sweep_config(
    name="submitted",
    widths=[2, 3],
    seeds=2,
    optimizer={"steps": 60, "lr": 0.02},
    data={"n_samples": 16},
)
# one network per shard, each a few seconds: a sweep that is surely mid-run when cancelled
SLOW = {
    **DOC,
    "name": "cancelled",
    "widths": [2, 3, 4],
    "seeds": 2,
    "optimizer": {"steps": 2000, "lr": 0.02},
    "execution": {"max_shard_size": 1},
}


def _cli(cwd: Path, *args, env: dict, timeout: float = 120) -> tuple[int, str, str]:
    res = subprocess.run(
        CLI + list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    # stdout as printed (the id `submit` prints), stderr with its lines rewrapped
    return res.returncode, res.stdout, " ".join(res.stderr.split())


@pytest.fixture(scope="module")
def prefect(prefect_server_with_ui):
    """The Prefect server (with its UI: the last test opens it), the process work pool and
    one worker; yields (environment pointing at the server, the worker's process)."""
    tmp = prefect_server_with_ui.home
    env = quiet_env(
        PREFECT_API_URL=prefect_server_with_ui.api,
        PREFECT_HOME=str(tmp / "client"),
        PREFECT_WORKER_QUERY_SECONDS="1",  # picks a run up within a second, not ten
    )
    workers = []
    try:
        subprocess.run(
            [str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"],
            env=env,
            check=True,
            capture_output=True,
        )
        workers.append(start_worker(tmp, env))
        yield env, workers
    finally:
        for w in workers:  # a worker keeps nothing: SIGKILL, not 20 s of waiting on SIGTERM
            _kill_group(w)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def start_worker(tmp: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"],
        cwd=tmp,
        env=env,
        stdout=(tmp / "worker.log").open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _flow_run(env: dict, run_id: str):
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
        return client.read_flow_run(uuid.UUID(run_id))


def _wait_state(env: dict, run_id: str, final: set[str], timeout: float):
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = _flow_run(env, run_id)
        if run.state and run.state.name in final:
            return run
        time.sleep(1)
    pytest.fail(f"flow run {run_id} still {run.state.name if run.state else None}")


def _submit(cfg: Path, cwd: Path, env: dict) -> str:
    code, out, err = _cli(
        cwd, "submit", str(cfg), "--pool", POOL, "--in-process", "--no-analysis", env=env
    )
    assert code == 0, err
    run_id = out.strip()
    uuid.UUID(run_id)  # the id alone on stdout
    assert f"realspace cancel {run_id}" in err, err
    return run_id


def _losses(uri: str, name: str) -> dict[str, float]:
    state = sweep_state(uri, name)
    return {r["run_key"]: r["loss"] for r in state.rows}


def test_a_submitted_sweep_leaves_the_store_of_a_foreground_sweep(prefect, tmp_path):
    env, _ = prefect
    cfg = write_config(tmp_path / "s.yaml", DOC)
    (tmp_path / "fg").mkdir()
    (tmp_path / "sub").mkdir()
    t = time.time()
    run_id = _submit(cfg, tmp_path / "sub", env)
    assert time.time() - t < 30  # returns at once, not after the sweep
    code, out, err = _cli(
        tmp_path / "fg",
        "sweep",
        str(cfg),
        "--quiet",
        "--in-process",
        "--no-analysis",
        env=quiet_env(),
    )
    assert code == 0, err
    run = _wait_state(env, run_id, {"Completed", "Failed", "Crashed", "Cancelled"}, 180)
    assert run.state.name == "Completed", run.state
    fg = _losses(f"sqlite:///{tmp_path / 'fg' / 'mlruns.db'}", DOC["name"])
    uri = f"sqlite:///{tmp_path / 'sub' / 'mlruns.db'}"
    sub = _losses(uri, DOC["name"])
    assert len(fg) == 8 and sorted(sub) == sorted(fg)
    for key, loss in fg.items():
        assert math.isclose(sub[key], loss, rel_tol=1e-6, abs_tol=1e-9), key
    check_complete(uri, sweep_state(uri, DOC["name"]), planned(DOC)[0])


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    kids = [int(p) for p in out.split()]
    return kids + [d for k in kids for d in _descendants(k)]


def test_a_submitted_sweep_cancelled_mid_run_ends_cancelled_and_resumes(prefect, tmp_path):
    env, workers = prefect
    cfg = write_config(tmp_path / "s.yaml", SLOW)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    run_id = _submit(cfg, tmp_path, env)
    deadline = time.time() + 120
    # a table piece on disk (written whole, then renamed): opening the database here while
    # the flow run creates it would race MLflow's creation of its tables
    while not list((tmp_path / "mlartifacts").rglob("shards/*.parquet")):
        assert time.time() < deadline, "no network trained in 120 s"
        time.sleep(1)
    code, out, err = _cli(tmp_path, "cancel", run_id, env=env)
    assert code == 0, err
    assert f"flow run {run_id}" in out and "cancelling" in out, out
    run = _wait_state(env, run_id, {"Cancelled", "Completed", "Failed", "Crashed"}, 90)
    assert run.state.name == "Cancelled", run.state
    state = sweep_state(uri, SLOW["name"])
    runs, _ = planned(SLOW)
    assert 0 < len(state.keys) < len(runs)  # stopped mid-run
    check_consistent(uri, state, runs)  # nothing FINISHED lacks its data
    lease = json.loads(state.parent.data.tags["realspace.lease"])
    assert lease["released"] is True  # given back on the way out, not left to expire
    code, out, err = _cli(tmp_path, "status", str(cfg), env=env)
    assert code == 0, err
    flat = " ".join(out.split())
    assert "total: " in flat and "submitted flow runs of cancelled (newest first):" in flat, out
    assert f"{run_id} Cancelled {run.name} created" in flat, out
    code, out, err = _cli(tmp_path, "cancel", run_id, env=env)
    assert code == 0 and "is already Cancelled" in out, out
    code, out, err = _cli(tmp_path, "cancel", str(uuid.uuid4()), env=env)
    assert code == 2 and "error: no flow run" in err, err
    # a nightly schedule on the sweep's deployment, as the README says to add one
    cron = [str(BIN / "prefect"), "deployment", "schedule", "create"]
    cron += ["realspace-submitted-sweep/cancelled", "--cron", "0 3 * * *", "--timezone", "UTC"]
    subprocess.run(cron, env=env, check=True, capture_output=True, timeout=60)
    # submitted again, it resumes: what the cancelled run wrote stays, not trained again
    before = {p for names in state.pieces.values() for p in names}
    tables = len(list((tmp_path / "mlartifacts").rglob("shards/*.parquet")))
    killed = _submit(cfg, tmp_path, env)
    # ... until the worker and the sweep it runs die at once (SIGKILL, as an OOM kill or a
    # lost host would), after one more piece
    deadline = time.time() + 120
    while len(list((tmp_path / "mlartifacts").rglob("shards/*.parquet"))) <= tables:
        assert time.time() < deadline, "the resubmitted sweep trained nothing in 120 s"
        time.sleep(0.5)
    old = workers.pop()
    doomed = [old.pid, *_descendants(old.pid)]  # the flow run has a session of its own
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    old.wait()
    killed_at = time.time()
    # Prefect never hears of the killed run's end; `realspace status` sees its lease free
    # (its holder's process gone from this host) and marks it Crashed once the run is
    # older than the lease's expiry
    assert _flow_run(env, killed).state.name == "Running"
    deadline = killed_at + 60  # the run is older than the expiry by then
    while True:
        code, out, err = _cli(tmp_path, "status", str(cfg), env=env)
        assert code == 0, err
        if f"{killed} Crashed" in " ".join(out.split()):
            break
        assert time.time() < deadline, f"not Crashed a minute after the kill:\n{out}"
        time.sleep(2)
    crashed = _flow_run(env, killed).state
    params = sweep_state(uri, SLOW["name"]).parent.data.params
    last = max(int(k.rsplit(".", 1)[1]) for k in params if k.startswith("realspace.lease."))
    holder = json.loads(params[f"realspace.lease.{last}"])
    assert holder["pid"] in doomed  # the killed flow run's process held the lease
    assert "lease expired" in crashed.message, crashed.message
    assert f"last holder host {holder['host']}, pid {holder['pid']}" in crashed.message
    # a new worker and a new submission take the lease at once and finish the sweep
    workers.append(start_worker(Path(env["PREFECT_HOME"]).parent, env))
    again = _submit(cfg, tmp_path, env)
    run = _wait_state(env, again, {"Completed", "Failed", "Crashed", "Cancelled"}, 240)
    assert run.state.name == "Completed", run.state
    assert _flow_run(env, killed).state.name == "Crashed"  # not revived by the new run
    state = sweep_state(uri, SLOW["name"])
    check_complete(uri, state, runs)
    assert before <= {p for names in state.pieces.values() for p in names}
    # the resubmission updated the deployment and kept its schedule
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
        dep = client.read_deployment_by_name("realspace-submitted-sweep/cancelled")
    assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * *"]
    assert dep.parameters["config"]["name"] == "cancelled" and dep.tags == [run.tags[0]]


TINY = {**DOC, "name": "in-the-ui", "widths": [2], "seeds": 1, "optimizer": {"steps": 30}}


@pytest.mark.browser
def test_the_prefect_ui_shows_the_deployment_and_a_finished_submitted_run(prefect, tmp_path):
    """A person following a submitted sweep in Prefect's own UI (served by `prefect server
    start` at the API's root): the sweep's deployment is listed, and its finished flow run
    shows Completed, with the sweep's flow and its shard tasks."""
    from browser import chromium, need_browser, wait_for
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    need_browser()
    env, _ = prefect
    cfg = write_config(tmp_path / "s.yaml", TINY)
    run_id = _submit(cfg, tmp_path, env)
    run = _wait_state(env, run_id, {"Completed", "Failed", "Crashed", "Cancelled"}, 180)
    assert run.state.name == "Completed", run.state
    api = env["PREFECT_API_URL"]
    with SyncPrefectClient(api) as client:
        dep = client.read_deployment_by_name(f"realspace-submitted-sweep/{TINY['name']}")
        # run_sweep runs the sweep flow as a subflow of the submitted run: the shard tasks
        # are its task runs
        [sub] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])
            )
        )
        tasks = [t.name for t in client.read_task_runs() if t.flow_run_id == sub.id]
    for name in ("open-sweep", "train-shard", "close-cells"):
        assert any(t.startswith(f"{name}-") for t in tasks), tasks
    ui = api.removesuffix("/api")
    driver = chromium(tmp_path / "chrome")
    wait = WebDriverWait(driver, 60)
    try:
        driver.get(f"{ui}/deployments")
        wait_for(driver, "Deployments", TINY["name"], "realspace-submitted-sweep")
        driver.get(f"{ui}/deployments/deployment/{dep.id}")
        wait_for(driver, TINY["name"], "realspace-submitted-sweep", POOL)
        # the submitted run: Completed, its subflow (the sweep) listed
        driver.get(f"{ui}/runs/flow-run/{run.id}")
        wait_for(driver, run.name, "Completed")
        tab = wait.until(ec.element_to_be_clickable((By.XPATH, "//*[text()='Subflow Runs']")))
        tab.click()
        wait_for(driver, sub.name)
        # the sweep's flow run: Completed, with its task runs (open, shards, close)
        driver.get(f"{ui}/runs/flow-run/{sub.id}")
        wait_for(driver, sub.name, "Completed")
        tab = wait.until(ec.element_to_be_clickable((By.XPATH, "//*[text()='Task Runs']")))
        tab.click()
        wait_for(driver, "Completed", *tasks)  # each by its run's name
        driver.save_screenshot(str(tmp_path / "task-runs.png"))
    except Exception:
        driver.save_screenshot(str(tmp_path / "failure.png"))  # what the page showed
        raise
    finally:
        driver.quit()
