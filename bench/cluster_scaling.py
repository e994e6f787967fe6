"""The same sweep on a one-node and on a two-node local Ray cluster, side by side.

    python bench/cluster_scaling.py [--widths 4 8 16 32 64] [--seeds 8] [--steps 1000]

Both clusters get the same two CPUs: one node with 2 CPUs, or two nodes (a head and a
node joined with `ray start --address`) with 1 CPU each. On one machine a second node
buys no compute, so the comparison shows what the multi-node path costs (object transfer
between raylets, scheduling across nodes), not a speed-up. Printed per cluster: wall time
of the flow, the workers' busy time, the shards, and the per-shard overhead

    (wall of the training phase x CPUs - busy time) / shards,

the time a CPU slot spends per shard on anything but training (scheduling, moving specs
and records, Prefect task bookkeeping). The Prefect API is a temporary local one; the
tracking store a fresh SQLite file per cluster.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(nodes: int, ray_tmp: str) -> str:
    port = _port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}  # token auth: see main()
    cpus = "2" if nodes == 1 else "1"
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", cpus, "--disable-usage-stats"]
    cmds = [
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--port",
            str(port),
            "--temp-dir",
            ray_tmp,
            "--include-dashboard",
            "false",
            *common,
        ]
    ]
    cmds += [[str(BIN / "ray"), "start", "--address", f"127.0.0.1:{port}", *common]] * (nodes - 1)
    for cmd in cmds:
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=180)
    return f"127.0.0.1:{port}"


def stop_cluster(ray_tmp: str) -> None:
    """By PID: the processes whose command line names this cluster's directory."""
    out = subprocess.run(["pgrep", "-f", ray_tmp], capture_output=True, text=True)
    for pid in out.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def run(nodes: int, doc: dict) -> dict:
    from realspace.flows.runtime import ray_task_runner
    from realspace.flows.sweep import sweep_flow

    ray_tmp = tempfile.mkdtemp(prefix="rsbench", dir="/tmp")
    try:
        address = start_cluster(nodes, ray_tmp)
        with tempfile.TemporaryDirectory() as tmp:
            flow = sweep_flow.with_options(task_runner=ray_task_runner(address))
            t0 = time.perf_counter()
            s = flow(doc, f"sqlite:///{tmp}/mlruns.db", workers=2, progress=False, analysis=False)
            wall = time.perf_counter() - t0
    finally:
        stop_cluster(ray_tmp)
    train_wall = wall - s.plan_s
    return {
        "nodes": nodes,
        "wall_s": wall,
        "busy_s": s.train_busy_s,
        "shards": s.shards,
        "runs": s.trained,
        "overhead_per_shard_s": (train_wall * 2 - s.train_busy_s) / max(1, s.shards),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    # token authentication, as on a real cluster: the nodes and this driver share a token.
    # Set before Ray is imported: a driver that connects by address keeps the mode Ray
    # read then.
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    from realspace.flows.runtime import prefect_api, quiet_environment

    quiet_environment()
    doc = {
        "name": "cluster-bench",
        "targets": [{"name": "sin"}, {"name": "teacher", "teacher_width": 4}],
        "widths": args.widths,
        "seeds": args.seeds,
        "optimizer": {"steps": args.steps},
        # small shards, so that there are several per shape and scheduling shows
        "execution": {"max_shard_size": 4},
    }
    with prefect_api():  # one API for both: Prefect's event client keeps its first URL
        results = [run(n, doc) for n in (1, 2)]
    one, two = results
    print(f"sweep: {one['runs']} runs in {one['shards']} shards, 2 CPUs in total")
    print(f"{'':<28}{'1 node':>10}{'2 nodes':>10}{'2 / 1':>8}")
    for key, label in [
        ("wall_s", "wall (s)"),
        ("busy_s", "training busy (s)"),
        ("overhead_per_shard_s", "overhead per shard (s)"),
    ]:
        print(f"{label:<28}{one[key]:>10.2f}{two[key]:>10.2f}{two[key] / one[key]:>8.2f}")


if __name__ == "__main__":
    main()
