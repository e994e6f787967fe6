"""A sweep of many tiny networks on the embedded store: what tracking costs at scale.

    python bench/tracking_scale.py [--networks 20000] [--steps 50] [--keep DIR]

Builds a sweep of tiny nets in a fresh folder (target sin, widths 4 and 8, both
parametrizations, networks / 4 seeds, Adam for --steps steps, 64 samples; no analysis,
no report), runs it with ``realspace.service`` (plan_sweep, run_sweep) on the embedded
SQLite store in that folder (a local Ray, a temporary Prefect API), and prints: wall time
and networks/s end to end, start-up (to the flow's first line), training (the workers'
busy time / workers), logging (driver time writing runs), the share of wall spent on
anything but training, the store's growth (mlruns.db + mlartifacts, against an empty
store) and files per network. It then times ``realspace status`` and ``realspace report
--no-log`` on that store as subprocesses, and prints the tracking layer's targets, stated
for 20,000 networks, beside the measured values (at other sizes: indicative only).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

NAME = "tracking-scale"
TARGETS = [  # (what, key, comparison, limit): the redesign's targets at 20,000 networks
    ("orchestration + logging share of wall", "overhead_share", "<", 0.20),
    ("networks/s end to end", "rate", ">=", 500.0),
    ("store growth per network (bytes)", "bytes_per_net", "<=", 5000.0),
    ("realspace status (s)", "status_s", "<", 3.0),
    ("realspace report (s)", "report_s", "<", 30.0),
]
PASSES = {"<": float.__lt__, "<=": float.__le__, ">=": float.__ge__}  # NaN fails all


def store_size(folder: Path) -> tuple[int, int, int]:
    """(database bytes, artifact bytes, files) of the embedded store in ``folder``: file
    sizes, without directory entries or block rounding."""
    db = [p for p in folder.glob("mlruns.db*") if p.is_file()]
    art = [p for p in (folder / "mlartifacts").rglob("*") if p.is_file()]
    size = [sum(p.stat().st_size for p in paths) for paths in (db, art)]
    return size[0], size[1], len(db) + len(art)


def cli_seconds(folder: Path, expect: str, *args: str) -> float:
    """Wall seconds of ``realspace ARGS`` run in ``folder`` (its default store); NaN when
    it fails or its output lacks ``expect`` (it read some other store)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd, t = [sys.executable, "-m", "realspace.cli", *args], time.perf_counter()
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0 or expect not in done.stdout:
        print(f"realspace {args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
        return float("nan")
    return seconds


def measure(folder: Path, networks: int, steps: int) -> dict:
    from realspace.service import plan_sweep, run_sweep
    from realspace.tracking.connection import connect

    doc = {
        "name": NAME,
        "targets": [{"name": "sin"}],
        "parametrizations": ["unrestricted", "restricted"],
        "widths": [4, 8],
        "seeds": max(1, networks // 4),
        "data": {"n_samples": 64},
        "optimizer": {"kind": "adam", "steps": steps},
        "analysis": {"report": False},
    }
    config = folder / "sweep.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    t0, t0_epoch = time.perf_counter(), time.time()
    plan = plan_sweep(config, tracking_uri=f"sqlite:///{folder / 'mlruns.db'}")
    s = run_sweep(plan, progress=False, analysis=False)
    wall = time.perf_counter() - t0
    for f in s.failed_shards:
        print("failed shard:", f)
    db, art, files = store_size(folder)
    empty = folder / "empty"  # the same experiment in a store with nothing logged
    empty.mkdir()
    connect(f"sqlite:///{empty / 'mlruns.db'}", NAME)
    base_db, _, base_files = store_size(empty)
    n = max(1, s.trained)
    training = (s.train_busy_s - s.write_s) / s.workers  # the workers' writes are tracking
    return {
        "networks": s.trained,
        "wall": wall,
        "rate": s.trained / wall,
        "startup": s.started_at - t0_epoch,  # to the flow's first line, planning included
        "training": training,
        "workers": s.workers,
        "logging": s.logging_s,
        "write": s.write_s / s.workers,
        "log_ms": 1000 * (s.logging_s + s.write_s) / n,
        "overhead_share": (wall - training) / wall,
        "growth": db - base_db + art,
        "bytes_per_net": (db - base_db + art) / n,
        "db_per_net": (db - base_db) / n,
        "estimate_per_net": plan.estimate["store_bytes"] / max(1, len(plan.runs)),
        "files_per_net": (files - base_files) / n,
        "status_s": cli_seconds(folder, f"total: {s.trained} done", "status", config.name),
        "report_s": cli_seconds(folder, "report.html", "report", config.name, "--no-log"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=20000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--keep", type=Path, help="run in this (new or empty) folder and keep it")
    args = ap.parse_args()
    # a fresh local Ray, never a cluster someone else started on this machine
    os.environ.setdefault("RAY_ADDRESS", "local")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        if any(args.keep.iterdir()):
            sys.exit(f"--keep {args.keep}: the folder is not empty")
        where = contextlib.nullcontext(str(args.keep))
    else:
        where = tempfile.TemporaryDirectory(prefix="tracking-scale-")
    with where as folder:
        m = measure(Path(folder).resolve(), args.networks, args.steps)

    print(f"tracking scale: sin, widths 4 8, both parametrizations, adam {args.steps} steps")
    rows = [
        ("networks", f"{m['networks']}"),
        ("wall (s)", f"{m['wall']:.1f}"),
        ("networks/s end to end", f"{m['rate']:.1f}"),
        ("start-up (s)", f"{m['startup']:.1f}"),
        (f"training (busy / {m['workers']} workers) (s)", f"{m['training']:.1f}"),
        ("tracking in the driver (s)", f"{m['logging']:.1f}"),
        (f"table writes (busy / {m['workers']} workers) (s)", f"{m['write']:.1f}"),
        ("tracking per network, driver + workers (ms)", f"{m['log_ms']:.2f}"),
        ("orchestration + logging share of wall", f"{m['overhead_share']:.0%}"),
        ("store growth (MB)", f"{m['growth'] / 1e6:.2f}"),
        ("store growth per network (bytes)", f"{m['bytes_per_net']:.0f}"),
        ("  of which mlruns.db (bytes)", f"{m['db_per_net']:.0f}"),
        ("  planner's estimate per network (bytes)", f"{m['estimate_per_net']:.0f}"),
        ("files per network", f"{m['files_per_net']:.2f}"),
        ("realspace status (s)", f"{m['status_s']:.1f}"),
        ("realspace report --no-log (s)", f"{m['report_s']:.1f}"),
    ]
    for label, value in rows:
        print(f"{label:<46}{value:>12}")
    print(f"\ntargets (stated for 20,000 networks; this run: {m['networks']})")
    for label, key, op, limit in TARGETS:
        verdict = "PASS" if PASSES[op](float(m[key]), limit) else "FAIL"
        print(f"{label:<42}{m[key]:>12.3g}  {op:>2} {limit:<8g} {verdict}")


if __name__ == "__main__":
    main()
