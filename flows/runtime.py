"""Where flows run: the Prefect API (a server given by PREFECT_API_URL, or a temporary
local one) and the task runner (a local Ray, a Ray cluster, or in-process), and a
fail-fast check that a Ray cluster is there before a sweep starts.

Start-up is paid once per sweep, before any network trains, so its independent parts
overlap: the temporary Prefect server (a subprocess that spends most of its ten seconds
importing its application) is launched without waiting, a local Ray starts meanwhile,
and only then is the server awaited (``starting_prefect_api``, ``local_ray``).
"""

from __future__ import annotations

import contextlib
import os
import time

# Side effects nobody asked for, off unless the user set them: usage statistics, telemetry,
# and a Prefect start-up timeout too tight for small machines. Ray's authentication is
# not turned off here (see ``local_ray_token``): a driver joins a cluster in the mode and
# with the token its environment gives.
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_TELEMETRY": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # a line per run against a server
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_UI_ENABLED": "false",
}


def quiet_environment(local_ray: bool = False) -> None:
    """QUIET_ENV where the user set nothing; with ``local_ray`` (this process will start
    a local Ray), that Ray's token too (``local_ray_token``)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if local_ray:
        local_ray_token()


AUTH_KEYS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def local_ray_token() -> None:
    """Token authentication for the local Ray this process will start, with a token of
    its own, held in the environment (its raylet and workers inherit it).

    Ray (2.59 on) turns token authentication on for a local Ray by default, but then
    writes the token to ~/.ray/auth_token, readable by every local user (mode 0644), and
    prints a warning at every start. Where the user has configured none of Ray's
    authentication (AUTH_KEYS, or a token file of their own), a fresh random token does
    what Ray's default means to do, with no file and no warning. Ray reads the mode when
    it is imported, so nothing is changed once it is: then Ray's own default applies."""
    import secrets
    import sys
    from pathlib import Path

    configured = any(k in os.environ for k in AUTH_KEYS)
    if configured or "ray" in sys.modules or (Path.home() / ".ray" / "auth_token").exists():
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


@contextlib.contextmanager
def prefect_api(timeout: int = 120):
    """Yield the Prefect API URL: PREFECT_API_URL when set, else a temporary local server
    started here (and stopped on exit), so that Ray workers can share it."""
    with starting_prefect_api(timeout) as ready:
        yield ready()


@contextlib.contextmanager
def starting_prefect_api(timeout: int = 120):
    """Like ``prefect_api``, but yield at once a function that waits until the API answers
    and returns its URL, so that the caller can do other work while the server starts.

    The URL is known (and set in PREFECT_API_URL, which a local Ray's workers inherit)
    before the server is up: its port is held from the start (see ``_hold_port``)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = PREFECT_API_URL.value()
    if url:
        yield lambda: url
        return
    with _hold_port() as port:
        url = f"http://127.0.0.1:{port}/api"
        server = _start_server(port)
        deadline = time.monotonic() + timeout
        try:
            _stop_with_this_process(server.pid)
            os.environ["PREFECT_API_URL"] = url  # inherited by a local Ray's workers
            with temporary_settings({PREFECT_API_URL: url}):
                yield lambda: _wait_for_server(server, url, deadline, timeout)
        finally:
            os.environ.pop("PREFECT_API_URL", None)
            _stop_server(server)


@contextlib.contextmanager
def _hold_port():
    """A free loopback port, held until exit by a bound socket that does not listen.

    Both it and the server's socket set SO_REUSEADDR, so the server can bind the port and
    listen while it is held; anyone else binding it meanwhile (a port chooser, Prefect's
    own included) is refused. Without the hold, the port could be taken during the
    server's ten seconds of start-up, after Ray was already told the URL."""
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _start_server(port: int):
    """Launch the temporary server as Prefect's own SubprocessASGIServer does (prefect
    3.9: uvicorn on the API factory, ephemeral mode: no UI, only the services a temporary
    server runs), without waiting for it, and without importing the server's application
    here, which would cost this process four seconds."""
    import subprocess
    import sys
    from pathlib import Path

    import prefect
    from prefect.settings import get_current_settings

    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(Path(prefect.__file__).parent.parent),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env={
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            **get_current_settings().to_environment_variables(exclude_unset=True),
        },
    )


