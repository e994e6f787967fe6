"""Faults injected into real sweeps (tasks/faults.py): the driver SIGKILLed at five points,
a Ray worker killed mid-shard, a shard that fails every retry, the tracking server away
for 20 s, divergent runs. Each test checks the final experiment exactly: every planned
network once in its cell's tables (no duplicates), every cell, analysis unit and network
run FINISHED once, nothing trained twice (a network in the tables keeps its table, row and
file), nothing FINISHED with data missing."""

import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from factories import LIGHT_ANALYSIS, SIN_AND_TEACHER, sweep_config, write_config
from procs import CLI, free_port, kill_matching, quiet_env, start_mlflow
from sweepstate import check_complete, check_consistent, planned, sweep_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOC = sweep_config(
    name="faults",
    targets=SIN_AND_TEACHER,
    widths=[2, 3, 4, 5],
    seeds=2,
    optimizer={"steps": 120, "lr": 0.02},
    data={"n_samples": 32},
    analysis=LIGHT_ANALYSIS,
)


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


def _check_complete(uri: str, doc: dict, analysis: bool = True):
    """The sweep's state, checked complete (sweepstate.check_complete)."""
    runs, units = planned(doc)
    state = sweep_state(uri, doc["name"])
    check_complete(uri, state, runs, units if analysis else ())
    return state


def _files(state) -> dict[tuple[str, str], tuple[int, int]]:
    """(cell run id, table file) -> (inode, mtime) of each table of a local artifact
    store: a table written again (even with the same content) shows a new pair."""
    out = {}
    for c in state.cells:
        folder = Path(urlparse(c.info.artifact_uri).path) / "shards"
        for name in state.pieces[c.info.run_id]:
            if name.endswith(".parquet"):
                st = (folder / name).stat()
                out[(c.info.run_id, name)] = (st.st_ino, st.st_mtime_ns)
    return out


def _finished(runs) -> dict[str, str]:
    """key (run key, or cell key for cells) -> run id of the FINISHED ones."""
    tags = [(r, r.data.tags) for r in runs if r.info.status == "FINISHED"]
    return {t.get("realspace.cell") or t["realspace.run_key"]: r.info.run_id for r, t in tags}


def test_driver_sigkilled_at_five_points_then_a_rerun_completes(tmp_path):
    cfg = write_config(tmp_path / "f.yaml", DOC)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    runs, units = planned(DOC)
    rows: dict = {}  # run key -> (cell run, table, row) of every network in the tables so far
    files: dict = {}  # (cell run, table) -> (inode, mtime) of every table so far
    cells: dict = {}  # cell key -> its run id, once opened
    done: dict = {"cells": {}, "networks": {}, "units": {}}  # FINISHED runs so far, by key
    pieces, state = [], None
    # planning; mid-shard (the 2nd shard training); a shard trained, nothing written; after
    # the 5th of 16 table pieces written (of 8 shards of 2 cells: shards half written,
    # cells being closed); mid-analysis (after 3 units)
    for fault in ("plan", "train:2", "trained:1", "logging:5", "analysis:3"):
        res = _sweep(cfg, tmp_path, "--in-process", fault=fault)
        assert res.returncode == -signal.SIGKILL, (fault, res.returncode, res.stderr[-2000:])
        state = sweep_state(uri, DOC["name"])
        where = check_consistent(uri, state, runs, units)  # no key twice, FINISHED complete
        now = _files(state)
        # nothing in the tables is trained or written again: same table, same row, same file
        for key, placed in rows.items():
            assert where.get(key) == placed, (fault, key)
        for name, stat in files.items():
            assert now.get(name) == stat, (fault, name)
        rows.update(where)
        files.update(now)
        # a cell run is opened once and reused; nothing FINISHED is redone or deleted
        opened = {c.data.tags["realspace.cell"]: c.info.run_id for c in state.cells}
        assert all(opened.get(k) == v for k, v in cells.items()), fault
        cells.update(opened)
        for kind, found in done.items():
            now_done = _finished(getattr(state, kind))
            assert all(now_done.get(k) == v for k, v in found.items()), (fault, kind)
            found.update(now_done)
        pieces.append(len(now))
        if fault == "plan":  # killed before anything was opened: the parent holds the lease
            assert state.parent is not None and not state.cells
        else:
            assert state.parent.info.status == "RUNNING" and len(state.cells) == 16
    # progress was made at each point that writes, and the sweep is not done
    assert pieces[3] - pieces[2] >= 5 and pieces[3] < 16, pieces
    assert len(rows) == 32 and len(done["cells"]) == 16 and len(done["networks"]) == 32
    assert len(done["units"]) == 3 < len(units)
    res = _sweep(cfg, tmp_path, "--in-process")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 trained, 32 already finished" in res.stdout, res.stdout
    state = _check_complete(uri, DOC)
    assert check_consistent(uri, state, runs, units) == rows and _files(state) == files
    for kind, found in done.items():
        assert all(_finished(getattr(state, kind))[k] == v for k, v in found.items()), kind
    assert (tmp_path / "reports" / "faults" / "report.html").exists()


