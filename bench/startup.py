"""A sweep's fixed start-up, end to end: the code of a baseline revision against this
tree's, side by side in one run.

    python bench/startup.py [--baseline REV] [--repeats 3]

Each measurement is a fresh process (imports are part of the start-up) that plans and
runs a trivial sweep (2 tiny networks, no analysis, on a local Ray with 2 workers and a
temporary Prefect API, into an embedded store in a new temporary folder). The baseline's
``src``, ``flows`` and ``tasks`` are taken from git (``--baseline``, by default the last
revision with the sequential start-up); the two alternate, so that load from other work
on the machine falls on both. Printed per process, then medians and new / old:

- to flow start: from the process's start to the flow's first line, i.e. everything
  before any network can train (imports, store, Prefect API, Ray, the flow's own start);
  the number comparable between the two;
- startup_s: the summary's, from run_sweep's call to the flow's call (the baseline
  started Ray inside the flow call, so its startup_s leaves Ray out; this tree's has it);
- flow: from the flow's first line to run_sweep's return (Ray's workers warm up, the two
  networks train and are logged);
- run_sweep wall and process wall (the latter to run_sweep's return).

new / old is the ratio of the medians; paired is the median of each repetition's own
ratio (its two processes ran back to back), with its range: the noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

T0 = time.perf_counter()
T0_EPOCH = time.time()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = "4cedd58"  # the sequential start-up: server, then flow, then Ray in the runner
DOC = {
    "name": "startup-bench",
    "targets": [{"name": "sin"}],
    "parametrizations": ["unrestricted"],
    "widths": [2],
    "seeds": 2,
    "optimizer": {"steps": 20},
    "data": {"n_samples": 16},
    "execution": {"device": "cpu", "num_workers": 2},
}


def child() -> None:
    """One measurement, printed as a JSON line."""
    from realspace.app.service import plan_sweep, run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        plan = plan_sweep(DOC, tracking_uri=f"sqlite:///{tmp}/mlruns.db")
        t = time.perf_counter()
        s = run_sweep(plan, progress=False, analysis=False)
        done = time.perf_counter()
    assert s.trained == 2 and s.complete, s
    print(
        json.dumps(
            {
                "to_flow_start": s.started_at - T0_EPOCH,
                "startup_s": s.startup_s,
                "flow": done - T0 - (s.started_at - T0_EPOCH),
                "run_sweep": done - t,
                "process": done - T0,
            }
        )
    )


def extract(rev: str, into: str) -> str:
    """The revision's src, flows and tasks (the package's links between them kept)."""
    archive = subprocess.run(
        ["git", "-C", ROOT, "archive", rev, "src", "flows", "tasks"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return os.path.join(into, "src")


def measure(src: str, cwd: str) -> dict:
    env = {**os.environ, "PYTHONPATH": src, "RAY_ADDRESS": "local"}
    for key in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):  # a temporary API, the given store
        env.pop(key, None)
    res = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if res.returncode:
        sys.exit(f"a measurement failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the old start-up")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child()

    keys = ["to_flow_start", "startup_s", "flow", "run_sweep", "process"]
    results = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        srcs = {"old": extract(args.baseline, tmp), "new": os.path.join(ROOT, "src")}
        print(f"{'run':<8}" + "".join(f"{k:>15}" for k in keys))
        for i in range(args.repeats):
            for which in ("old", "new") if i % 2 == 0 else ("new", "old"):
                r = measure(srcs[which], tmp)
                results[which].append(r)
                print(f"{which} {i + 1:<4}" + "".join(f"{r[k]:>15.1f}" for k in keys), flush=True)

    med = {w: {k: statistics.median(r[k] for r in rs) for k in keys} for w, rs in results.items()}
    print(f"\nmedians of {args.repeats} (s; baseline {args.baseline}), with [min, max]")
    head = f"{'old':>7}{'[range]':>13}{'new':>7}{'[range]':>13}{'new / old':>11}{'paired':>19}"
    print(f"{'':<15}{head}")
    for k in keys:
        cells = []
        for w in ("old", "new"):
            lo, hi = min(r[k] for r in results[w]), max(r[k] for r in results[w])
            cells.append(f"{med[w][k]:>7.1f}{f'[{lo:.1f}, {hi:.1f}]':>13}")
        # each repetition's pair ran back to back, under much the same load from elsewhere
        pairs = [n[k] / o[k] for o, n in zip(results["old"], results["new"], strict=True)]
        paired = f"{statistics.median(pairs):.2f} [{min(pairs):.2f}, {max(pairs):.2f}]"
        print(f"{k:<15}{''.join(cells)}{med['new'][k] / med['old'][k]:>11.2f}{paired:>19}")


if __name__ == "__main__":
    main()