def _wait_for_server(server, url: str, deadline: float, timeout: float) -> str:
    """Poll the server's health until it answers; raise if it exits or is not up by
    ``deadline`` (``timeout`` seconds after its launch)."""
    import httpx

    with httpx.Client() as client:
        while True:
            try:
                if client.get(f"{url}/health").status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            if server.poll() is not None:
                raise RuntimeError(
                    f"the temporary Prefect server exited with code {server.returncode}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the temporary Prefect server did not answer within {timeout} s"
                )
            time.sleep(0.1)


def _stop_server(server) -> None:
    import subprocess

    server.terminate()
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


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
    """Environment passed to the workers of a Ray cluster (they inherit nothing).

    The real tracking URI travels here (``secrets.SECRET_URI_ENV``, set by ``hide_uri``
    where it carries a password): the flow's parameters hold it masked, and workers
    would otherwise authenticate with ``***``. Ray keeps a job's runtime environment
    in its GCS, so whoever can reach the cluster's control plane can read it: Ray's
    token auth (infra/) keeps that to the cluster's own nodes and the driver."""
    from realspace.tracking.secrets import SECRET_URI_ENV

    keys = list(QUIET_ENV) + [
        SECRET_URI_ENV,
        "MLFLOW_TRACKING_USERNAME",  # MLflow's own credentials for a server, where used
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
        "PREFECT_API_URL",
        "PREFECT_API_KEY",
        "PREFECT_API_AUTH_STRING",  # a Prefect server with basic auth (infra/)
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
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": True,
        "logging_level": "warning",
    }
    if address:
        init["runtime_env"] = {"env_vars": worker_env()}
        return RayTaskRunner(address=address, init_kwargs=init)
    # A local Ray's workers inherit this process's environment, worker_env() included. A
    # runtime_env, even of env_vars alone, would make Ray start new workers for it instead
    # of using those it prestarts: seconds more before the first task, twice the processes.
    if num_cpus:
        init["num_cpus"] = num_cpus
    init["_node_ip_address"] = "127.0.0.1"  # a local Ray listens on loopback only
    return RayTaskRunner(init_kwargs=init)


# What a worker imports for its first task: Prefect's task engine and prefect-ray's remote
# function, torch, and the training and table-writing code (MLflow only when a store is
# remote, so not here).
WARM_MODULES = (
    "prefect.task_engine",
    "prefect_ray.task_runners",
    "torch",
    "realspace.train",
    "realspace.tasks.train",
    "realspace.tracking.tables",
)


def _warm() -> int:
    """Import WARM_MODULES in this process; returns its pid."""
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    return os.getpid()


@contextlib.contextmanager
def local_ray(runner):
    """Start the local Ray of ``runner`` (a ``ray_task_runner``) now, while the Prefect
    server starts, instead of when the flow starts; stop it on exit.

    Its workers are warmed meanwhile: each imports what its first shard would (about
    ten seconds of imports on a small machine, paid now, while the server boots, rather
    than after the shards are submitted). Ray keeps a worker process for the tasks
    that follow, so the imports are paid once per worker.

    prefect-ray's RayTaskRunner finds Ray initialized then and uses it as it is, without
    owning it (it shuts down only a Ray it started itself), so this shuts it down. Ray
    is started with the runner's own init kwargs, so it is the Ray the runner would have
    started. A Ray cluster (``runner.address``), an in-process flow (``runner`` None) and
    a Ray already initialized in this process are left to the runner, as before."""
    import ray

    if runner is None or runner.address or ray.is_initialized():
        yield
        return
    ray.init(**runner.init_kwargs)
    try:
        warm = ray.remote(num_cpus=1, max_retries=0)(_warm)
        # fire and forget: a warm-up that fails costs nothing but the time it saves
        pending = [warm.remote() for _ in range(int(ray.cluster_resources().get("CPU", 1)))]
        yield
        del pending
    finally:
        ray.shutdown()
