"""Fixtures shared by the test modules: the servers a module's tests run against (each
module its own: Prefect's temporary API, or real servers started on free loopback ports
and stopped by their process group), and a record of MLflow's run searches. Sweep
documents and synthetic run frames: factories.py; processes: procs.py."""

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from procs import free_port, start_mlflow, start_prefect, stop_group

# no telemetry from MLflow or Prefect, nor from the servers this process starts (set
# before any test module imports them)
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")

POSTGRES = dict(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")


@pytest.fixture
def search_queries(monkeypatch) -> list:
    """The filter of every MLflow run search made while the test runs, in order (the
    searches themselves still run)."""
    from mlflow.tracking import MlflowClient

    queries = []
    search = MlflowClient.search_runs

    def counted(self, *args, **kwargs):
        queries.append(args[1] if len(args) > 1 else kwargs.get("filter_string"))
        return search(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "search_runs", counted)
    return queries


@pytest.fixture(scope="module")
def prefect_harness():
    """A temporary Prefect API for the flows the module runs in this process."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass(frozen=True)
class PrefectServer:
    api: str  # its API's URL: what PREFECT_API_URL is set to
    home: Path  # its PREFECT_HOME (its database), where its log is written


def _prefect_server(tmp_path_factory, ui: bool):
    home = tmp_path_factory.mktemp("prefect")
    port = free_port()
    proc = start_prefect(home, port, ui=ui)
    yield PrefectServer(f"http://127.0.0.1:{port}/api", home)
    stop_group(proc)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """`prefect server start` (its API alone) with its own home and database, for the
    module: its flow runs are the module's only."""
    yield from _prefect_server(tmp_path_factory, ui=False)


@pytest.fixture(scope="module")
def prefect_server_with_ui(tmp_path_factory):
    """``prefect_server`` also serving Prefect's UI, at the API's root."""
    yield from _prefect_server(tmp_path_factory, ui=True)


@pytest.fixture(scope="module")
def postgres_database():
    """A PostgreSQL database of the module's own on the local server, dropped afterwards;
    its SQLAlchemy URL."""
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"realspace_test_{uuid.uuid4().hex[:10]}"
    con = psycopg2.connect(**POSTGRES)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    with con.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    con.close()


@pytest.fixture(scope="module")
def mlflow_artifacts(tmp_path_factory) -> Path:
    """The folder where ``mlflow_server`` keeps the artifacts it receives."""
    return tmp_path_factory.mktemp("mlflow") / "artifacts"


@pytest.fixture(scope="module")
def mlflow_server(postgres_database, mlflow_artifacts):
    """`mlflow server` as deployed: on ``postgres_database``, proxying artifacts into
    ``mlflow_artifacts``; its URL."""
    port = free_port()
    proc = start_mlflow(postgres_database, mlflow_artifacts, port, mlflow_artifacts.parent)
    yield f"http://127.0.0.1:{port}"
    stop_group(proc)
