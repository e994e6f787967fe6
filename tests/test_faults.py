"""Faults injected into real sweeps (tasks/faults.py): the driver SIGKILLed at five points,
a Ray worker killed mid-shard, a shard that fails every retry, the tracking server away
for 20 s, divergent runs. Each test checks the final experiment exactly: one FINISHED
child per run key, no duplicates, nothing trained twice, nothing FINISHED with data
missing."""

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from procs import CLI, free_port, kill_matching, quiet_env, start_mlflow

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOC = {
    "name": "faults",
    "targets": [{"name": "sin"}, {"name": "teacher", "teacher_width": 2}],
    "widths": [2, 3, 4, 5],
    "seeds": 2,
    "optimizer": {"steps": 120, "lr": 0.02},
    "data": {"n_samples": 32},
    "analysis": {"pathology_max_log2": 3, "seed_pairs": 1, "retrain_seeds": 0},
}


def _sweep(cfg: Path, cwd: Path, *args, fault=None, timeout=600, **env):
    """Run the command to its end (or its injected death); output through files, so that
    nothing it leaves behind can hold a pipe open. Its process group is then killed:
    leftovers of a killed driver must not outlive the test."""
    extra = {"REALSPACE_FAULT": fault} if fault else {}
    out, err = cwd / "out.log", cwd / "err.log"
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen(
            CLI + ["sweep", str(cfg), "--quiet", *args],
            cwd=cwd,
            env=quiet_env(**extra, **env),
            stdout=fo,
            stderr=fe,
            text=True,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return subprocess.CompletedProcess(proc.args, code, out.read_text(), err.read_text())


def _state(uri: str, name: str):
    """(FINISHED children by key, all active children) of the sweep."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return {}, []
    runs = client.search_runs(
        [exp.experiment_id], "tags.`realspace.run_key` != ''", max_results=10000
    )
    finished = {}
    for r in runs:
        if r.info.status == "FINISHED":
            key = r.data.tags["realspace.run_key"]
            assert key not in finished, f"two FINISHED children for {key}"
            finished[key] = r
    return finished, runs


def _check_complete(uri: str, doc: dict, tmp: Path):
    from realspace.sweep.analysis import plan_analysis
    from realspace.sweep.config import parse_config
    from realspace.sweep.plan import plan_runs

    cfg = parse_config(doc)
    runs = plan_runs(cfg)
    units = plan_analysis(cfg, runs)
    finished, everything = _state(uri, doc["name"])
    assert set(finished) == {r.key for r in runs} | {u.key for u in units}
    assert len(everything) == len(finished)  # nothing left RUNNING, nothing duplicated
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    for r in finished.values():  # FINISHED means complete: its data is all there
        names = {f.path for f in client.list_artifacts(r.info.run_id)}
        if "realspace.stage" in r.data.tags:
            assert names == {"table.json"}
        else:
            assert {"params.npz", "record.json"} <= names and "loss" in r.data.metrics
    return finished


def test_driver_sigkilled_at_five_points_then_a_rerun_completes(tmp_path):
    cfg = tmp_path / "f.yaml"
    cfg.write_text(yaml.safe_dump(DOC))
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    seen: dict[str, str] = {}  # key -> run id of every FINISHED child so far
    # planning; mid-shard (2nd shard); trained, not logged; mid-logging (6th run);
    # mid-analysis (after 3 units)
    for fault in ("plan", "train:2", "trained:1", "logging:6", "analysis:3"):
        res = _sweep(cfg, tmp_path, "--in-process", fault=fault)
        assert res.returncode == -signal.SIGKILL, (fault, res.returncode, res.stderr[-2000:])
        finished, _ = _state(uri, DOC["name"])
        for key, run_id in seen.items():  # nothing finished is ever redone
            assert finished[key].info.run_id == run_id, (fault, key)
        seen.update({k: r.info.run_id for k, r in finished.items()})
    assert 10 <= len(seen) < 32 + 14  # progress was made, the sweep is not done
    res = _sweep(cfg, tmp_path, "--in-process")
    assert res.returncode == 0, res.stdout + res.stderr
    finished = _check_complete(uri, DOC, tmp_path)
    assert all(finished[k].info.run_id == v for k, v in seen.items())
    assert (tmp_path / "reports" / "faults" / "report.html").exists()


def test_a_ray_worker_killed_mid_shard_is_retried(tmp_path):
    ray_tmp = tempfile.mkdtemp(prefix="rsflt", dir="/tmp")
    cfg = tmp_path / "w.yaml"
    cfg.write_text(yaml.safe_dump({**DOC, "name": "worker-kill"}))
    mark = tmp_path / "killed-once"
    try:
        res = _sweep(
            cfg,
            tmp_path,
            "--no-analysis",
            fault="train",
            REALSPACE_FAULT_MARK=str(mark),
            RAY_TMPDIR=ray_tmp,
        )
    finally:
        kill_matching(ray_tmp)
    assert mark.exists()  # a worker did die mid-shard
    assert res.returncode == 0, res.stdout + res.stderr
    assert "32 trained" in res.stdout and "0 shards failed" in res.stdout
    finished, everything = _state(f"sqlite:///{tmp_path / 'mlruns.db'}", "worker-kill")
    assert len(finished) == len(everything) == 32


def test_a_shard_failing_every_retry_is_reported_and_the_rest_completes(tmp_path):
    doc = {**DOC, "name": "one-bad-shard", "widths": [2], "targets": [{"name": "sin"}]}
    cfg = tmp_path / "b.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    # every attempt of the unrestricted shard raises (3 attempts, with backoff)
    res = _sweep(cfg, tmp_path, "--in-process", "--no-analysis", fault="train:raise@unrestricted")
    assert res.returncode == 1
    shown = " ".join(res.stderr.split())
    assert "failed" in shown and "injected fault at train" in shown, shown
    assert "2 trained" in res.stdout and "1 shards failed" in " ".join(res.stdout.split())
    finished, everything = _state(f"sqlite:///{tmp_path / 'mlruns.db'}", "one-bad-shard")
    assert len(finished) == len(everything) == 2  # the other shard: complete, nothing partial
    assert {r.data.params["parametrization"] for r in finished.values()} == {"restricted"}
    res = _sweep(cfg, tmp_path, "--in-process", "--no-analysis")  # the rerun completes it
    assert res.returncode == 0 and "2 trained, 2 already finished" in res.stdout


def test_the_tracking_server_away_for_20_s_loses_nothing(tmp_path):
    port = free_port()
    backend = f"sqlite:///{tmp_path / 'server.db'}"
    server = start_mlflow(backend, tmp_path / "art", port, tmp_path)
    doc = {**DOC, "name": "outage", "optimizer": {"steps": 400, "lr": 0.02}}
    cfg = tmp_path / "o.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    uri = f"http://127.0.0.1:{port}"
    sweep = subprocess.Popen(
        CLI + ["sweep", str(cfg), "--quiet", "--in-process", "--tracking-uri", uri],
        cwd=tmp_path,
        env=quiet_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        import sqlite3

        deadline = time.time() + 300
        while time.time() < deadline:  # wait until some runs are logged
            try:
                with sqlite3.connect(f"file:{tmp_path / 'server.db'}?mode=ro", uri=True) as con:
                    n = con.execute(
                        "SELECT COUNT(*) FROM runs WHERE status = 'FINISHED'"
                    ).fetchone()[0]
            except sqlite3.Error:
                n = 0
            if n >= 4:
                break
            assert sweep.poll() is None, sweep.communicate()
            time.sleep(0.3)
        os.killpg(server.pid, signal.SIGKILL)  # the server goes away ...
        server.wait()
        time.sleep(20)
        server = start_mlflow(backend, tmp_path / "art", port, tmp_path)  # ... and comes back
        out, err = sweep.communicate(timeout=600)
        assert sweep.returncode == 0, out + err
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    server = start_mlflow(backend, tmp_path / "art", port, tmp_path)
    try:
        _check_complete(uri, doc, tmp_path)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_divergent_runs_are_recorded_as_diverged_with_their_step(tmp_path):
    doc = {
        **DOC,
        "name": "diverge",
        "targets": [{"name": "sin"}],
        "widths": [4],
        "optimizer": {"kind": "gd", "lr": [1e6, 0.01], "steps": 50},
    }
    cfg = tmp_path / "d.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    res = _sweep(cfg, tmp_path, "--in-process", "--no-analysis")
    assert res.returncode == 0, res.stdout + res.stderr
    finished, everything = _state(f"sqlite:///{tmp_path / 'mlruns.db'}", "diverge")
    assert len(finished) == len(everything) == 8
    bad = [r for r in finished.values() if r.data.params["lr"] == "1000000.0"]
    good = [r for r in finished.values() if r.data.params["lr"] == "0.01"]
    assert {r.data.tags["status"] for r in bad} == {"diverged"}
    assert all(0 <= r.data.metrics["diverged_step"] < 50 for r in bad)
    assert all(r.data.tags["status"] != "diverged" for r in good)
    assert all(np.isfinite(r.data.metrics["loss"]) for r in good)
