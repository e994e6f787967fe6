"""The production stack on loopback: a two-node Ray cluster (`ray start --head` plus a node
joined with `ray start --address`), `mlflow server` on a PostgreSQL database of its own,
and `prefect server start`. The same `realspace sweep` command runs against them.

Every process is started on a free loopback port (the servers and the database by the
shared fixtures of conftest.py, the Ray nodes here) and stopped by its PID (process group,
or the processes whose command line names this test's Ray directory); the database is
dropped afterwards. Nothing machine-wide is stopped.
"""

import base64
import http.client
import http.server
import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from factories import LIGHT_ANALYSIS, SIN_AND_TEACHER, sweep_config, write_config
from procs import BIN, CLI, free_port, kill_matching, quiet_env
from sweepstate import check_complete, placement, planned, sweep_state

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET, SECRET_ENV = "s3cretPW42", "envSecret77"
DOC = sweep_config(
    name="cluster-check",
    targets=SIN_AND_TEACHER,
    widths=[2, 3, 4, 5],
    seeds=2,
    optimizer={"steps": 100, "lr": 0.02},
    data={"n_samples": 32},
    analysis=LIGHT_ANALYSIS,
)


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


class _Authenticating(http.server.BaseHTTPRequestHandler):
    """Forwards a request to the MLflow server only with the Basic credentials
    realspace:SECRET; refuses any other with 401 (counting the admitted, listing the
    refused paths)."""

    protocol_version = "HTTP/1.1"
    HOP = {"authorization", "host", "connection", "transfer-encoding", "content-length"}

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self):
        body, server = self._body(), self.server
        if self.headers.get("Authorization") != server.expected:
            server.refused.append(self.path)
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        server.admitted += 1
        upstream = http.client.HTTPConnection(*server.upstream, timeout=300)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in self.HOP}
        upstream.request(self.command, self.path, body=body, headers=headers)
        reply = upstream.getresponse()
        data = reply.read()
        upstream.close()
        self.send_response(reply.status)
        for k, v in reply.getheaders():
            if k.lower() not in self.HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def authenticated_mlflow(mlflow_server):
    """The MLflow server behind a proxy that admits only realspace:SECRET: the URL the
    sweep is given (with the credentials in it) and the proxy, which counts the
    requests it admitted and the paths it refused. (MLflow's client sends a URL's credentials as
    Basic auth; a worker that got the masked URI would send realspace:***.)"""
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Authenticating)
    proxy.daemon_threads = True
    proxy.upstream = ("127.0.0.1", int(mlflow_server.rsplit(":", 1)[1]))
    proxy.expected = "Basic " + base64.b64encode(f"realspace:{SECRET}".encode()).decode()
    proxy.admitted, proxy.refused = 0, []
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    yield f"http://realspace:{SECRET}@127.0.0.1:{proxy.server_address[1]}", proxy
    proxy.shutdown()