def test_a_ray_worker_killed_mid_shard_is_retried(tmp_path):
    ray_tmp = tempfile.mkdtemp(prefix="rsflt", dir="/tmp")
    doc = {**DOC, "name": "worker-kill"}
    cfg = write_config(tmp_path / "w.yaml", doc)
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
    state = _check_complete(f"sqlite:///{tmp_path / 'mlruns.db'}", doc, analysis=False)
    # each of the 8 shards wrote its 2 pieces (one per cell) once, from a Ray worker
    assert len(_files(state)) == 16 and len({r["shard"] for r in state.rows}) == 8
    assert all(r["node"] for r in state.rows)


def test_a_shard_failing_every_retry_is_reported_and_the_rest_completes(tmp_path):
    doc = {**DOC, "name": "one-bad-shard", "widths": [2], "targets": [{"name": "sin"}]}
    cfg = write_config(tmp_path / "b.yaml", doc)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    runs, _ = planned(doc)
    # every attempt of the unrestricted shard raises (3 attempts, with backoff)
    res = _sweep(cfg, tmp_path, "--in-process", "--no-analysis", fault="train:raise@unrestricted")
    assert res.returncode == 1
    shown = " ".join(res.stderr.split())
    assert "failed" in shown and "injected fault at train" in shown, shown
    assert "2 trained" in res.stdout and "1 shards failed" in " ".join(res.stdout.split())
    state = sweep_state(uri, doc["name"])
    before = check_consistent(uri, state, runs)
    good = {r.key for r in runs if r.spec.parametrization == "restricted"}
    assert set(before) == good  # the other shard: complete, nothing partial
    by_kind = {c.data.tags["parametrization"]: c for c in state.cells}
    assert by_kind["restricted"].info.status == "FINISHED"
    bad = by_kind["unrestricted"]  # open, empty, until a rerun trains its networks
    assert bad.info.status == "RUNNING" and not state.pieces[bad.info.run_id]
    assert sorted(n.data.tags["realspace.run_key"] for n in state.networks) == sorted(good)
    assert {n.data.params["parametrization"] for n in state.networks} == {"restricted"}
    assert {n.info.status for n in state.networks} == {"FINISHED"}
    assert state.parent.info.status == "FAILED"
    files, nets = _files(state), _finished(state.networks)
    res = _sweep(cfg, tmp_path, "--in-process", "--no-analysis")  # the rerun completes it
    assert res.returncode == 0 and "2 trained, 2 already finished" in res.stdout
    after = _check_complete(uri, doc, analysis=False)
    where = check_consistent(uri, after, runs)
    assert all(where[k] == v for k, v in before.items())  # not trained again
    assert all(_files(after)[k] == v for k, v in files.items())
    assert all(_finished(after.networks)[k] == v for k, v in nets.items())
    assert _finished(after.cells)[by_kind["restricted"].data.tags["realspace.cell"]] == (
        by_kind["restricted"].info.run_id
    )
    assert bad.info.run_id in {c.info.run_id for c in after.cells}  # the open cell, reused


