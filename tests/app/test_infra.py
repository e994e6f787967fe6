"""The cluster recipes in infra/, checked statically (no container engine here): they
parse, and the values they hold (published ports and the addresses they bind, the ports
the servers listen on, credentials and where they come from, authentication, network
policy, images, commands) are read from the parsed documents and compared with each
other, with the pins, and with the endpoints the READMEs give their users.

The recipes are closed by default, and these tests say what that means: nothing is
published on every interface, every server a client reaches asks for credentials (Ray's
token, Prefect's auth string, MLflow's basic auth), every secret is a variable the stack
refuses to start without, no command line carries one, MLflow reaches its bucket as a user
limited to that bucket, and on Kubernetes only the Ray cluster's pods and its drivers reach
the Ray nodes."""

import configparser
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

ROOT = Path(__file__).resolve().parents[2]
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
# a reference compose resolves itself (not a $$-escaped one, which the container's shell
# gets): ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
COMPOSE_REFERENCE = re.compile(r"(?<!\$)\$\{(\w+)(?:(:?[-?+])([^}]*))?\}")
# names of settings whose values are secrets
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH_STRING")
# names of settings that hold credentials (secrets, and the user names that go with them)
CREDENTIAL = re.compile(r"PASSWORD|SECRET|TOKEN|AUTH_STRING|ACCESS_KEY|ROOT_USER|USERNAME")
# the labels KubeRay gives the pods of a RayCluster's head and of its worker groups
HEAD_LABELS = {"ray.io/node-type": "head"}
WORKER_LABELS = {"ray.io/node-type": "worker"}


# ---------------------------------------------------------------------------
# Readers of the recipes' formats
# ---------------------------------------------------------------------------
def load_all(name: str) -> list:
    return list(yaml.safe_load_all((INFRA / name).read_text()))


