"""The cluster recipes in infra/, checked statically (no container engine here): they
parse, and the values they hold (published ports and the addresses they bind, the ports
the servers listen on, credentials, images, commands) are read from the parsed
documents and compared with each other, with the pins, and with the endpoints the
READMEs give their users."""

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
VERSION = PYPROJECT["version"]
# the exact pins of the package's dependencies: name -> version
PINS = dict(d.split("==", 1) for d in PYPROJECT["dependencies"] if "==" in d)
LOOPBACK = "127.0.0.1"
# a compose value taken from the environment that compose refuses to start without:
# ${NAME:?message}
REQUIRED_VARIABLE = re.compile(r"\$\{(\w+):\?[^}]*\}")
# a value taken from the environment, at compose time (${NAME...}) or in the container's
# shell ($${NAME}, which compose passes on as ${NAME})
VARIABLE = re.compile(r"\$?\$\{(\w+)[^}]*\}")


# ---------------------------------------------------------------------------
# Readers of the recipes' formats
# ---------------------------------------------------------------------------
def load_all(name: str) -> list:
    return list(yaml.safe_load_all((INFRA / name).read_text()))


def published_ports(service: dict) -> list[tuple[str, int, int]]:
    """(host address, published port, container port) of each port a compose service
    publishes, in the short syntax [HOST_IP:]PUBLISHED:TARGET[/PROTOCOL] or the long one.
    The host address is "" where the recipe names none (the engine's default: every
    interface)."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            host, published = port.get("host_ip", ""), port.get("published", 0)
            out.append((host, int(published), int(port["target"])))
            continue
        parts = str(port).split("/")[0].rsplit(":", 2)
        host, published, target = ["", "", *parts][-3:]
        out.append((host.strip("[]"), int(published or 0), int(target)))
    return out


def argv(command) -> list[str]:
    """A compose command or entrypoint as the words the container runs; the script of a
    `/bin/sh -c SCRIPT` is split in its turn."""
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    return shlex.split(words[2]) if words[:2] == ["/bin/sh", "-c"] else words


def commands(words: list[str]) -> list[list[str]]:
    """A shell script's words cut at `&&` and `;` into its commands."""
    out = [[]]
    for w in words:
        if w in ("&&", ";"):
            out.append([])
        else:
            out[-1].append(w)
    return [c for c in out if c]


def options(words: list[str]) -> dict[str, str]:
    """The `--name value` and `--name=value` options of a command line (a bare flag: "")."""
    out = {}
    for i, w in enumerate(words):
        if not w.startswith("--"):
            continue
        name, eq, value = w[2:].partition("=")
        if not eq and i + 1 < len(words) and not words[i + 1].startswith("-"):
            value = words[i + 1]
        out[name] = value
    return out


