"""Processes for the integration tests: free loopback ports, a quiet environment, servers
(MLflow's, Prefect's) started on loopback and awaited over HTTP, and clean-up by PID
(never a machine-wide stop). The fixtures that hold a server for a module: conftest.py."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
CLI = [sys.executable, "-m", "realspace.app.cli"]
# Ray's token for every Ray the tests start (a local one by a sweep, a cluster by `ray
# start`) and for their drivers: one per test session, never written to a file
RAY_AUTH_TOKEN = secrets.token_hex(32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quiet_env(**extra) -> dict:
    """os.environ without telemetry, without a caller's tracking or Prefect settings and
    without injected faults, with Ray's token authentication on (the session's token, for
    a Ray that the process starts and for a cluster it joins or drives alike), plus
    ``extra``."""
    env = {
        **os.environ,
        "DO_NOT_TRACK": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": RAY_AUTH_TOKEN,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PYTHONUNBUFFERED": "1",
    }
    for k in ("REALSPACE_FAULT", "REALSPACE_FAULT_MARK", "PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        env.pop(k, None)
    env.pop("RAY_AUTH_TOKEN_PATH", None)  # the token above, not a file
    return {**env, **extra}


def kill_matching(pattern: str) -> None:
    """SIGKILL every process whose command line contains ``pattern`` (a test's own
    temporary directory)."""
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    for pid in out.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def descendants(pid: int) -> set[int]:
    """The processes below ``pid`` now (children, their children, ...), read from /proc."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the command name is in parentheses and may hold spaces: split after its ')'
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while being read
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parent.items() if p in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie, ended but not yet reaped, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def port_free(port: int) -> bool:
    """Whether a new server could bind ``port`` on loopback (with SO_REUSEADDR, as
    servers bind: the closed connections' TIME_WAIT does not hold the port for them)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path | None = None):
    """Until ``url`` answers 200; fail with the server's log if it exits or times out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"{url}: server exited\n{log.read_text()[-3000:] if log else ''}")
        time.sleep(0.5)
    pytest.fail(f"{url} not up in {timeout} s\n{log.read_text()[-3000:] if log else ''}")


def start_server(cmd, port: int, health: str, cwd: Path, name: str, env: dict, timeout=180):
    """Start a server in its own process group, logging to ``cwd/name.log``; wait for it."""
    log = cwd / f"{name}.log"
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_http(f"http://127.0.0.1:{port}{health}", proc, timeout, log)
    return proc


def start_mlflow(backend: str, artifacts: Path, port: int, cwd: Path) -> subprocess.Popen:
    return start_server(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        port,
        "/health",
        cwd,
        "mlflow",
        quiet_env(),
    )


def start_prefect(home: Path, port: int, ui: bool = False) -> subprocess.Popen:
    """`prefect server start` on loopback, its home and SQLite database in ``home``; with
    its UI (told the API's port: it would call 4200) or without."""
    api = f"http://127.0.0.1:{port}/api"
    settings = {"PREFECT_UI_API_URL": api} if ui else {"PREFECT_UI_ENABLED": "false"}
    return start_server(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        port,
        "/api/health",
        home,
        "prefect",
        quiet_env(PREFECT_HOME=str(home), **settings),
    )
