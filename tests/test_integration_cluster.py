"""The production stack on loopback: a two-node Ray cluster (`ray start --head` plus a node
joined with `ray start --address`), `mlflow server` on a PostgreSQL database of its own,
and `prefect server start`. The same `realspace sweep` command runs against them.

Every process is started here on a free loopback port and stopped by its PID (process
group, or the processes whose command line names this test's Ray directory); the
database is created here and dropped afterwards. Nothing machine-wide is stopped.
"""

import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from procs import (
    BIN,
    CLI,
    free_port,
    kill_matching,
    quiet_env,
    start_mlflow,
    start_server,
    stop_group,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET, SECRET_ENV = "s3cretPW42", "envSecret77"
PG = dict(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
DOC = {
    "name": "cluster-check",
    "targets": [{"name": "sin"}, {"name": "teacher", "teacher_width": 2}],
    "widths": [2, 3, 4, 5],
    "seeds": 2,
    "optimizer": {"steps": 100, "lr": 0.02},
    "data": {"n_samples": 32},
    "analysis": {"pathology_max_log2": 3, "seed_pairs": 1, "retrain_seeds": 0},
}


@pytest.fixture(scope="module")
def database():
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"realspace_test_{uuid.uuid4().hex[:10]}"
    con = psycopg2.connect(**PG)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    with con.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    con.close()


@pytest.fixture(scope="module")
def mlflow_server(database, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    proc = start_mlflow(database, tmp / "artifacts", port, tmp)
    yield f"http://127.0.0.1:{port}"
    stop_group(proc)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prefect")
    port = free_port()
    proc = start_server(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        port,
        "/api/health",
        tmp,
        "prefect",
        quiet_env(PREFECT_HOME=str(tmp), PREFECT_UI_ENABLED="false"),
    )
    yield f"http://127.0.0.1:{port}/api"
    stop_group(proc)


@pytest.fixture(scope="module")
def ray_cluster():
    """Two Ray nodes of one CPU each: a head and a node joined to it."""
    ray_tmp = tempfile.mkdtemp(prefix="rscl", dir="/tmp")  # short: Ray's socket paths
    port = free_port()
    ray = str(BIN / "ray")
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    try:
        for cmd in (
            [
                ray,
                "start",
                "--head",
                "--port",
                str(port),
                "--temp-dir",
                ray_tmp,
                "--include-dashboard",
                "false",
                *common,
            ],
            [ray, "start", "--address", f"127.0.0.1:{port}", *common],
        ):
            res = subprocess.run(cmd, env=quiet_env(), capture_output=True, text=True, timeout=180)
            assert res.returncode == 0, res.stdout + res.stderr
        yield f"127.0.0.1:{port}"
    finally:
        kill_matching(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster_sweep(ray_cluster, mlflow_server, prefect_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    cfg = tmp / "c.yaml"
    cfg.write_text(yaml.safe_dump(DOC))
    res = subprocess.run(
        CLI
        + [
            "sweep",
            str(cfg),
            "--quiet",
            "--ray-address",
            ray_cluster,
            "--tracking-uri",
            # credentials in the URI (the server ignores them): they must surface nowhere
            mlflow_server.replace("http://", f"http://realspace:{SECRET}@"),
        ],
        cwd=tmp,
        env=quiet_env(PREFECT_API_URL=prefect_server, MLFLOW_TRACKING_PASSWORD=SECRET_ENV),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res, cfg


def _runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    train = [
        r
        for r in runs
        if "realspace.run_key" in r.data.tags and "realspace.stage" not in r.data.tags
    ]
    parent = [r for r in runs if "realspace.sweep_key" in r.data.tags]
    return client, parent, train


def test_the_sweep_uses_both_nodes_and_logs_everything_through_the_server(
    cluster_sweep, mlflow_server
):
    from realspace.sweep.config import parse_config
    from realspace.sweep.plan import plan_runs

    res, _ = cluster_sweep
    planned = plan_runs(parse_config(DOC))
    assert f"{len(planned)} trained" in res.stdout
    client, parent, train = _runs(mlflow_server, "cluster-check")
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    assert sorted(r.data.tags["realspace.run_key"] for r in train) == sorted(r.key for r in planned)
    assert {r.info.status for r in train} == {"FINISHED"}
    nodes = {r.data.tags["realspace.node"] for r in train}
    assert len(nodes) == 2, nodes  # the shards ran on both nodes
    # artifacts went through the server (proxied) and come back
    run = train[0]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    folder = Path(client.download_artifacts(run.info.run_id, ""))
    with np.load(folder / "params.npz") as z:
        assert z["a"].shape == (int(run.data.params["width"]), 1)
    report = {f.path for f in client.list_artifacts(parent[0].info.run_id, "report")}
    assert "report/report.html" in report


def test_credentials_surface_nowhere(cluster_sweep, mlflow_server, prefect_server):
    """Not in the console, the runs' params and tags, their artifacts, the report, or the
    flow run Prefect stores."""
    import asyncio
    import json

    res, cfg = cluster_sweep
    assert "realspace:***@" in res.stdout + res.stderr
    client, parent, train = _runs(mlflow_server, "cluster-check")
    texts = [res.stdout, res.stderr]
    for run in [*parent, *train]:
        texts += [json.dumps(run.data.params), json.dumps(run.data.tags)]
    folder = Path(client.download_artifacts(train[0].info.run_id, ""))
    texts += [(folder / "record.json").read_text()]
    report = cfg.parent / "reports" / "cluster-check"
    texts += [p.read_text() for p in report.glob("*.md")] + [(report / "report.html").read_text()]

    async def flow_runs():
        from prefect.client.orchestration import PrefectClient

        async with PrefectClient(prefect_server) as c:
            return await c.read_flow_runs()

    texts += [json.dumps(f.parameters, default=str) for f in asyncio.run(flow_runs())]
    for secret in (SECRET, SECRET_ENV):
        assert not any(secret in t for t in texts), secret


def test_the_flow_and_its_tasks_are_in_the_prefect_server(cluster_sweep, prefect_server):
    import asyncio

    async def read():
        from prefect.client.orchestration import PrefectClient

        async with PrefectClient(prefect_server) as client:
            flows = await client.read_flow_runs()
            tasks = await client.read_task_runs(limit=200)
            return flows, tasks

    flows, tasks = asyncio.run(read())
    assert [f.state_name for f in flows] == ["Completed"]
    names = [t.name.rsplit("-", 1)[0] for t in tasks]
    assert names.count("train-shard") == 8  # one per shape: 2 parametrizations x 4 widths
    assert names.count("log-shard") == 8 and "report" in names
    assert all(t.flow_run_id == flows[0].id for t in tasks)


def test_embedded_and_cluster_give_the_same_keys_and_losses(cluster_sweep, mlflow_server, tmp_path):
    _, cfg = cluster_sweep
    res = subprocess.run(
        CLI + ["sweep", str(cfg), "--quiet", "--in-process", "--no-analysis"],
        cwd=tmp_path,
        env=quiet_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    _, _, embedded = _runs(f"sqlite:///{tmp_path / 'mlruns.db'}", "cluster-check")
    _, _, cluster = _runs(mlflow_server, "cluster-check")
    a = {r.data.tags["realspace.run_key"]: r.data.metrics["loss"] for r in embedded}
    b = {r.data.tags["realspace.run_key"]: r.data.metrics["loss"] for r in cluster}
    assert set(a) == set(b) and len(a) == 32
    for key in a:  # float32 training on the same CPU kind: equal to float32 rounding
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-9)


def _log_many(uri: str, parent: str, worker: int, record) -> int:
    from realspace.tracking.runs import SweepStore

    store = SweepStore(uri, "concurrency-check")
    for i in range(6):
        store.log_record(parent, f"w{worker}-r{i}", f"shard-{worker}", record)
    return worker


def test_eight_concurrent_loggers_lose_nothing(mlflow_server):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from realspace.tracking.runs import SweepStore
    from realspace.train import RunSpec, train_and_record

    record = train_and_record([RunSpec(width=3, steps=5, n_samples=16)])[0]
    store = SweepStore(mlflow_server, "concurrency-check")
    parent = store.parent_run("concurrency-key", "concurrency")
    with ProcessPoolExecutor(8, mp_context=mp.get_context("spawn")) as pool:
        done = list(pool.map(_log_many, [mlflow_server] * 8, [parent] * 8, range(8), [record] * 8))
    assert sorted(done) == list(range(8))  # no worker raised (no lock or server error)
    children = store.children(parent)
    assert len(children) == 48
    assert all(len(v) == 1 and v[0][1] == "FINISHED" for v in children.values())
