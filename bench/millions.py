"""A sweep of many tiny networks, end to end, for the driver's memory: planning, the sweep
with --no-analysis, ``realspace status`` and ``realspace report``, each timed with its
process's peak resident memory.

    python bench/millions.py [--networks 100000] [--steps 50] [--baseline REV] [--plan-only]

The sweep: target sin, widths 4 and 8, both parametrizations, networks / 4 seeds, Adam
for --steps steps, 64 samples, 2 workers on a local Ray, the embedded store in a fresh
folder. Rows:

- planning: ``plan_sweep`` in a fresh process (wall, and the process's peak RSS);
- the sweep: ``realspace sweep --no-analysis --quiet`` (wall, the driver's peak RSS:
  its own process, polled every 0.2 s, the Ray workers not counted);
- ``realspace status`` and ``realspace report --no-log``: wall and peak RSS.

``--baseline REV`` runs the code of git revision REV first (its src, flows and tasks), so
that before and after print side by side. ``--plan-only`` times planning alone (any
number of networks: nothing is trained); ``--keep DIR`` keeps the stores in DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PLAN = """
import json, resource, sys, time
t = time.perf_counter()
from realspace.app.service import plan_sweep
t_import = time.perf_counter()
plan = plan_sweep(sys.argv[1], tracking_uri="sqlite:///" + sys.argv[2])
print(json.dumps({"plan_s": time.perf_counter() - t_import, "runs": len(plan.runs),
                  "plan_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def config(folder: Path, networks: int, steps: int) -> Path:
    doc = {
        "name": "millions",
        "targets": [{"name": "sin"}],
        "parametrizations": ["unrestricted", "restricted"],
        "widths": [4, 8],
        "seeds": max(1, networks // 4),
        "data": {"n_samples": 64},
        "optimizer": {"kind": "adam", "steps": steps},
        "execution": {"num_workers": 2},
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, int, str]:
    """(wall seconds, peak RSS of the process itself, stdout); exits on failure."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    peak = 0
    while proc.poll() is None:
        peak = max(peak, peak_rss(proc.pid))
        time.sleep(0.2)
    out, errs = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[2:4])} failed ({proc.returncode}):\n{errs[-3000:]}")
    return time.perf_counter() - t, peak, out


def measure(folder: Path, networks: int, steps: int, env: dict, plan_only: bool) -> dict:
    path = config(folder, networks, steps)
    db = folder / "mlruns.db"
    uri = f"sqlite:///{db}"
    done = subprocess.run([sys.executable, "-c", PLAN, str(path), str(db)], env=env, cwd=folder,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"planning failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.splitlines()[-1])
    if plan_only:
        return found
    cli = [sys.executable, "-m", "realspace.app.cli"]
    for name, args in (
        ("sweep", ["sweep", str(path), "--no-analysis", "--quiet", "--yes"]),
        ("status", ["status", str(path)]),
        ("report", ["report", str(path), "--no-log", "--report-dir", str(folder / "report")]),
    ):
        seconds, peak, _ = timed([*cli, *args, "--tracking-uri", uri], folder, env)
        found[f"{name}_s"], found[f"{name}_rss"] = seconds, peak
    return found


ROWS = [
    ("networks planned", "runs", "{:,.0f}"),
    ("planning: plan_sweep (s)", "plan_s", "{:.3f}"),
    ("planning: process peak RSS (MB)", "plan_rss", "{:.0f}"),
    ("sweep --no-analysis: wall (s)", "sweep_s", "{:.1f}"),
    ("sweep: driver peak RSS (MB)", "sweep_rss", "{:.0f}"),
    ("status: wall (s)", "status_s", "{:.1f}"),
    ("status: peak RSS (MB)", "status_rss", "{:.0f}"),
    ("report --no-log: wall (s)", "report_s", "{:.1f}"),
    ("report: peak RSS (MB)", "report_rss", "{:.0f}"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--networks", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--baseline", metavar="REV", help="also run the code of this revision")
    ap.add_argument("--plan-only", action="store_true", help="time planning alone")
    ap.add_argument("--keep", type=Path, help="run in this new folder and keep the stores")
    args = ap.parse_args()
    base = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    base["RAY_ADDRESS"] = "local"  # a fresh local Ray, never someone else's cluster
    columns = ([args.baseline] if args.baseline else []) + [None]
    found = {}
    if args.keep:
        args.keep.mkdir(parents=True)  # refuses a folder that exists: nothing overwritten
        where = contextlib.nullcontext(str(args.keep))
    else:
        where = tempfile.TemporaryDirectory(prefix="millions-")
    with where as tmp:
        for rev in columns:
            sub = Path(tmp) / (rev or "this")
            sub.mkdir()
            env = dict(base)
            if rev:
                from startup import extract  # bench/startup.py: a revision's src, flows, tasks

                code = Path(tmp) / f"code-{rev}"
                code.mkdir()
                env["PYTHONPATH"] = extract(rev, str(code))
            found[rev or "this tree"] = measure(sub, args.networks, args.steps, env, args.plan_only)
    names = list(found)
    print(f"tiny sweep: sin, widths 4 8, both parametrizations, adam {args.steps} steps, 2 workers")
    print(f"{'':<36}" + "".join(f"{n[:14]:>16}" for n in names))
    for label, key, fmt in ROWS:
        if all(key in found[n] for n in names):
            cells = []
            for n in names:
                v = found[n][key]
                cells.append(fmt.format(v / 2**20 if key.endswith("rss") else v))
            print(f"{label:<36}" + "".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
