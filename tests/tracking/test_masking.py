"""Credentials stay out of logs, and reach only the workers that need them: every log
record is masked as it is made (whoever logs it, whichever handler shows or sends it), and
a Ray cluster's workers get the real tracking URI through their environment, never the
flow's stored parameters."""

import io
import logging
import os
import subprocess
import sys

import pytest

# Prefect's API handler (there once an earlier test ran a flow in this process) warns about
# a record made outside a flow run: these tests make such records on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Logger 'prefect.*attempted to send logs to the API")

LEAK = "API request to http://bob:topsecret@127.0.0.1:5000/api/2.0/mlflow/runs/search failed"
SHOWN = "http://bob:***@127.0.0.1:5000"


@pytest.fixture
def masked_logging():
    """mask_log_records for one test, the logging module's factory restored after."""
    from realspace.tracking.secrets import mask_log_records

    before = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    mask_log_records()
    yield
    logging.setLogRecordFactory(before)


def _captured(name: str):
    """A handler on logger ``name`` that renders records as a console handler would."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    return logger, handler, stream


@pytest.mark.parametrize("name", ["realspace.tracking.lease", "prefect.flow_runs", "mlflow"])
def test_every_loggers_records_are_masked_with_their_tracebacks(masked_logging, name):
    logger, handler, stream = _captured(name)
    try:
        logger.warning("sweep lease heartbeat failed (will retry): %s", LEAK)
        try:
            raise ConnectionError(LEAK)
        except ConnectionError:
            logger.exception("store failed at %s", "http://bob:topsecret@host/x")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "topsecret" not in text, text
    assert f"heartbeat failed (will retry): API request to {SHOWN}" in text
    assert "Traceback" in text and "ConnectionError: API request to http://bob:***@" in text


def test_a_handler_added_later_and_a_query_secret_are_masked_too(masked_logging):
    # Prefect adds its API handler when a flow starts: after realspace's start-up
    logger, handler, stream = _captured("prefect.task_runs")
    try:
        logger.error("cannot reach %s", "postgresql://u@db/x?sslpassword=hunter22&x=1")
    finally:
        logger.removeHandler(handler)
    assert "hunter22" not in stream.getvalue()
    assert "sslpassword=***&x=1" in stream.getvalue()


def test_records_without_secrets_are_left_as_they_are(masked_logging):
    record = logging.getLogger("x").makeRecord("x", logging.INFO, "f", 1, "%d nets", (3,), None)
    assert (record.msg, record.args) == ("%d nets", (3,))  # formatting left to handlers


STARTS = {
    "a Ray worker's first task": "import realspace.tasks",
    "a flow's process": "import realspace.flows",
    "the command line": (
        "import sys, realspace.app.cli\n"
        "sys.argv = ['realspace', '--help']\n"
        "try:\n"
        "    realspace.app.cli.main()\n"
        "except SystemExit:\n"
        "    pass"
    ),
}


@pytest.mark.parametrize("start", STARTS)
def test_each_process_that_runs_realspace_masks_from_the_start(start):
    code = (
        f"{STARTS[start]}\n"
        "import logging\n"
        "logging.basicConfig(format='%(message)s')\n"
        f"logging.getLogger('prefect.task_runs').error({LEAK!r})\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert SHOWN in out.stderr and "topsecret" not in out.stderr, out.stderr


def test_a_clusters_workers_get_the_real_uri_through_their_environment(monkeypatch):
    """The flow's parameters hold the masked URI (Prefect stores them); the workers of a
    Ray cluster inherit nothing, so the real one travels in their environment (Ray's
    runtime_env), and a worker's reveal_uri finds it there. Before, they authenticated
    with '***'."""
    from realspace.flows.runtime import worker_env
    from realspace.tracking.secrets import SECRET_URI_ENV, hide_uri

    real = "http://bob:top/secret@127.0.0.1:5000"
    monkeypatch.delenv(SECRET_URI_ENV, raising=False)
    masked = hide_uri(real)
    assert "top/secret" not in masked
    env = worker_env()
    assert env[SECRET_URI_ENV] == real
    # a worker: a fresh process with only that environment (and a path to Python)
    code = f"from realspace.tracking.secrets import reveal_uri\nprint(reveal_uri({masked!r}))\n"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip() == real, out.stderr


def test_a_uri_without_a_password_is_not_put_in_the_workers_environment(monkeypatch):
    from realspace.flows.runtime import worker_env
    from realspace.tracking.secrets import SECRET_URI_ENV, hide_uri

    monkeypatch.delenv(SECRET_URI_ENV, raising=False)
    assert hide_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert SECRET_URI_ENV not in worker_env()