def test_the_tracking_server_away_for_20_s_loses_nothing(tmp_path):
    port = free_port()
    backend = f"sqlite:///{tmp_path / 'server.db'}"
    art = tmp_path / "art"
    server = start_mlflow(backend, art, port, tmp_path)
    doc = {**DOC, "name": "outage", "optimizer": {"steps": 400, "lr": 0.02}}
    cfg = write_config(tmp_path / "o.yaml", doc)
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
        deadline = time.time() + 300
        while time.time() < deadline:  # until some pieces came through the server (of 16)
            if len(list(art.rglob("shards/*.parquet"))) >= 4:
                break
            assert sweep.poll() is None, sweep.communicate()
            time.sleep(0.3)
        else:
            pytest.fail("no table written through the server in time")
        os.killpg(server.pid, signal.SIGKILL)  # the server goes away ...
        server.wait()
        time.sleep(20)
        server = start_mlflow(backend, art, port, tmp_path)  # ... and comes back
        out, err = sweep.communicate(timeout=600)
        assert sweep.returncode == 0, out + err
        assert "32 trained" in out and "0 shards failed" in out, out
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    server = start_mlflow(backend, art, port, tmp_path)
    try:
        state = _check_complete(uri, doc)
        assert all(c.info.artifact_uri.startswith("mlflow-artifacts:") for c in state.cells)
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
    cfg = write_config(tmp_path / "d.yaml", doc)
    res = _sweep(cfg, tmp_path, "--in-process", "--no-analysis")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "8 trained, 0 already finished, 4 diverged" in res.stdout, res.stdout
    state = _check_complete(f"sqlite:///{tmp_path / 'mlruns.db'}", doc, analysis=False)
    bad = [r for r in state.rows if r["lr"] == 1e6]
    good = [r for r in state.rows if r["lr"] == 0.01]
    assert len(bad) == len(good) == 4
    assert {r["run_status"] for r in bad} == {"diverged"}
    assert all(0 <= r["diverged_step"] < 50 for r in bad)
    assert all(r["run_status"] != "diverged" for r in good)
    assert all(np.isfinite(r["loss"]) for r in good)
    # their network runs and cells say so too
    nets = {n.data.tags["realspace.run_key"]: n for n in state.networks}
    for r in bad:
        net = nets[r["run_key"]]
        assert net.data.tags["status"] == "diverged" and net.data.params["lr"] == "1000000.0"
        assert net.data.metrics["diverged_step"] == r["diverged_step"]
    for r in good:
        net = nets[r["run_key"]]
        assert net.data.tags["status"] == r["run_status"] and net.data.params["lr"] == "0.01"
        assert net.data.metrics["loss"] == r["loss"]
    for c in state.cells:
        diverging = c.data.params["lr"] == "1000000.0"
        assert c.data.metrics["diverged"] == (2 if diverging else 0)
        assert ("objective_median" in c.data.metrics) == (not diverging)