def env_example() -> dict[str, str]:
    """NAME -> value of infra/.env.example (the file users copy to .env)."""
    return dict(
        line.split("=", 1)
        for line in (INFRA / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )


def interpolate(text: str, env: dict) -> str:
    """``text`` as compose reads it with the variables ``env`` (the subset of compose's
    interpolation the recipes may use); a required variable that is unset or empty
    raises, as compose refuses to start then."""

    def one(m):
        name, op, arg = m[1], m[2] or "", m[3] or ""
        value = env.get(name)
        if op in (":-", "-"):
            return value if value or (op == "-" and value is not None) else arg
        if op in (":?", "?") and not (value or (op == "?" and value is not None)):
            raise KeyError(f"compose refuses to start without {name}: {arg}")
        return value or ""

    return COMPOSE_REFERENCE.sub(one, text).replace("$$", "$")


def published_ports(service: dict, env: dict | None = None) -> list[tuple[str, int, int]]:
    """(host address, published port, container port) of each port a compose service
    publishes, in the short syntax [HOST_IP:]PUBLISHED:TARGET[/PROTOCOL] or the long one,
    the variables in it resolved as compose would with ``env`` (default: none set). The
    host address is "" where the recipe names none (the engine's default: every
    interface)."""
    env = {} if env is None else env
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            host = interpolate(str(port.get("host_ip", "")), env)
            published = interpolate(str(port.get("published", 0)), env)
            out.append((host, int(published or 0), int(port["target"])))
            continue
        text = interpolate(str(port), env).split("/")[0]
        # an IPv6 host is bracketed: [::1]:5000:5000
        host, sep, rest = text.rpartition("]:") if text.startswith("[") else ("", "", text)
        parts = rest.rsplit(":", 2)
        if not sep:
            host, *parts = ["", "", *parts][-3:]
        published, target = (["", *parts][-2:]) if sep else parts
        out.append((host.strip("[]"), int(published or 0), int(target)))
    return out


def compose_url(value: str):
    """A compose value that is a URL, parsed, with each ${NAME...} in it read as <NAME> (a
    required variable's "?" would otherwise end the URL's address), and its references:
    NAME -> the operator it is used with (":?" for a required variable, "" for none)."""
    refs = {m[1]: m[2] or "" for m in COMPOSE_REFERENCE.finditer(value)}
    return urlparse(COMPOSE_REFERENCE.sub(lambda m: f"<{m[1]}>", value)), refs


def required(url_part: str | None, refs: dict) -> str | None:
    """The variable a URL part of ``compose_url`` is, if it is exactly one required
    variable."""
    m = re.fullmatch(r"<(\w+)>", url_part or "")
    return m[1] if m and refs[m[1]] == ":?" else None


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


def script(path: Path) -> list[list[str]]:
    """The words of each line of a shell script (comments dropped)."""
    return [
        w for w in (shlex.split(line, comments=True) for line in path.read_text().splitlines()) if w
    ]


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
    """name -> version of every `name==version` (or `name[extras]==version`) a RUN pip
    install names."""
    pins = {}
    for kind, words in instructions:
        if kind == "RUN" and words[:2] == ["pip", "install"]:
            for w in words:
                if "==" in w:
                    name, version = w.split("==", 1)
                    pins[name.split("[")[0]] = version
    return pins


def pip_extras(instructions: list[tuple[str, list[str]]], name: str) -> set[str]:
    """The extras a RUN pip install asks of package ``name``."""
    for kind, words in instructions:
        for w in words if kind == "RUN" and words[:2] == ["pip", "install"] else []:
            m = re.fullmatch(rf"{re.escape(name)}\[([\w,-]+)\]==.*", w)
            if m:
                return set(m[1].split(","))
    return set()


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


def env_of(container: dict) -> dict:
    """NAME -> the `env` entry of a Kubernetes container (its value or valueFrom)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def volume_source(service: dict, target: str) -> str | None:
    """The host path or named volume a compose service mounts at ``target``."""
    for v in service.get("volumes", []):
        source, _, rest = v.partition(":")
        if rest.split(":")[0] == target:
            return source
    return None


# ---------------------------------------------------------------------------
# compose.yaml
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose():
    return load_all("compose.yaml")[0]


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def test_no_port_is_published_on_all_interfaces(services):
    """Read from the parsed recipe, in the short and the long syntax: only the two servers
    clients use are published (MLflow on 5000, Prefect on 4200), each on loopback, both
    with compose's defaults and with the values of .env.example. PostgreSQL (both servers'
    data) and MinIO (the artifacts; MLflow proxies them, so no client needs S3, nor its
    console) publish nothing, nor does the bucket's init job, and no service shares the
    host's network."""
    assert {"postgres", "minio", "minio-init", "mlflow", "prefect"} == set(services)
    for env in ({}, env_example()):
        published = {name: published_ports(s, env) for name, s in services.items()}
        assert published == {
            "postgres": [],
            "minio": [],
            "minio-init": [],
            "mlflow": [(LOOPBACK, 5000, 5000)],
            "prefect": [(LOOPBACK, 4200, 4200)],
        }, env
    for name, s in services.items():
        assert s.get("network_mode") != "host", name


def test_the_port_reader_sees_every_interface():
    """The reader the test above relies on: an unbound mapping, in either syntax, is read
    as every interface ("" or 0.0.0.0), a bound one as its address."""
    short = {"ports": ["9000:9000", "0.0.0.0:1:1", "127.0.0.1:2:2/tcp", "[::1]:3:3", "4"]}
    assert published_ports(short) == [
        ("", 9000, 9000),
        ("0.0.0.0", 1, 1),
        (LOOPBACK, 2, 2),
        ("::1", 3, 3),
        ("", 0, 4),
    ]
    long = {"ports": [{"target": 5000, "published": "5000"}, {"target": 1, "host_ip": LOOPBACK}]}
    assert published_ports(long) == [("", 5000, 5000), (LOOPBACK, 0, 1)]
    bound = {"ports": ["${ADDR:-127.0.0.1}:5000:5000"]}
    assert published_ports(bound) == [(LOOPBACK, 5000, 5000)]
    assert published_ports(bound, {"ADDR": "10.0.0.5"}) == [("10.0.0.5", 5000, 5000)]


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


