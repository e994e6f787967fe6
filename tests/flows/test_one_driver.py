"""One driver per sweep, with real drivers: two started one second apart (either waiting
or refusing, in both orders) train the sweep once; a driver SIGKILLed while it holds the
lease is taken over by a rerun that resumes and finishes within a minute."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from factories import sweep_config, write_config
from procs import CLI, quiet_env
from sweepstate import check_complete, planned, sweep_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOC = sweep_config(
    name="one-driver",
    widths=[2, 3],
    seeds=2,
    optimizer={"steps": 60, "lr": 0.02},
    data={"n_samples": 16},
)
RUNS = 8  # 2 widths x 2 parametrizations x 2 seeds


def _start(cfg: Path, cwd: Path, tag: str, *args, **env) -> subprocess.Popen:
    """A driver in its own process group, its output in files named by ``tag``."""
    return subprocess.Popen(
        CLI + ["sweep", str(cfg), "--quiet", "--in-process", "--no-analysis", *args],
        cwd=cwd,
        env=quiet_env(**env),
        stdout=(cwd / f"{tag}.out").open("w"),
        stderr=(cwd / f"{tag}.err").open("w"),
        text=True,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen, cwd: Path, tag: str, timeout: float = 400) -> dict:
    try:
        code = proc.wait(timeout=timeout)
    finally:
        try:  # nothing a driver started outlives the test
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    out, err = (cwd / f"{tag}.out").read_text(), (cwd / f"{tag}.err").read_text()
    flat = {"out": " ".join(out.split()), "err": " ".join(err.split())}  # lines rewrapped
    return {"pid": proc.pid, "code": code, **flat}


def _lease_params(state) -> list[dict]:
    """The generations of the sweep's lease, in order (one per driver that took it)."""
    params = state.parent.data.params
    gens = sorted(int(k.rsplit(".", 1)[1]) for k in params if k.startswith("realspace.lease."))
    return [json.loads(params[f"realspace.lease.{g}"]) for g in gens]


@pytest.mark.parametrize("order", [("plain", "wait"), ("wait", "plain")])
def test_two_drivers_started_a_second_apart_train_the_sweep_once(tmp_path, order):
    cfg = write_config(tmp_path / "s.yaml", DOC)
    procs = {}
    for i, mode in enumerate(order):
        if i:
            time.sleep(1.0)
        procs[mode] = _start(cfg, tmp_path, mode, *(["--wait"] if mode == "wait" else []))
    res = {mode: _finish(p, tmp_path, mode) for mode, p in procs.items()}
    # whichever took the lease first trained everything; the other trained nothing
    won = [m for m, r in res.items() if f"{RUNS} trained, 0 already finished" in r["out"]]
    assert len(won) == 1, res
    winner, loser = res[won[0]], res[won[0] == "plain" and "wait" or "plain"]
    assert winner["code"] == 0, winner
    named = f"another driver (host {socket.gethostname()}, pid {winner['pid']}, since "
    if loser is res["plain"]:  # refused at once, naming the live driver
        assert loser["code"] == 3, loser
        assert "refused: sweep 'one-driver' is being run by " + named in loser["err"], loser
        assert "last heartbeat" in loser["err"] and "trained" not in loser["out"], loser
    else:  # waited for it, then found nothing left to train
        assert loser["code"] == 0, loser
        assert (
            "waiting: another driver runs this sweep" + named[len("another driver") :]
            in (loser["err"])
        ), loser
        assert f"0 trained, {RUNS} already finished" in loser["out"], loser
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    state = sweep_state(uri, DOC["name"])
    check_complete(uri, state, planned(DOC)[0])  # one FINISHED run per key, no duplicates
    holders = _lease_params(state)
    assert holders[0]["pid"] == winner["pid"]
    # the refused driver never held it; the waiting one took it after the winner let go
    assert [h["pid"] for h in holders] == [winner["pid"]] + (
        [loser["pid"]] if loser is res["wait"] else []
    )
    assert json.loads(state.parent.data.tags["realspace.lease"])["released"] is True


def test_a_sigkilled_holder_is_taken_over_and_a_rerun_resumes_within_a_minute(tmp_path):
    from mlflow.tracking import MlflowClient

    from realspace.tracking.lease import LeaseState, lease_state, read_holder

    cfg = write_config(tmp_path / "s.yaml", DOC)
    # SIGKILLed after its first table piece is written, before the second
    holder = _start(cfg, tmp_path, "killed", REALSPACE_FAULT="logging:2")
    killed = _finish(holder, tmp_path, "killed")
    died = time.time()
    assert killed["code"] == -signal.SIGKILL, killed
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    state = sweep_state(uri, DOC["name"])
    left = read_holder(MlflowClient(uri), state.parent.info.run_id)
    assert left.pid == killed["pid"] and not left.released  # nobody gave it back ...
    assert lease_state(left) is LeaseState.DEAD  # ... and its process is gone
    trained = len(state.keys)
    assert 0 < trained < RUNS
    rerun = _finish(_start(cfg, tmp_path, "rerun"), tmp_path, "rerun", timeout=120)
    assert rerun["code"] == 0, rerun
    assert time.time() - died < 60, "the rerun took more than a minute"
    assert f"{RUNS - trained} trained, {trained} already finished" in rerun["out"], rerun
    state = sweep_state(uri, DOC["name"])
    check_complete(uri, state, planned(DOC)[0])
    assert [h["pid"] for h in _lease_params(state)] == [killed["pid"], rerun["pid"]]
