"""The real command on a real local Ray: a sweep, and a sweep killed with SIGKILL and rerun.

Each test gives Ray its own temporary directory and stops what it started by its
processes, never with a machine-wide `ray stop`.
"""

import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from factories import SIN_AND_TEACHER, sweep_config, write_config
from procs import CLI, kill_matching, quiet_env
from sweepstate import check_complete, check_consistent, planned, sweep_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _env(ray_tmp: str) -> dict:
    return quiet_env(RAY_TMPDIR=ray_tmp)


@pytest.fixture
def workdir(tmp_path):
    ray_tmp = tempfile.mkdtemp(prefix="rsray", dir="/tmp")  # short: Ray's socket paths
    yield tmp_path, ray_tmp
    kill_matching(ray_tmp)


def _deleted(uri: str, experiment: str) -> list:
    """The runs a sweep deleted (left unfinished by a killed execution, then redone)."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], "", run_view_type=ViewType.DELETED_ONLY)


def _tables(folder: Path) -> dict[Path, tuple[int, int]]:
    """(inode, mtime) of every cell table under ``folder`` (a sweep's local artifacts)."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("shards/*.parquet")}


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


def _trained_count(folder: Path) -> int:
    """Networks in the cells' tables, read straight from the local artifact files with
    pyarrow (an MLflow client here could race the sweep's own schema set-up); a table
    being written (or cut short) is not counted."""
    import pyarrow.parquet as pq

    count = 0
    for path in folder.rglob("shards/*.parquet"):
        try:
            count += pq.read_metadata(path).num_rows
        except Exception:  # noqa: BLE001 - not (fully) there yet
            continue
    return count


def _config(path: Path, name: str, widths, steps) -> Path:
    doc = sweep_config(
        name=name,
        targets=SIN_AND_TEACHER,
        widths=widths,
        seeds=2,
        optimizer={"steps": steps, "lr": 0.02},
        data={"n_samples": 64},
        analysis={
            "pathology_max_log2": 4,
            "seed_pairs": 1,
            "retrain_widths": [2],
            "retrain_deltas": [0.01],
            "retrain_kinds": ["add"],
            "retrain_steps": 20,
        },
    )
    return write_config(path, doc)


def test_sweep_on_a_local_ray(workdir):
    tmp, ray_tmp = workdir
    cfg = _config(tmp / "s.yaml", "ray-small", [2, 3], 80)
    res = _sweep(cfg, tmp, ray_tmp, timeout=400)
    assert "16 trained" in res.stdout
    # the analysis units ran on the Ray workers, and the report was written: 6 pathology
    # families, 8 seed-pair cells, 4 retraining units, 2 witness units (an unrestricted
    # problem each; no stability unit: its widths are 8 and 16)
    assert "Analysis: 20 units logged" in res.stdout, res.stdout
    assert (tmp / "reports" / "ray-small" / "report.html").stat().st_size > 10_000
    uri = f"sqlite:///{tmp / 'mlruns.db'}"
    runs, units = planned(cfg)
    assert len(units) == 20 and sum(u.stage == "witness" for u in units) == 2
    state = sweep_state(uri, "ray-small")
    check_complete(uri, state, runs, units)  # 8 cells, 16 networks (each once), 20 units
    assert len(state.cells) == 8 and len(state.networks) == 16
    assert all(r["node"] for r in state.rows)  # trained (and written) on Ray workers
    st = subprocess.run(
        CLI + ["status", str(cfg)],
        cwd=tmp,
        env=_env(ray_tmp),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "total: 16 done, 0 pending of 16" in st.stdout, st.stdout


def test_sigkill_then_rerun_completes_without_duplicates(workdir):
    tmp, ray_tmp = workdir
    cfg = _config(tmp / "k.yaml", "killed", [2, 3, 4, 5, 6, 7], 600)
    uri = f"sqlite:///{tmp / 'mlruns.db'}"
    runs, _ = planned(cfg)
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
            if _trained_count(tmp) >= 4:
                break
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("no network was in a table in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kill_matching(ray_tmp)
    state = sweep_state(uri, "killed")
    before = check_consistent(uri, state, runs)  # no key twice, FINISHED runs complete
    files = _tables(tmp)
    assert 4 <= len(before) < 48
    done = {c.info.run_id for c in state.cells if c.info.status == "FINISHED"}
    nets = {n.info.run_id for n in state.networks if n.info.status == "FINISHED"}

    res = _sweep(cfg, tmp, ray_tmp, 600, "--no-analysis")
    # a worker of the killed driver's Ray may still finish its shard and write its pieces
    # (complete ones: they count as trained) before it notices; never one network twice
    found = re.search(r"(\d+) trained, (\d+) already finished", res.stdout)
    assert found, res.stdout + res.stderr
    trained, kept = map(int, found.groups())
    assert trained + kept == 48 and kept >= len(before)
    state = sweep_state(uri, "killed")
    after = check_complete(uri, state, runs)  # each of the 48 once, every run FINISHED
    # not trained twice: each network keeps its table, row and file
    assert all(after[k] == v for k, v in before.items())
    assert all(_tables(tmp)[p] == stat for p, stat in files.items())
    assert done <= {c.info.run_id for c in state.cells}
    assert nets <= {n.info.run_id for n in state.networks}
    # what the rerun cleaned up was only ever unfinished
    assert {r.info.status for r in _deleted(uri, "killed")} <= {"RUNNING"}
