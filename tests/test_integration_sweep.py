"""The real command on a real local Ray: a sweep, and a sweep killed with SIGKILL and rerun.

Each test gives Ray its own temporary directory and stops what it started by its
processes, never with a machine-wide `ray stop`.
"""

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from procs import CLI, kill_matching, quiet_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _env(ray_tmp: str) -> dict:
    return quiet_env(RAY_TMPDIR=ray_tmp)


@pytest.fixture
def workdir(tmp_path):
    ray_tmp = tempfile.mkdtemp(prefix="rsray", dir="/tmp")  # short: Ray's socket paths
    yield tmp_path, ray_tmp
    kill_matching(ray_tmp)


def _children(uri: str, experiment: str, deleted=False):
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    view = ViewType.DELETED_ONLY if deleted else ViewType.ACTIVE_ONLY
    runs = client.search_runs(
        [exp.experiment_id], "tags.`realspace.run_key` != ''", run_view_type=view, max_results=10000
    )
    return [r for r in runs if "realspace.stage" not in r.data.tags]  # trained networks only


def _sweep(cfg: Path, cwd: Path, ray_tmp: str, timeout: int, *extra: str):
    """Run `realspace sweep` to its end; it must succeed."""
    res = subprocess.run(
        CLI + ["sweep", str(cfg), "--quiet", *extra],
        cwd=cwd,
        env=_env(ray_tmp),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def _finished_count(db: Path) -> int:
    """FINISHED child runs, read straight from SQLite (read-only: an MLflow client here could
    race the sweep's own schema set-up)."""
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute(
                "SELECT COUNT(*) FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid "
                "WHERE tags.key = 'realspace.run_key' AND runs.status = 'FINISHED'"
            ).fetchone()[0]
    except sqlite3.Error:  # not created yet, or locked for a moment
        return 0


def _config(path: Path, name: str, widths, steps) -> Path:
    doc = {
        "name": name,
        "targets": [{"name": "sin"}, {"name": "teacher", "teacher_width": 2}],
        "widths": widths,
        "seeds": 2,
        "optimizer": {"steps": steps, "lr": 0.02},
        "data": {"n_samples": 64},
        "analysis": {
            "pathology_max_log2": 4,
            "seed_pairs": 1,
            "retrain_widths": [2],
            "retrain_deltas": [0.01],
            "retrain_kinds": ["add"],
            "retrain_steps": 20,
        },
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_sweep_on_a_local_ray(workdir):
    tmp, ray_tmp = workdir
    cfg = _config(tmp / "s.yaml", "ray-small", [2, 3], 80)
    res = _sweep(cfg, tmp, ray_tmp, timeout=400)
    assert "16 trained" in res.stdout
    # the analysis units ran on the Ray workers, and the report was written
    assert "Analysis: 18 units logged" in res.stdout, res.stdout
    assert (tmp / "reports" / "ray-small" / "report.html").stat().st_size > 10_000
    children = _children(f"sqlite:///{tmp / 'mlruns.db'}", "ray-small")
    assert len(children) == 16 and {c.info.status for c in children} == {"FINISHED"}
    st = subprocess.run(
        CLI + ["status", str(cfg)],
        cwd=tmp,
        env=_env(ray_tmp),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "total: 16 done, 0 pending, 0 failed of 16" in st.stdout


def test_sigkill_then_rerun_completes_without_duplicates(workdir):
    tmp, ray_tmp = workdir
    cfg = _config(tmp / "k.yaml", "killed", [2, 3, 4, 5, 6, 7], 600)
    uri = f"sqlite:///{tmp / 'mlruns.db'}"
    proc = subprocess.Popen(
        CLI + ["sweep", str(cfg), "--quiet", "--no-analysis"],
        cwd=tmp,
        env=_env(ray_tmp),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 400
    try:
        while time.time() < deadline:
            if _finished_count(tmp / "mlruns.db") >= 4:
                break
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("no run finished in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kill_matching(ray_tmp)
    before = {
        c.data.tags["realspace.run_key"]: c.info.run_id
        for c in _children(uri, "killed")
        if c.info.status == "FINISHED"
    }
    assert 4 <= len(before) < 48

    res = _sweep(cfg, tmp, ray_tmp, 600, "--no-analysis")
    assert f"{len(before)} already finished" in res.stdout
    after = _children(uri, "killed")
    keys = [c.data.tags["realspace.run_key"] for c in after]
    assert len(keys) == len(set(keys)) == 48
    assert {c.info.status for c in after} == {"FINISHED"}
    kept = {c.data.tags["realspace.run_key"]: c.info.run_id for c in after}
    assert all(kept[k] == run_id for k, run_id in before.items())  # not trained twice
    # what the rerun cleaned up was only ever unfinished
    assert {c.info.status for c in _children(uri, "killed", deleted=True)} <= {"RUNNING"}