def _ray_workers(root: int) -> list[int]:
    """The Ray worker processes (titled ``ray::...``) descending from process ``root``
    (found by ancestry: a worker leads a process group of its own)."""
    parent, title = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
                title[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except (OSError, IndexError, ValueError):
                continue
    found = []
    for pid, name in title.items():
        up = pid
        while up in parent and up != root and up > 1:
            up = parent[up]
        if up == root and name.startswith(b"ray::"):
            found.append(pid)
    return found


def test_a_full_disk_while_tables_are_written_ends_with_a_clear_error(tmp_path):
    """Once a piece is in, the Ray worker's file-size limit (RLIMIT_FSIZE, lowered on the
    running process: the kernel then refuses its writes as a full disk would) drops to
    1 kB: the next shard fails at its write, unretried, no further shard is started, the
    error names the file and what to do, nothing half-written stays, nothing FINISHED
    lacks data, and a rerun completes the sweep."""
    import resource

    ray_tmp = tempfile.mkdtemp(prefix="rsfull", dir="/tmp")
    doc = {
        **DOC,
        "name": "disk-full",
        "targets": [{"name": "sin"}],
        # one worker, shards of a few seconds: time to step in after the first piece
        "optimizer": {"steps": 3000, "lr": 0.02},
        "execution": {"num_workers": 1},
    }
    cfg = write_config(tmp_path / "full.yaml", doc)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    runs, _ = planned(doc)
    sweep = subprocess.Popen(
        CLI + ["sweep", str(cfg), "--quiet", "--no-analysis"],
        cwd=tmp_path,
        env=quiet_env(RAY_TMPDIR=ray_tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    limited: set[int] = set()
    try:
        deadline = time.time() + 300
        while not list(tmp_path.rglob("shards/*.parquet")):
            assert sweep.poll() is None and time.time() < deadline, sweep.communicate()
            time.sleep(0.1)
        while sweep.poll() is None:  # every worker, those Ray starts later included
            for pid in set(_ray_workers(sweep.pid)) - limited:
                try:
                    resource.prlimit(pid, resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
                    limited.add(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        out, err = sweep.communicate(timeout=30)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
        kill_matching(ray_tmp)
    assert limited, "no Ray worker was found to limit"
    assert sweep.returncode == 1, out + err
    shown = " ".join(err.split())
    assert "no space to write " in shown and "File too large" in shown, shown
    assert "rerun the sweep; it resumes" in shown and "stopped: no more shards" in shown, shown
    # the shard that hit the limit and those already handed out (a worker's and one queued,
    # see flows.sweep.in_order) failed; the others were never started (8 shards of 2)
    said = re.search(
        r"(\d+) trained, 0 already finished, 0 diverged, (\d+) shards failed; "
        r"(\d+) runs remaining",
        " ".join(out.split()),
    )
    assert said, out
    trained, failed, remaining = map(int, said.groups())
    assert 1 <= failed <= 3 and trained + remaining == 16 and trained // 2 + failed < 8, out
    state = sweep_state(uri, doc["name"])
    before = check_consistent(uri, state, runs)  # nothing FINISHED without its data
    assert 0 < len(before) < len(runs)
    assert {c.info.status for c in state.cells} == {"FINISHED", "RUNNING"}
    assert state.parent.info.status == "FAILED"
    assert not list(tmp_path.glob("mlartifacts/**/*.tmp"))  # no half-written file left
    res = _sweep(cfg, tmp_path, "--in-process", "--no-analysis")  # room again: it resumes
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(runs) - len(before)} trained, {len(before)} already finished" in res.stdout
    after = _check_complete(uri, doc, analysis=False)
    assert all(check_consistent(uri, after, runs)[k] == v for k, v in before.items())


def test_status_and_slow_readers_of_the_embedded_store_never_fail_a_sweep(tmp_path):
    """While a sweep writes its SQLite store: `realspace status` over and over, the
    reader `report` uses, and a reader that keeps the database locked for 8 s at a time
    (a slow UI query; longer than SQLite's default 5 s wait). Writers wait it out (MLflow's
    sessions wait up to 20 s for a lock), so the sweep completes, and every read answers."""
    import sqlite3
    import threading

    from realspace.tracking.reader import SweepReader

    doc = {**DOC, "name": "readers", "optimizer": {"steps": 600, "lr": 0.02}}
    cfg = write_config(tmp_path / "r.yaml", doc)
    db = tmp_path / "mlruns.db"
    uri = f"sqlite:///{db}"
    sweep = subprocess.Popen(
        CLI + ["sweep", str(cfg), "--quiet", "--in-process", "--no-analysis"],
        cwd=tmp_path,
        env=quiet_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stop, held, read = threading.Event(), [], []

    def lock_holder():  # twice: each hold stalls every writer of the sweep
        while not stop.is_set() and len(held) < 2:
            try:
                con = sqlite3.connect(db, timeout=60)
                con.execute("BEGIN")
                con.execute("SELECT count(*) FROM runs").fetchone()  # a shared lock, held
                t = time.time()
                stop.wait(8)
                con.rollback()
                held.append(time.time() - t)
            finally:
                con.close()
            stop.wait(2)

    locker = threading.Thread(target=lock_holder)
    statuses = []
    try:
        deadline = time.time() + 400
        while not list(tmp_path.rglob("shards/*.parquet")):  # the sweep is writing
            assert sweep.poll() is None and time.time() < deadline, sweep.communicate()
            time.sleep(0.2)
        locker.start()
        while sweep.poll() is None:
            assert time.time() < deadline, "the sweep did not end"
            st = subprocess.run(
                CLI + ["status", str(cfg), "--tracking-uri", uri],
                cwd=tmp_path,
                env=quiet_env(),
                capture_output=True,
                text=True,
                timeout=120,
            )
            statuses.append(st)
            try:
                read.append(sum(s == "done" for s in SweepReader(doc, uri).status().values()))
            except LookupError:  # the parent run is not there yet
                pass
        out, err = sweep.communicate(timeout=30)
    finally:
        stop.set()
        if locker.is_alive():
            locker.join()
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
    assert sweep.returncode == 0, out + err
    assert "32 trained" in out, out
    assert len(held) >= 2 and max(held) >= 7.5, held  # the database was held, more than once
    assert len(statuses) >= 2 and all(s.returncode == 0 for s in statuses), statuses
    assert all("of 32" in s.stdout for s in statuses)
    assert read == sorted(read)  # what the reader saw only grew
    _check_complete(uri, doc, analysis=False)
