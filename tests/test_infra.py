"""The cluster recipes in infra/, checked statically (no container engine here): they
parse, and the services, ports, variables and commands they name are the ones realspace
reads and its README documents."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def load_all(name):
    return list(yaml.safe_load_all((INFRA / name).read_text()))


@pytest.fixture(scope="module")
def compose():
    return load_all("compose.yaml")[0]


def test_compose_has_the_four_services_on_the_documented_ports(compose):
    services = compose["services"]
    assert {"postgres", "minio", "minio-init", "mlflow", "prefect"} == set(services)
    ports = {name: s.get("ports", []) for name, s in services.items()}
    assert ports["mlflow"] == ["5000:5000"] and ports["prefect"] == ["4200:4200"]
    readme = (ROOT / "README.md").read_text()
    assert "http://mlflow-host:5000" in readme or ":5000" in readme
    assert "PREFECT_API_URL" in readme


def test_mlflow_server_uses_postgres_and_the_bucket_minio_init_creates(compose):
    s = compose["services"]
    cmd = s["mlflow"]["command"]
    db = re.search(r"postgresql\+psycopg2://\S+@postgres:5432/(\w+)", cmd)
    assert db, cmd
    created = re.findall(r"CREATE DATABASE (\w+);", (INFRA / "postgres-init.sql").read_text())
    assert db.group(1) in created
    prefect_db = s["prefect"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert (
        prefect_db.startswith("postgresql+asyncpg://") and prefect_db.rsplit("/", 1)[1] in created
    )
    bucket = re.search(r"--artifacts-destination s3://([\w-]+)", cmd).group(1)
    assert f"store/{bucket}" in s["minio-init"]["entrypoint"]
    env = s["mlflow"]["environment"]
    # the names boto3 and MLflow's S3 store read
    assert {"MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "--port 5000" in cmd and "--port 4200" in s["prefect"]["command"]


def test_every_variable_compose_needs_is_in_env_example(compose):
    text = (INFRA / "compose.yaml").read_text()
    needed = set(re.findall(r"\$\{(\w+)", text)) | set(re.findall(r"\$\$\{(\w+)\}", text))
    example = dict(
        line.split("=", 1)
        for line in (INFRA / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert needed <= set(example), needed - set(example)


def test_images_and_versions_match_the_pins():
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = " ".join(pins["dependencies"])
    mlflow_v = re.search(r"mlflow==([\d.]+)", deps).group(1)
    ray_v = re.search(r"ray\[default\]==([\d.]+)", deps).group(1)
    prefect_v = re.search(r"prefect==([\d.]+)", deps).group(1)
    assert f"mlflow=={mlflow_v}" in (INFRA / "mlflow.Dockerfile").read_text()
    worker = (INFRA / "worker.Dockerfile").read_text()
    assert f"FROM rayproject/ray:{ray_v}-py311-gpu" in worker
    assert "torch==2.13.0" in worker  # the README's pin
    assert 'pip install --no-cache-dir ".[cluster]"' in worker
    for folder in ("src", "flows", "tasks"):  # what the wheel needs (force-include)
        assert f"COPY {folder} ./{folder}" in worker
    assert {"psycopg2-binary>=2.9", "boto3>=1.34"} <= set(pins["optional-dependencies"]["cluster"])
    services = load_all("compose.yaml")[0]["services"]
    assert services["prefect"]["image"].startswith(f"prefecthq/prefect:{prefect_v}-")


def test_ray_cluster_launcher_config():
    cfg = load_all("ray-cluster-aws.yaml")[0]
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu and all(t["max_workers"] >= 1 for t in gpu)
    head = " ".join(cfg["head_start_ray_commands"])
    port = re.search(r"--port=(\d+)", head).group(1)
    assert port != "6379"  # Redis's port, often taken
    assert f"$RAY_HEAD_IP:{port}" in " ".join(cfg["worker_start_ray_commands"])
    assert "--gpus all" in cfg["docker"]["run_options"]
    assert cfg["docker"]["image"].endswith(f":{VERSION}")  # the image of this release


def test_kuberay_manifest():
    docs = load_all("kuberay-raycluster.yaml")
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    # the variables realspace reads (tracking store, Prefect API)
    assert {"MLFLOW_TRACKING_URI", "PREFECT_API_URL"} <= set(config["data"])
    assert config["data"]["PREFECT_API_URL"].endswith(":4200/api")
    assert config["data"]["MLFLOW_TRACKING_URI"].endswith(":5000")
    spec = cluster["spec"]
    assert spec["rayVersion"] == "2.60.0"
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["port"] == "6380"
    workers = spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert workers["resources"]["limits"]["nvidia.com/gpu"] == 1
    for pod in (head["template"]["spec"]["containers"][0], workers):
        assert pod["envFrom"][0]["configMapRef"]["name"] == config["metadata"]["name"]


def test_realspace_reads_the_variables_the_recipes_set():
    from realspace.tracking.connection import resolve_tracking_uri

    runtime = (ROOT / "flows" / "runtime.py").read_text()
    assert "PREFECT_API_URL" in runtime
    import os

    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = "http://mlflow.realspace.svc:5000"
    try:
        assert resolve_tracking_uri(None, None) == "http://mlflow.realspace.svc:5000"
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI")
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old


def test_kubernetes_work_pool_template():
    """The Kubernetes variant of the submit work pool (untested on a cluster): a base job
    template whose Job never retries a driver, runs the worker image, and reads the
    endpoints of the KubeRay manifest's ConfigMap."""
    import json

    tpl = json.loads((ROOT / "infra" / "prefect-kubernetes-job-template.json").read_text())
    job = tpl["job_configuration"]["job_manifest"]
    assert job["kind"] == "Job" and job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == "{{ image }}" and container["args"] == "{{ command }}"
    image = tpl["variables"]["properties"]["image"]["default"]
    assert image.endswith(f":{VERSION}")  # the image of this release, as the Ray nodes run
    config = next(d for d in load_all("kuberay-raycluster.yaml") if d["kind"] == "ConfigMap")
    assert container["envFrom"][0]["configMapRef"]["name"] == config["metadata"]["name"]
    # every placeholder is a declared variable (Prefect fills them from these)
    used = set(re.findall(r"\{\{ (\w+) \}\}", json.dumps(tpl["job_configuration"])))
    assert used <= set(tpl["variables"]["properties"]), used
    readme = (ROOT / "infra" / "README.md").read_text()
    assert "--type kubernetes" in readme and "prefect-kubernetes-job-template.json" in readme