def dockerfile(name: str) -> list[tuple[str, list[str]]]:
    """(INSTRUCTION, words) of each instruction of a Dockerfile, continuation lines
    joined, comments dropped."""
    instructions, pending = [], ""
    for raw in (INFRA / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        words = shlex.split(pending + line)
        instructions.append((words[0].upper(), words[1:]))
        pending = ""
    return instructions


def pip_pins(instructions: list[tuple[str, list[str]]]) -> dict[str, str]:
    """name -> version of every `name==version` a RUN pip install names."""
    pins = {}
    for kind, words in instructions:
        if kind == "RUN" and words[:2] == ["pip", "install"]:
            pins.update(w.split("==", 1) for w in words if "==" in w)
    return pins


def shell_lines(markdown: str) -> list[list[str]]:
    """The words of each command of a Markdown text's ```bash blocks (continuation lines
    joined, comments dropped)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                out.append(words)
    return out


def readmes() -> str:
    return (ROOT / "README.md").read_text() + (INFRA / "README.md").read_text()


# ---------------------------------------------------------------------------
# compose.yaml
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose():
    return load_all("compose.yaml")[0]


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def test_only_the_servers_clients_use_are_published_and_the_database_never(services):
    """The published ports, read from the parsed recipe: MLflow on 5000, Prefect on 4200,
    MinIO's S3 API on 9000, each on its own container port and on the engine's default
    address (the recipe names none); PostgreSQL, which holds both servers' data and
    whose only client is on the compose network, publishes nothing, nor does the
    bucket's init job."""
    assert {"postgres", "minio", "minio-init", "mlflow", "prefect"} == set(services)
    published = {name: published_ports(s) for name, s in services.items()}
    assert published == {
        "postgres": [],
        "minio": [("", 9000, 9000)],
        "minio-init": [],
        "mlflow": [("", 5000, 5000)],
        "prefect": [("", 4200, 4200)],
    }
    assert "expose" not in services["postgres"] and "network_mode" not in services["postgres"]


def test_each_published_port_is_the_one_its_server_listens_on(services):
    """The container port of each published mapping is the port the server's own command
    listens on, on every interface of the container (else the mapping reaches nothing)."""
    for name in ("mlflow", "prefect"):
        (_, _, target) = published_ports(services[name])[0]
        opts = options(argv(services[name]["command"]))
        assert (opts["host"], int(opts["port"])) == ("0.0.0.0", target), (name, opts)
    mlflow_image = dict(dockerfile("mlflow.Dockerfile"))
    assert mlflow_image["EXPOSE"] == [str(published_ports(services["mlflow"])[0][2])]
    # MinIO serves S3 on 9000 unless --address says otherwise; its console stays inside
    minio = options(argv(services["minio"]["command"]))
    assert "address" not in minio and minio["console-address"] == ":9001"
    assert 9001 not in {p for _, p, _ in published_ports(services["minio"])}


def test_the_readmes_give_the_published_ports(services):
    """Every endpoint the READMEs tell users to pass (--tracking-uri, PREFECT_API_URL) is
    on the port the recipe publishes for that server (read from both)."""
    text = readmes()
    mlflow_port = published_ports(services["mlflow"])[0][1]
    prefect_port = published_ports(services["prefect"])[0][1]
    tracking = [urlparse(u) for u in re.findall(r"--tracking-uri (http://[\w.-]+:\d+)", text)]
    prefect = [urlparse(u) for u in re.findall(r"PREFECT_API_URL=(http://[\w.-]+:\d+[\w/]*)", text)]
    assert tracking and {u.port for u in tracking} == {mlflow_port}
    assert prefect and {u.port for u in prefect} == {prefect_port}
    assert {u.path for u in prefect} == {"/api"}


def test_credentials_come_from_the_environment_and_are_required(services):
    """No credential is written in the recipe: every password or key is a variable, and
    the services that set them (PostgreSQL's password, MinIO's root user and password)
    use compose's required form, so that the stack refuses to start without them rather
    than with an empty password. The connection URLs carry the password by reference."""
    for name, s in services.items():
        for key, value in (s.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|ACCESS_KEY|ROOT_USER", key):
                assert VARIABLE.fullmatch(str(value)), (name, key, value)
    required = {
        ("postgres", "POSTGRES_PASSWORD"),
        ("minio", "MINIO_ROOT_USER"),
        ("minio", "MINIO_ROOT_PASSWORD"),
    }
    for name, key in required:
        value = services[name]["environment"][key]
        assert REQUIRED_VARIABLE.fullmatch(value) and REQUIRED_VARIABLE.match(value)[1] == key
    backend = urlparse(options(argv(services["mlflow"]["command"]))["backend-store-uri"])
    prefect = urlparse(services["prefect"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"])
    for url in (backend, prefect):
        assert VARIABLE.fullmatch(url.password) and VARIABLE.match(url.password)[1] == (
            "POSTGRES_PASSWORD"
        )
        assert url.username == services["postgres"]["environment"]["POSTGRES_USER"]


def test_mlflow_server_uses_postgres_and_the_bucket_minio_init_creates(services):
    """The servers' databases are on the postgres service's default port and are the ones
    postgres-init.sql creates; MLflow's artifact bucket is the one minio-init makes, on
    the MinIO endpoint MLflow's S3 client is given."""
    created = re.findall(r"CREATE DATABASE (\w+);", (INFRA / "postgres-init.sql").read_text())
    mlflow = options(argv(services["mlflow"]["command"]))
    backend = urlparse(mlflow["backend-store-uri"])
    prefect = urlparse(services["prefect"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"])
    assert backend.scheme == "postgresql+psycopg2" and prefect.scheme == "postgresql+asyncpg"
    for url in (backend, prefect):
        assert (url.hostname, url.port) == ("postgres", 5432)
    assert [backend.path[1:], prefect.path[1:]] == created
    bucket = urlparse(mlflow["artifacts-destination"])
    assert bucket.scheme == "s3"
    steps = commands(argv(services["minio-init"]["entrypoint"]))
    alias = next(c for c in steps if c[:3] == ["mc", "alias", "set"])
    make = next(c for c in steps if c[:2] == ["mc", "mb"])
    assert make[-1] == f"{alias[3]}/{bucket.netloc}"
    env = services["mlflow"]["environment"]
    # the names boto3 and MLflow's S3 store read, pointing at MinIO's S3 port
    assert {"MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)
    endpoint = urlparse(env["MLFLOW_S3_ENDPOINT_URL"])
    assert endpoint == urlparse(alias[4])
    assert (endpoint.hostname, endpoint.port) == ("minio", published_ports(services["minio"])[0][2])
    assert env["AWS_ACCESS_KEY_ID"] == "${MINIO_ROOT_USER}"
    assert env["AWS_SECRET_ACCESS_KEY"] == "${MINIO_ROOT_PASSWORD}"


def test_every_variable_compose_needs_is_in_env_example():
    text = (INFRA / "compose.yaml").read_text()
    needed = set(VARIABLE.findall(text))
    example = dict(
        line.split("=", 1)
        for line in (INFRA / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert needed <= set(example), needed - set(example)


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------
def test_images_and_versions_match_the_pins(services):
    """Read from the Dockerfiles' instructions: the MLflow image installs the pinned MLflow;
    the worker image is the pinned Ray's GPU image with the README's torch, copies what
    the wheel needs and installs realspace with its cluster extras; the Prefect image is
    the pinned Prefect's."""
    mlflow_image = dockerfile("mlflow.Dockerfile")
    assert pip_pins(mlflow_image)["mlflow"] == PINS["mlflow"]
    worker = dockerfile("worker.Dockerfile")
    assert dict(worker)["FROM"] == [f"rayproject/ray:{PINS['ray[default]']}-py311-gpu"]
    # the README's torch pin, read from its install lines
    readme_torch = set(re.findall(r"torch==([\d.]+)", (ROOT / "README.md").read_text()))
    assert readme_torch == {pip_pins(worker)["torch"]}
    installs = [w for k, w in worker if k == "RUN" and w[:2] == ["pip", "install"]]
    assert installs[-1][2:] == ["--no-cache-dir", ".[cluster]"]
    copies = {tuple(w) for k, w in worker if k == "COPY"}
    for folder in ("src", "flows", "tasks"):  # what the wheel needs (force-include)
        assert (folder, f"./{folder}") in copies
    assert {"psycopg2-binary>=2.9", "boto3>=1.34"} <= set(
        PYPROJECT["optional-dependencies"]["cluster"]
    )
    assert services["prefect"]["image"].startswith(f"prefecthq/prefect:{PINS['prefect']}-")


# ---------------------------------------------------------------------------
# Ray clusters
# ---------------------------------------------------------------------------
def test_ray_cluster_launcher_config():
    """The head's GCS on 6380 (6379 is Redis's, often taken) and the workers joining that
    port; the dashboard, which accepts job submissions (code to run) without
    authentication, bound to loopback on the head."""
    cfg = load_all("ray-cluster-aws.yaml")[0]
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu and all(t["max_workers"] >= 1 for t in gpu)
    (head,) = [shlex.split(c) for c in cfg["head_start_ray_commands"] if "--head" in c]
    head = options(head)
    assert head["port"] == "6380"
    assert head["dashboard-host"] == LOOPBACK, head
    (join,) = [
        shlex.split(c) for c in cfg["worker_start_ray_commands"] if c.startswith("ray start")
    ]
    assert options(join)["address"] == f"$RAY_HEAD_IP:{head['port']}"
    run = shlex.split(" ".join(cfg["docker"]["run_options"]))
    assert run[run.index("--gpus") + 1] == "all"
    assert cfg["docker"]["image"].rpartition(":")[2] == VERSION  # the image of this release


@pytest.fixture(scope="module")
def kuberay():
    docs = load_all("kuberay-raycluster.yaml")
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    return config, cluster


def test_kuberay_manifest(kuberay, services):
    """The endpoints' ConfigMap points at the compose servers' published ports; the head
    listens on 6380, exposes only that port, and keeps its dashboard on loopback."""
    config, cluster = kuberay
    assert cluster["apiVersion"] == "ray.io/v1"
    # the variables realspace reads (tracking store, Prefect API)
    assert {"MLFLOW_TRACKING_URI", "PREFECT_API_URL"} <= set(config["data"])
    tracking = urlparse(config["data"]["MLFLOW_TRACKING_URI"])
    prefect = urlparse(config["data"]["PREFECT_API_URL"])
    assert tracking.port == published_ports(services["mlflow"])[0][1]
    assert (prefect.port, prefect.path) == (published_ports(services["prefect"])[0][1], "/api")
    spec = cluster["spec"]
    assert spec["rayVersion"] == PINS["ray[default]"]
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["port"] == "6380"
    assert head["rayStartParams"]["dashboard-host"] == LOOPBACK
    head_pod = head["template"]["spec"]["containers"][0]
    assert [p["containerPort"] for p in head_pod["ports"]] == [6380]
    workers = spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert workers["resources"]["limits"]["nvidia.com/gpu"] == 1
    for pod in (head_pod, workers):
        assert pod["envFrom"][0]["configMapRef"]["name"] == config["metadata"]["name"]
        assert pod["image"].rpartition(":")[2] == VERSION


def test_realspace_reads_the_variables_the_recipes_set(kuberay, monkeypatch):
    """The ConfigMap's values, given as the environment, are the endpoints realspace
    uses: the tracking store, and the Prefect API (taken as is, no local server started,
    and passed on to the Ray workers; in a fresh process, as Prefect reads its settings
    once)."""
    from realspace.tracking.connection import resolve_tracking_uri

    config, _ = kuberay
    tracking, prefect = config["data"]["MLFLOW_TRACKING_URI"], config["data"]["PREFECT_API_URL"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    assert resolve_tracking_uri(None, None) == tracking
    probe = (
        "import json\n"
        "from realspace.flows import runtime\n"
        "with runtime.prefect_api(timeout=1) as url:\n"
        "    print(json.dumps([url, runtime.worker_env().get('PREFECT_API_URL')]))\n"
    )
    env = {**os.environ, "PREFECT_API_URL": prefect}
    res = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[-1]) == [prefect, prefect]


def test_kubernetes_work_pool_template(kuberay):
    """The Kubernetes variant of the submit work pool (untested on a cluster): a base job
    template whose Job never retries a driver, runs the worker image, and reads the
    endpoints of the KubeRay manifest's ConfigMap; the README's commands create the pool
    from this file and submit to the head service KubeRay makes for the RayCluster
    (`<name>-head-svc`) and to the ConfigMap's tracking server."""
    tpl = json.loads((INFRA / "prefect-kubernetes-job-template.json").read_text())
    job = tpl["job_configuration"]["job_manifest"]
    assert job["kind"] == "Job" and job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == "{{ image }}" and container["args"] == "{{ command }}"
    image = tpl["variables"]["properties"]["image"]["default"]
    assert image.rpartition(":")[2] == VERSION  # the image of this release, as the Ray nodes run
    config, cluster = kuberay
    assert container["envFrom"][0]["configMapRef"]["name"] == config["metadata"]["name"]
    # every placeholder is a declared variable (Prefect fills them from these)
    used = set(re.findall(r"\{\{ (\w+) \}\}", json.dumps(tpl["job_configuration"])))
    assert used <= set(tpl["variables"]["properties"]), used
    lines = shell_lines((INFRA / "README.md").read_text())
    create = next(w for w in lines if w[:3] == ["prefect", "work-pool", "create"])
    pool = options(create)
    assert pool["type"] == "kubernetes"
    assert (ROOT / pool["base-job-template"]) == INFRA / "prefect-kubernetes-job-template.json"
    submit = options(next(w for w in lines if w[:2] == ["realspace", "submit"]))
    assert submit["pool"] == create[3]
    head_port = cluster["spec"]["headGroupSpec"]["rayStartParams"]["port"]
    assert submit["ray-address"] == f"{cluster['metadata']['name']}-head-svc:{head_port}"
    assert submit["tracking-uri"] == config["data"]["MLFLOW_TRACKING_URI"]
