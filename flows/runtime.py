"""Where flows run: the Prefect API (a server given by PREFECT_API_URL, or a temporary
local one) and the task runner (a local Ray, a Ray cluster, or in-process), and a
fail-fast check that a Ray cluster is there before a sweep starts."""

from __future__ import annotations

import contextlib
import os

# Side effects nobody asked for, off unless the user set them: usage statistics, telemetry,
# Ray's auth-token file, and a Prefect start-up timeout too tight for small machines.
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_TELEMETRY": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # a line per run against a server
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_UI_ENABLED": "false",
}


def quiet_environment() -> None:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def prefect_api(timeout: int = 120):
    """Yield the Prefect API URL: PREFECT_API_URL when set, else a temporary local server
    started here (and stopped on exit), so that Ray workers can share it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = PREFECT_API_URL.value()
    if url:
        yield url
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=timeout)
    _stop_with_this_process(server.server_process.pid)
    os.environ["PREFECT_API_URL"] = server.api_url  # inherited by a local Ray's workers
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


# A watchdog that outlives nothing: when the process that started it dies (even by SIGKILL,
# which runs no cleanup), it stops the temporary Prefect server, which would otherwise
# live on as an orphan holding a port and the dead driver's output pipes.
_WATCHDOG = """
import os, signal, sys, time
parent, child = int(sys.argv[1]), int(sys.argv[2])
while os.getppid() == parent:
    time.sleep(0.5)
    try:
        os.kill(child, 0)
    except ProcessLookupError:
        sys.exit(0)
try:
    os.kill(child, signal.SIGTERM)
except ProcessLookupError:
    pass
"""


def _stop_with_this_process(pid: int) -> None:
    import subprocess
    import sys

    subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )


def worker_env() -> dict:
    """Environment passed to Ray workers (those of a running cluster inherit nothing)."""
    keys = list(QUIET_ENV) + [
        "PREFECT_API_URL",
        "PREFECT_API_KEY",
        "REALSPACE_FAULT",  # fault injection of the reliability tests (tasks/faults.py)
        "REALSPACE_FAULT_MARK",
    ]
    return {k: os.environ[k] for k in keys if k in os.environ}


def check_ray_address(address: str, timeout: float = 10.0) -> None:
    """Fail fast when nothing listens at a Ray cluster's HOST:PORT (Ray itself would wait
    for minutes before giving up)."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout).close()
    except (OSError, ValueError) as e:
        raise ConnectionError(
            f"no Ray cluster at {address}: {e} (start one with `ray start --head --port PORT`)"
        ) from None


def ray_task_runner(address: str | None, num_cpus: int | None = None):
    """prefect-ray's RayTaskRunner: a local Ray (num_cpus) or the cluster at HOST:PORT."""
    from prefect_ray import RayTaskRunner

    init = {
        "runtime_env": {"env_vars": worker_env()},
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": True,
        "logging_level": "warning",
    }
    if address:
        return RayTaskRunner(address=address, init_kwargs=init)
    if num_cpus:
        init["num_cpus"] = num_cpus
    init["_node_ip_address"] = "127.0.0.1"  # a local Ray listens on loopback only
    return RayTaskRunner(init_kwargs=init)
