"""A sweep of many tiny networks: what tracking costs at scale, on the embedded store and
on an MLflow server backed by PostgreSQL, side by side.

    python bench/tracking_scale.py [--networks 20000] [--steps 50] [--store sqlite|server|both]
                                   [--keep DIR] [--baseline REV]

Builds a sweep of tiny nets (target sin, widths 4 and 8, both parametrizations,
networks / 4 seeds, Adam for --steps steps, 64 samples; no analysis, no report) and runs
it with ``realspace.app.service`` (plan_sweep, run_sweep; a local Ray with 2 workers, a
temporary Prefect API) into a fresh folder:

- ``sqlite``: the embedded store (mlruns.db and mlartifacts in that folder);
- ``server``: ``mlflow server`` on loopback, its backend a fresh PostgreSQL database
  (127.0.0.1:5432, user postgres), its artifacts proxied into that folder: the workers
  upload their tables through the server.

Per store it prints: wall time and networks/s end to end, start-up (to the flow's first
line), training (the workers' busy time less their writes, / workers), tracking in the
driver (opening the sweep, closing cells) and on the workers (writing tables), the share
of wall spent on anything but training, each writing process's rate (networks/s while
writing), the store's growth per network and files per network, and ``realspace status``
and ``realspace report --no-log`` timed as subprocesses on that store. Then the targets,
stated for 20,000 networks, beside the embedded store's values.

``--baseline REV`` also runs the code of git revision REV (its src, flows and tasks), on
each store before this tree's, so that before and after print side by side in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

NAME = "tracking-scale"
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/"
TARGETS = [  # (what, key, comparison, limit): the redesign's targets at 20,000 networks
    ("orchestration + tracking share of wall", "overhead_share", "<", 0.20),
    ("networks/s end to end", "rate", ">=", 500.0),
    ("store growth per network (bytes)", "bytes_per_net", "<=", 5000.0),
    ("realspace status (s)", "status_s", "<", 3.0),
    ("realspace report (s)", "report_s", "<", 30.0),
]
PASSES = {"<": float.__lt__, "<=": float.__le__, ">=": float.__ge__}  # NaN fails all


def folder_size(folder: Path) -> tuple[int, int]:
    """(bytes, files) under ``folder``: file sizes, without directory entries."""
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    return sum(p.stat().st_size for p in files), len(files)


def cli_seconds(folder: Path, uri: str, expect: str, *args: str) -> float:
    """Wall seconds of ``realspace ARGS --tracking-uri URI`` run in ``folder``; NaN when
    it fails or its output lacks ``expect``."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [sys.executable, "-m", "realspace.app.cli", *args, "--tracking-uri", uri]
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0 or expect not in done.stdout:
        print(f"realspace {args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
        return float("nan")
    return seconds


def _pg(sql: str) -> None:
    import psycopg2

    con = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    con.autocommit = True
    try:
        con.cursor().execute(sql)
    finally:
        con.close()


def _pg_bytes(db: str) -> int:
    import psycopg2

    con = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=db)
    try:
        cur = con.cursor()
        cur.execute("SELECT pg_database_size(current_database())")
        return int(cur.fetchone()[0])
    finally:
        con.close()


@contextlib.contextmanager
def mlflow_server(folder: Path):
    """``mlflow server`` on a free loopback port over a fresh PostgreSQL database, its
    artifacts proxied into ``folder / 'art'``; yields (URI, database name)."""
    db = f"rs_bench_{os.getpid()}"
    _pg(f"CREATE DATABASE {db}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(folder / "mlflow-server.log", "w")  # noqa: SIM115 - closed below
    mlflow = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", PG + db, "--artifacts-destination",
         str(folder / "art"), "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_ENABLE_TELEMETRY": "false"},
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        import urllib.request

        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(uri + "/health", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"mlflow server did not start: see {log.name}") from None
                time.sleep(0.5)
        yield uri, db
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
        log.close()
        _pg(f"DROP DATABASE IF EXISTS {db}")