@pytest.fixture(scope="module")
def cluster_sweep(ray_cluster, authenticated_mlflow, prefect_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    cfg = write_config(tmp / "c.yaml", DOC)
    res = subprocess.run(
        CLI
        + [
            "sweep",
            str(cfg),
            "--quiet",
            "--ray-address",
            ray_cluster,
            "--tracking-uri",
            # credentials in the URI, which the proxy checks: they must surface nowhere
            authenticated_mlflow[0],
        ],
        cwd=tmp,
        env=quiet_env(PREFECT_API_URL=prefect_server.api, MLFLOW_TRACKING_PASSWORD=SECRET_ENV),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res, cfg


def test_the_sweep_uses_both_nodes_and_logs_everything_through_the_server(
    cluster_sweep, mlflow_server, mlflow_artifacts
):
    from mlflow.tracking import MlflowClient

    res, _ = cluster_sweep
    runs, units = planned(DOC)
    assert f"{len(runs)} trained" in res.stdout
    state = sweep_state(mlflow_server, "cluster-check")
    # the parent, 16 cells, 14 units and 32 network runs FINISHED, each network once
    check_complete(mlflow_server, state, runs, units)
    nodes = {r["node"] for r in state.rows}
    assert len(nodes) == 2, nodes  # the shards ran on both nodes
    assert {n.data.tags["realspace.node"] for n in state.networks} == nodes
    # the workers' tables went through the server (proxied) into its artifact store ...
    assert all(c.info.artifact_uri.startswith("mlflow-artifacts:") for c in state.cells)
    pieces = set().union(*state.pieces.values())
    assert len([n for n in pieces if n.endswith(".parquet")]) == 16  # 8 shards x 2 cells
    for c in state.cells:  # mlflow-artifacts:/<experiment>/<run>/artifacts
        folder = mlflow_artifacts / c.info.artifact_uri.split(":", 1)[1].lstrip("/") / "shards"
        assert {p.name for p in folder.iterdir()} == state.pieces[c.info.run_id]
    # ... and come back
    client = MlflowClient(mlflow_server)
    cell = state.cells[0]
    width = int(cell.data.params["width"])
    npz = sorted(n for n in state.pieces[cell.info.run_id] if n.endswith(".npz"))[0]
    with np.load(client.download_artifacts(cell.info.run_id, f"shards/{npz}")) as z:
        assert z["a"].shape == (len(z["run_key"]), width, 1)
    net = state.networks[0]
    with np.load(client.download_artifacts(net.info.run_id, "end_point.npz")) as z:
        assert z["a"].shape == (int(net.data.params["width"]), 1)
    report = {f.path for f in client.list_artifacts(state.parent.info.run_id, "report")}
    assert "report/report.html" in report


def test_credentials_surface_nowhere(cluster_sweep, mlflow_server, prefect_server):
    """Not in the console, the runs' params and tags, the tables, the artifacts, the
    report, or the flow run Prefect stores."""
    import asyncio

    from mlflow.tracking import MlflowClient

    res, cfg = cluster_sweep
    assert "realspace:***@" in res.stdout + res.stderr
    client = MlflowClient(mlflow_server)
    state = sweep_state(mlflow_server, "cluster-check")
    texts = [res.stdout, res.stderr, json.dumps(state.rows, default=str)]
    for run in [state.parent, *state.cells, *state.units, *state.networks]:
        texts += [json.dumps(run.data.params), json.dumps(run.data.tags)]
    for run, name in ((state.cells[0], "networks.html"), (state.units[0], "table.json")):
        texts += [Path(client.download_artifacts(run.info.run_id, name)).read_text()]
    report = cfg.parent / "reports" / "cluster-check"
    texts += [p.read_text() for p in report.glob("*.md")] + [(report / "report.html").read_text()]

    async def flow_runs():
        from prefect.client.orchestration import PrefectClient

        async with PrefectClient(prefect_server.api) as c:
            return await c.read_flow_runs()

    texts += [json.dumps(f.parameters, default=str) for f in asyncio.run(flow_runs())]
    for secret in (SECRET, SECRET_ENV):
        assert not any(secret in t for t in texts), secret


def test_the_workers_authenticate_with_the_real_credentials(cluster_sweep, authenticated_mlflow):
    """The flow's parameters hold the masked URI; the workers of the cluster, which upload
    every piece through the server, got the real one through their environment: not one
    request was refused (with the masked one, each upload was, and the sweep failed)."""
    import requests

    url, proxy = authenticated_mlflow
    # the driver's fail-fast check asks /health without credentials: any answer will do
    assert proxy.admitted > 0 and set(proxy.refused) <= {"/health"}, proxy.refused
    before = len(proxy.refused)
    # the proxy does refuse: the wrong password, and none
    plain = url.replace(f"realspace:{SECRET}@", "")
    for auth in (("realspace", "***"), None):
        reply = requests.get(f"{plain}/api/2.0/mlflow/experiments/search", auth=auth)
        assert reply.status_code == 401
    assert len(proxy.refused) == before + 2


def test_the_flow_and_its_tasks_are_in_the_prefect_server(cluster_sweep, prefect_server):
    import asyncio

    async def read():
        from prefect.client.orchestration import PrefectClient

        async with PrefectClient(prefect_server.api) as client:
            flows = await client.read_flow_runs()
            tasks = await client.read_task_runs(limit=200)
            return flows, tasks

    flows, tasks = asyncio.run(read())
    assert [f.state_name for f in flows] == ["Completed"]
    assert len(tasks) < 200
    names = [t.name.rsplit("-", 1)[0] for t in tasks]
    _, units = planned(DOC)
    # the workers write their tables themselves: no logging task per shard in the driver
    assert names.count("open-sweep") == 1 and "log-shard" not in names
    assert names.count("train-shard") == 8  # one per shape: 2 parametrizations x 4 widths
    # each shard (one shape) completes the cells of both targets at once: one task closes them
    assert names.count("close-cells") == 8
    assert names.count("analysis-unit") == names.count("log-analysis-unit") == len(units)
    assert names.count("load-end-points") == sum(bool(u.members) for u in units)
    assert names.count("report") == 1
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
    embedded = placement(sweep_state(f"sqlite:///{tmp_path / 'mlruns.db'}", "cluster-check"))
    cluster = placement(sweep_state(mlflow_server, "cluster-check"))
    a = {k: json.loads(v[2])["loss"] for k, v in embedded.items()}
    b = {k: json.loads(v[2])["loss"] for k, v in cluster.items()}
    assert set(a) == set(b) and len(a) == 32
    for key in a:  # float32 training on the same CPU kind: equal to float32 rounding
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-9)


def _write_pieces(uri: str, cells: list[tuple[str, str]], worker: int, record) -> list[str]:
    """Six pieces of one network each, alternately into two cell runs, written through
    the server as a shard's worker writes them."""
    from mlflow.tracking import MlflowClient

    from realspace.tracking.tables import piece_arrays, piece_name, piece_rows, put_piece

    client = MlflowClient(uri)
    keys = []
    for i in range(6):
        key = f"w{worker}-r{i}"
        run_id, artifact_uri = cells[i % 2]
        rows = piece_rows([key], [record], f"shard-{worker}", None)
        arrays = piece_arrays([key], [record])
        put_piece(client, run_id, artifact_uri, piece_name([key]), rows, arrays)
        keys.append(key)
    return keys


def test_eight_concurrent_writers_lose_nothing(mlflow_server):
    """Eight processes writing table pieces into two cell runs at once through the server
    (as Ray workers do): every piece there and readable, each cell closes on its 24."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from realspace.tracking.runs import SweepStore
    from realspace.train import RunSpec, train_and_record

    record = train_and_record([RunSpec(width=3, steps=5, n_samples=16)])[0]
    store = SweepStore(mlflow_server, "concurrency-check")
    parent = store.parent_run("concurrency-key", "concurrency")
    wanted = {f"cell-{j}": (f"cell-{j}", record.spec, 24) for j in range(2)}
    cells = list(store.open_cells(parent, wanted).values())
    where = [(c.run_id, c.artifact_uri) for c in cells]
    with ProcessPoolExecutor(8, mp_context=mp.get_context("spawn")) as pool:
        done = list(
            pool.map(_write_pieces, [mlflow_server] * 8, [where] * 8, range(8), [record] * 8)
        )
    assert len(done) == 8  # no worker raised (no lock or server error)
    keys = [k for ks in done for k in ks]
    found = {}
    for j, cell in enumerate(cells):
        mine = sorted(k for k in keys if int(k[-1]) % 2 == j)  # w<worker>-r<i>: cell i % 2
        pieces = store.pieces(cell)
        assert sorted(pieces) == mine and len(mine) == 24
        found.update(pieces)
        assert store.close_cell(cell, mine, network_runs=False)["networks"] == 24
    for end in store.end_points([found[k] for k in keys], keys):  # the arrays came through
        assert all(np.array_equal(end[k], record.params[k]) for k in "abcew")
    state = sweep_state(mlflow_server, "concurrency-check")
    assert sorted(state.keys) == sorted(keys)  # each once, read back independently
    assert {c.info.status for c in state.cells} == {"FINISHED"}