def test_every_secret_is_a_required_variable_and_no_example_holds_one(services):
    """No credential is written in the recipe: every setting that holds one (a password,
    key, token or auth string, the user names that go with them, a URL with a password)
    takes it from a variable in compose's required form, ${NAME:?message}, with no
    default, so that the stack refuses to start without a real value. .env.example leaves
    every secret empty, so a copy of it never runs with a placeholder."""
    needed = set()
    for name, s in services.items():
        for key, value in (s.get("environment") or {}).items():
            value = str(value)
            url, url_refs = compose_url(value) if "://" in value else (None, {})
            if not (CREDENTIAL.search(key) or (url and url.password)):
                continue
            refs = COMPOSE_REFERENCE.findall(value)
            assert refs, (name, key, value)  # a variable, not a literal
            for var, op, _ in refs:
                assert op == ":?", (name, key, value)  # required, no default
                needed.add(var)
            if url and url.password:  # the password is the variable itself
                assert required(url.password, url_refs), (name, key)
    example = env_example()
    secrets = {v for v in needed if SECRET.search(v)}
    assert {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "PREFECT_API_AUTH_STRING"} <= secrets
    assert secrets <= set(example)
    assert {v: example[v] for v in secrets if example[v]} == {}
    # nowhere in the file does a secret variable have a default
    text = (INFRA / "compose.yaml").read_text()
    for var, op, _ in COMPOSE_REFERENCE.findall(text):
        assert not (SECRET.search(var) and op in (":-", "-", ":+", "+")), var


def test_no_command_line_holds_a_secret(services):
    """What a service runs (command, entrypoint, health check), as its words: no URL in it
    carries a password and no secret variable is expanded into it (`ps` on the host shows
    every container's command lines). MLflow takes its backend store by environment; the
    MinIO init job reaches MinIO as root through mc's MC_HOST_ variable, and its script
    never names the root credentials."""
    for name, s in services.items():
        runs = [s.get("command"), s.get("entrypoint"), (s.get("healthcheck") or {}).get("test")]
        for command in filter(None, runs):
            for word in argv(command):
                if "://" in word:
                    assert urlparse(word).password is None, (name, word)
                for var in re.findall(r"\$\{?(\w+)", word):
                    assert not SECRET.search(var), (name, word)
    env = services["mlflow"]["environment"]
    backend, refs = compose_url(env["MLFLOW_BACKEND_STORE_URI"])
    assert required(backend.password, refs) == "POSTGRES_PASSWORD"
    init = services["minio-init"]
    root, refs = compose_url(init["environment"]["MC_HOST_store"])
    assert (required(root.username, refs), required(root.password, refs)) == (
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
    )
    init_script = INFRA / volume_source(init, argv(init["entrypoint"])[-1])
    assert "MINIO_ROOT" not in init_script.read_text()
    assert not [w for w in script(init_script) if w[:3] == ["mc", "alias", "set"]]


def test_prefect_server_requires_its_auth_string_and_clients_send_it(services, kuberay):
    """Prefect's server answers only requests with its auth string (a required variable,
    the one .env.example names for clients); the clients the recipes start get the same
    value as PREFECT_API_AUTH_STRING: the server's own CLI, every Ray node on Kubernetes
    (from the cluster's Secret) and the flow-run pods of the Kubernetes work pool."""
    env = services["prefect"]["environment"]
    server = REQUIRED_VARIABLE.fullmatch(env["PREFECT_SERVER_API_AUTH_STRING"])
    assert server and server[1] == "PREFECT_API_AUTH_STRING" and server[1] in env_example()
    assert env["PREFECT_API_AUTH_STRING"] == env["PREFECT_SERVER_API_AUTH_STRING"]
    _, cluster, _ = kuberay
    secret = set()
    for pod in ray_containers(cluster):
        ref = env_of(pod)["PREFECT_API_AUTH_STRING"]["secretKeyRef"]
        secret.add((ref["name"], ref["key"]))
    ((secret_name, key),) = secret
    assert key == "PREFECT_API_AUTH_STRING"
    assert {"secretRef": {"name": secret_name}} in job_container()["envFrom"]


def test_mlflow_runs_its_basic_auth_app_with_no_password_in_files(compose, services):
    """MLflow's server runs the basic-auth app (every request but the health check needs a
    user's credentials), installed with its extra; its settings file, mounted where
    MLFLOW_AUTH_CONFIG_PATH points, holds no password, keeps its users on a volume, and
    gives a signed-in user no more than READ by default; the admin's password and the
    session key are required variables."""
    mlflow = services["mlflow"]
    assert options(argv(mlflow["command"]))["app-name"] == "basic-auth"
    assert "auth" in pip_extras(dockerfile("mlflow.Dockerfile"), "mlflow")
    env = mlflow["environment"]
    for key in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert REQUIRED_VARIABLE.fullmatch(env[key]), key
    source = volume_source(mlflow, env["MLFLOW_AUTH_CONFIG_PATH"])
    ini = configparser.ConfigParser()
    ini.read_string((INFRA / source).read_text())
    auth = ini["mlflow"]
    assert "admin_password" not in auth
    assert auth["default_permission"] in ("READ", "NO_PERMISSIONS")
    db = urlparse(auth["database_uri"])
    assert db.scheme == "sqlite" and db.password is None
    volume = volume_source(mlflow, str(Path(db.path[1:]).parent))
    assert volume in compose["volumes"]  # a named volume: the users outlive the container