def measure(folder: Path, networks: int, steps: int, store: str) -> dict:
    from realspace.app.service import plan_sweep, run_sweep

    doc = {
        "name": NAME,
        "targets": [{"name": "sin"}],
        "parametrizations": ["unrestricted", "restricted"],
        "widths": [4, 8],
        "seeds": max(1, networks // 4),
        "data": {"n_samples": 64},
        "optimizer": {"kind": "adam", "steps": steps},
        "execution": {"num_workers": 2},
        "analysis": {"report": False},
    }
    config = folder / "sweep.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    server = mlflow_server(folder) if store == "server" else contextlib.nullcontext()
    with server as found:
        uri = found[0] if found else f"sqlite:///{folder / 'mlruns.db'}"
        t0, t0_epoch = time.perf_counter(), time.time()
        plan = plan_sweep(config, tracking_uri=uri)
        s = run_sweep(plan, progress=False, analysis=False)
        wall = time.perf_counter() - t0
        for f in s.failed_shards:
            print("failed shard:", f)
        n = max(1, s.trained)
        if found:
            db_bytes = _pg_bytes(found[1])
            art, files = folder_size(folder / "art")
        else:
            db_bytes = (folder / "mlruns.db").stat().st_size
            art, files = folder_size(folder / "mlartifacts")
        status_s = cli_seconds(folder, uri, f"total: {s.trained} done", "status", config.name)
        report_s = cli_seconds(folder, uri, "report.html", "report", config.name, "--no-log")
    training = (s.train_busy_s - s.write_s) / s.workers  # the workers' writes are tracking
    rates = sorted(w[0] / w[1] for w in s.writers.values() if w[1] > 0)
    return {
        "networks": s.trained,
        "wall": wall,
        "rate": s.trained / wall,
        "startup": s.started_at - t0_epoch,  # to the flow's first line, planning included
        "training": training,
        "span": s.train_span_s,
        "first": s.first_shard_at - t0_epoch,
        "workers": s.workers,
        "logging": s.logging_s,
        "write": s.write_s / s.workers,
        "log_ms": 1000 * (s.logging_s + s.write_s) / n,
        "overhead_share": (wall - training) / wall,
        "writers": " / ".join(f"{r:.0f}" for r in rates),
        "bytes_per_net": (db_bytes + art) / n,  # includes the empty database's own size
        "db_per_net": db_bytes / n,
        "estimate_per_net": plan.estimate["store_bytes"] / max(1, len(plan.runs)),
        "files_per_net": files / n,
        "status_s": status_s,
        "report_s": report_s,
    }


ROWS = [  # (label, key, format)
    ("networks", "networks", "{}"),
    ("wall (s)", "wall", "{:.1f}"),
    ("networks/s end to end", "rate", "{:.1f}"),
    ("start-up (s)", "startup", "{:.1f}"),
    ("training, less writes (busy / workers) (s)", "training", "{:.1f}"),
    ("first shard started at (s)", "first", "{:.1f}"),
    ("first shard start to last shard end (s)", "span", "{:.1f}"),
    ("tracking in the driver (s)", "logging", "{:.1f}"),
    ("table writes (busy / workers) (s)", "write", "{:.1f}"),
    ("tracking per network, driver + workers (ms)", "log_ms", "{:.2f}"),
    ("orchestration + tracking share of wall", "overhead_share", "{:.0%}"),
    ("write rate per worker (networks/s)", "writers", "{}"),
    ("store growth per network (bytes)", "bytes_per_net", "{:.0f}"),
    ("  of which the database (bytes)", "db_per_net", "{:.0f}"),
    ("  planner's estimate per network (bytes)", "estimate_per_net", "{:.0f}"),
    ("files per network", "files_per_net", "{:.3f}"),
    ("realspace status (s)", "status_s", "{:.1f}"),
    ("realspace report --no-log (s)", "report_s", "{:.1f}"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=20000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--store", choices=["sqlite", "server", "both"], default="sqlite")
    ap.add_argument("--keep", type=Path, help="run in this (new or empty) folder and keep it")
    ap.add_argument("--baseline", metavar="REV", help="also run the code of this revision")
    ap.add_argument("--one", nargs=2, metavar=("STORE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    # a fresh local Ray, never a cluster someone else started on this machine
    os.environ.setdefault("RAY_ADDRESS", "local")
    stores = ["sqlite", "server"] if args.store == "both" else [args.store]
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        if any(args.keep.iterdir()):
            sys.exit(f"--keep {args.keep}: the folder is not empty")
        where = contextlib.nullcontext(str(args.keep))
    else:
        where = tempfile.TemporaryDirectory(prefix="tracking-scale-")
    if args.one:  # one store, in this process: the parent reads the JSON it prints
        m = measure(Path(args.one[1]), args.networks, args.steps, args.one[0])
        print("RESULT " + json.dumps(m))
        return
    found = {}
    columns = [(s, None) for s in stores]
    if args.baseline:
        columns = [c for s in stores for c in ((s, args.baseline), (s, None))]
    with where as folder:
        for store, rev in columns:  # each in a fresh process: nothing of one run in the other
            name = f"{store}@{rev}" if rev else store
            sub = Path(folder).resolve() / name
            sub.mkdir()
            env = dict(os.environ)
            if rev:
                from startup import extract  # bench/startup.py: a revision's src, flows, tasks

                code = Path(folder).resolve() / f"code-{rev}"
                code.mkdir(exist_ok=True)
                env["PYTHONPATH"] = extract(rev, str(code))
            cmd = [sys.executable, __file__, "--networks", str(args.networks), "--steps",
                   str(args.steps), "--one", store, str(sub)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                sys.exit(f"{name} run failed ({done.returncode}):\n{done.stderr[-3000:]}")
            found[name] = json.loads(lines[-1].removeprefix("RESULT "))
    stores = list(found)

    print(f"tracking scale: sin, widths 4 8, both parametrizations, adam {args.steps} steps")
    print(f"{'':<46}" + "".join(f"{s[:13]:>14}" for s in stores))
    for label, key, fmt in ROWS:
        print(f"{label:<46}" + "".join(f"{fmt.format(found[s][key]):>14}" for s in stores))
    now = [s for s in stores if "@" not in s]
    m = found[now[0]]
    print(f"\ntargets (stated for 20,000 networks; this run: {m['networks']}, {now[0]})")
    for label, key, op, limit in TARGETS:
        verdict = "PASS" if PASSES[op](float(m[key]), limit) else "FAIL"
        print(f"{label:<42}{m[key]:>12.3g}  {op:>2} {limit:<8g} {verdict}")


if __name__ == "__main__":
    main()
