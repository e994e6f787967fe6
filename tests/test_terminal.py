"""What a user's terminal meets: no warning flood from a sweep, and no server left behind
by `realspace ui` however it is stopped."""

import os
import signal
import subprocess
import time

import pytest
from factories import sweep_config, write_config
from procs import CLI, alive, descendants, free_port, port_free, quiet_env, wait_http

pytestmark = pytest.mark.integration


# SIGTERM in the default run (about 25 s: MLflow's server start); the others in the slow run
@pytest.mark.parametrize(
    "sig",
    [
        signal.SIGTERM,
        pytest.param(signal.SIGHUP, marks=pytest.mark.slow),
        pytest.param(signal.SIGINT, marks=pytest.mark.slow),
    ],
)
def test_a_stopped_ui_leaves_no_server_and_frees_its_port(tmp_path, sig):
    """The signal goes to `realspace ui` alone (as a process manager or `timeout` sends
    it): within 10 s none of the processes it started is alive and the port binds."""
    port = free_port()
    proc = subprocess.Popen(
        CLI + ["ui", "--port", str(port), "--tracking-uri", f"sqlite:///{tmp_path / 'x.db'}"],
        cwd=tmp_path,
        env=quiet_env(),
        stdout=open(tmp_path / "ui.out", "w"),  # noqa: SIM115 - held by the process
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the test's own group: a leak cannot reach pytest
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, 120, tmp_path / "ui.out")
        servers = descendants(proc.pid)
        assert servers, "realspace ui started no server"
        assert not port_free(port)
        os.kill(proc.pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            any(alive(p) for p in servers) or not port_free(port)
        ):
            time.sleep(0.2)
        left = [p for p in servers if alive(p)]
        assert not left, f"still running after 10 s: {left}"
        assert port_free(port)
        assert proc.wait(timeout=10) == 0
    finally:
        for p in [proc.pid, *descendants(proc.pid)]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