def test_mlflow_reaches_the_bucket_as_a_user_limited_to_it(services):
    """MLflow's S3 keys are not MinIO's root credentials: they are the keys of the user
    minio-init creates (with the same variables), and the policy it attaches to that user
    allows object and listing actions on the artifact bucket alone."""
    env = services["mlflow"]["environment"]
    minio = services["minio"]["environment"]
    root = {
        COMPOSE_REFERENCE.search(minio[k])[1] for k in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")
    }
    keys = {
        k: COMPOSE_REFERENCE.findall(env[k]) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    assert not {var for refs in keys.values() for var, _, _ in refs} & root, keys
    key_id = REQUIRED_VARIABLE.fullmatch(env["AWS_ACCESS_KEY_ID"])
    secret = REQUIRED_VARIABLE.fullmatch(env["AWS_SECRET_ACCESS_KEY"])
    assert key_id and secret
    init = services["minio-init"]
    init_env = init["environment"]
    assert REQUIRED_VARIABLE.fullmatch(init_env[key_id[1]])[1] == key_id[1]
    assert REQUIRED_VARIABLE.fullmatch(init_env[secret[1]])[1] == secret[1]
    steps = script(INFRA / volume_source(init, argv(init["entrypoint"])[-1]))
    (add,) = [w for w in steps if w[:3] == ["mc", "admin", "user"] and w[3] == "add"]
    assert add[5:] == [f"${key_id[1]}", f"${secret[1]}"]
    (create,) = [w for w in steps if w[:4] == ["mc", "admin", "policy", "create"]]
    attach = [w for w in steps if "attach" in w]
    assert attach and all(options(w)["user"] == f"${key_id[1]}" for w in attach)
    assert all(create[5] in w for w in attach)
    policy = json.loads((INFRA / volume_source(init, create[6])).read_text())
    bucket = urlparse(env["MLFLOW_ARTIFACTS_DESTINATION"]).netloc
    arn = f"arn:aws:s3:::{bucket}"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert set(statement["Resource"]) <= {arn, f"{arn}/*"}, statement
        assert all(a.startswith("s3:") and "*" not in a for a in statement["Action"])


def test_mlflow_server_uses_postgres_and_the_bucket_minio_init_creates(services):
    """The servers' databases are on the postgres service's default port and are the ones
    postgres-init.sql creates, as its user; MLflow's artifact bucket is the one minio-init
    makes, on the MinIO endpoint MLflow's S3 client is given."""
    created = re.findall(r"CREATE DATABASE (\w+);", (INFRA / "postgres-init.sql").read_text())
    env = services["mlflow"]["environment"]
    backend, backend_refs = compose_url(env["MLFLOW_BACKEND_STORE_URI"])
    prefect, prefect_refs = compose_url(
        services["prefect"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    )
    assert backend.scheme == "postgresql+psycopg2" and prefect.scheme == "postgresql+asyncpg"
    for url, refs in ((backend, backend_refs), (prefect, prefect_refs)):
        assert (url.hostname, url.port) == ("postgres", 5432)
        assert url.username == services["postgres"]["environment"]["POSTGRES_USER"]
        assert required(url.password, refs) == "POSTGRES_PASSWORD"
    assert [backend.path[1:], prefect.path[1:]] == created
    bucket = urlparse(env["MLFLOW_ARTIFACTS_DESTINATION"])
    assert bucket.scheme == "s3"
    init = services["minio-init"]
    alias, _ = compose_url(init["environment"]["MC_HOST_store"])
    steps = script(INFRA / volume_source(init, argv(init["entrypoint"])[-1]))
    make = next(w for w in steps if w[:2] == ["mc", "mb"])
    assert make[-1] == f"store/{bucket.netloc}"
    # the names boto3 and MLflow's S3 store read, pointing at MinIO's S3 port
    endpoint = urlparse(env["MLFLOW_S3_ENDPOINT_URL"])
    assert (endpoint.hostname, endpoint.port) == (alias.hostname, alias.port) == ("minio", 9000)


def test_every_variable_compose_needs_is_in_env_example():
    text = (INFRA / "compose.yaml").read_text()
    needed = set(VARIABLE.findall(text))
    assert needed <= set(env_example()), needed - set(env_example())


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
def ray_start(command: str) -> list[str]:
    """The `ray start` of a node's start command (which may source a file first)."""
    (start,) = [c for c in commands(shlex.split(command)) if c[:2] == ["ray", "start"]]
    return start


def test_ray_cluster_launcher_config():
    """The head's GCS on 6380 (6379 is Redis's, often taken) and the workers joining that
    port; the dashboard bound to loopback on the head."""
    cfg = load_all("ray-cluster-aws.yaml")[0]
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu and all(t["max_workers"] >= 1 for t in gpu)
    (head,) = [ray_start(c) for c in cfg["head_start_ray_commands"] if "--head" in c]
    head = options(head)
    assert head["port"] == "6380"
    assert head["dashboard-host"] == LOOPBACK, head
    (join,) = [ray_start(c) for c in cfg["worker_start_ray_commands"] if "ray start" in c]
    assert options(join)["address"] == f"$RAY_HEAD_IP:{head['port']}"
    run = shlex.split(" ".join(cfg["docker"]["run_options"]))
    assert run[run.index("--gpus") + 1] == "all"
    assert cfg["docker"]["image"].rpartition(":")[2] == VERSION  # the image of this release


def test_ray_cluster_launcher_nodes_use_token_auth():
    """Every node's container runs in Ray's token mode (RAY_AUTH_MODE=token in its
    environment: `ray start` and the driver alike), with the token file of the machine
    that runs `ray up` mounted at Ray's default token path; the client credentials' file
    is mounted too and sourced before each `ray start`, so that the Ray workers (which
    inherit their node's environment) reach the Prefect and MLflow servers."""
    cfg = load_all("ray-cluster-aws.yaml")[0]
    run = shlex.split(" ".join(cfg["docker"]["run_options"]))
    env = dict(run[i + 1].split("=", 1) for i, w in enumerate(run) if w in ("--env", "-e"))
    assert env.get("RAY_AUTH_MODE") == "token"
    mounts = cfg["file_mounts"]
    assert mounts["~/.ray/auth_token"]  # Ray's default token path, in the image's home
    sourced = set()
    for command in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]:
        steps = commands(shlex.split(command))
        if any(c[:2] == ["ray", "start"] for c in steps):
            (source,) = [c[1] for c in steps if c[0] == "."]
            assert steps[0] == ["set", "-a"] and ray_start(command) == steps[-1]
            sourced.add(source)
    assert len(sourced) == 1 and sourced <= set(mounts)


@pytest.fixture(scope="module")
def kuberay():
    docs = load_all("kuberay-raycluster.yaml")
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    return config, cluster, policies


def ray_containers(cluster: dict) -> list[dict]:
    """The Ray container of the head's pod and of each worker group's."""
    spec = cluster["spec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [g["template"]["spec"]["containers"][0] for g in groups]


def job_template() -> dict:
    return json.loads((INFRA / "prefect-kubernetes-job-template.json").read_text())


def job_pod() -> dict:
    """The pod template of the Kubernetes work pool's flow-run Job (the sweep's driver)."""
    return job_template()["job_configuration"]["job_manifest"]["spec"]["template"]


def job_container() -> dict:
    (container,) = job_pod()["spec"]["containers"]
    return container


def pod_labels(cluster: dict, group: dict, kind: dict) -> dict:
    """The labels of a RayCluster's pod: those KubeRay sets and the template's own."""
    own = (group["template"].get("metadata") or {}).get("labels") or {}
    return {**own, "ray.io/cluster": cluster["metadata"]["name"], **kind}


def selects(selector: dict, labels: dict) -> bool:
    """Whether a Kubernetes label selector (matchLabels only) selects ``labels``; a
    selector with anything else is not understood here, and refused."""
    assert set(selector) <= {"matchLabels"}, selector
    match = selector.get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def test_kuberay_manifest(kuberay, services):
    """The endpoints' ConfigMap points at the compose servers' published ports; the head
    listens on 6380, exposes only that port, and keeps its dashboard on loopback."""
    config, cluster, _ = kuberay
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
    once). Ray's authentication, from the ConfigMap and the Secret, is never passed on:
    each worker has its node's."""
    from realspace.tracking.connection import resolve_tracking_uri

    config, _, _ = kuberay
    tracking, prefect = config["data"]["MLFLOW_TRACKING_URI"], config["data"]["PREFECT_API_URL"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    assert resolve_tracking_uri(None, None) == tracking
    probe = (
        "import json\n"
        "from realspace.flows import runtime\n"
        "with runtime.prefect_api(timeout=1) as url:\n"
        "    env = runtime.worker_env()\n"
        "    print(json.dumps([url, env.get('PREFECT_API_URL'), sorted(env)]))\n"
    )
    ray_auth = {"RAY_AUTH_MODE": config["data"]["RAY_AUTH_MODE"], "RAY_AUTH_TOKEN": "t0ken"}
    env = {**os.environ, "PREFECT_API_URL": prefect, **ray_auth}
    res = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    url, passed, keys = json.loads(res.stdout.splitlines()[-1])
    assert [url, passed] == [prefect, prefect]
    assert not [k for k in keys if k.startswith("RAY_AUTH")], keys


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
    config, cluster, _ = kuberay
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


def test_kuberay_nodes_and_drivers_use_token_auth_from_a_secret(kuberay):
    """Every Ray container (head and worker groups) runs in Ray's token mode, set on the
    container itself, with RAY_AUTH_TOKEN from one key of one Secret (no token in the
    manifest); the work pool's flow-run pods, the sweep's drivers, get that Secret's keys
    as their environment and the token mode from the ConfigMap (a driver that connects
    by address enables token authentication only when told)."""
    config, cluster, _ = kuberay
    refs = set()
    for container in ray_containers(cluster):
        env = env_of(container)
        assert env["RAY_AUTH_MODE"] == "token", container["name"]
        token = env["RAY_AUTH_TOKEN"]
        assert isinstance(token, dict) and "secretKeyRef" in token, container["name"]
        ref = token["secretKeyRef"]
        assert set(ref) == {"name", "key"}  # required: no pod starts without the Secret
        refs.add((ref["name"], ref["key"]))
    ((secret, key),) = refs
    assert key == "RAY_AUTH_TOKEN"  # the variable's name: envFrom gives it as such
    driver = job_container()
    assert {"secretRef": {"name": secret}} in driver["envFrom"]
    assert {"configMapRef": {"name": config["metadata"]["name"]}} in driver["envFrom"]
    assert config["data"]["RAY_AUTH_MODE"] == "token"


def test_kuberay_network_policy_admits_only_the_cluster_and_its_drivers(kuberay):
    """A NetworkPolicy selects the Ray head's pod (and the workers'): its ingress comes
    only from pods of the same RayCluster and from the pods labelled as the sweep's
    drivers, which the work pool's flow-run pods are; no rule admits every source, an
    address block or another namespace."""
    _, cluster, policies = kuberay
    spec = cluster["spec"]
    head = pod_labels(cluster, spec["headGroupSpec"], HEAD_LABELS)
    workers = [pod_labels(cluster, g, WORKER_LABELS) for g in spec["workerGroupSpecs"]]
    (policy,) = [p for p in policies if selects(p["spec"]["podSelector"], head)]
    driver = job_pod()["metadata"]["labels"]
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert "Ingress" in policy["spec"]["policyTypes"]
    assert all(selects(policy["spec"]["podSelector"], w) for w in workers)
    sources = []
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from"), rule  # a rule without `from` admits every source
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, peer  # no ipBlock, no namespaceSelector
            sources.append(peer["podSelector"])
    for selector in sources:
        assert any(selects(selector, labels) for labels in [head, *workers, driver]), selector
        # a pod that is neither a Ray node of this cluster nor a driver is not admitted
        assert not selects(selector, {"app": "anything-else", "ray.io/cluster": "other"})
    assert any(selects(s, driver) for s in sources)
    assert any(selects(s, head) for s in sources) and all(
        any(selects(s, w) for s in sources) for w in workers
    )
