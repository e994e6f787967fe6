"""Where the default sweep's wall time goes, measured in one run from a fresh store.

    python bench/sweep_overhead.py [configs/default.yaml]

Splits the wall time into fixed start-up (imports, the Prefect API, Ray and its
workers up to the first line of the flow), training (the workers' busy time
divided by the number of workers, i.e. its share of the wall time), logging (driver
time spent writing runs to MLflow) and the rest; prints the per-run logging cost and
the time to plan 100,000 runs.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

T0 = time.perf_counter()
T0_WALL = time.time()


def main() -> None:
    config = (
        sys.argv[1]
        if len(sys.argv) > 1
        else os.path.join(os.path.dirname(__file__), "..", "configs", "default.yaml")
    )
    from realspace.app.service import plan_sweep, run_sweep
    from realspace.sweep.config import parse_config
    from realspace.sweep.plan import plan_cells, plan_runs

    with tempfile.TemporaryDirectory() as tmp:
        plan = plan_sweep(config, tracking_uri=f"sqlite:///{tmp}/mlruns.db")
        s = run_sweep(plan, progress=False, analysis=False)
    workers = plan.workers
    wall = time.perf_counter() - T0
    startup = s.started_at - T0_WALL
    training = s.train_busy_s / workers
    logging = s.logging_s
    other = wall - startup - training - logging
    for f in s.failed_shards[:3]:
        print("failed:", f)
    n = max(1, s.trained)
    print(
        f"default sweep: {s.trained} runs, {s.shards} shards, {workers} workers; wall {wall:.1f} s"
    )
    print(f"{'part':<34}{'seconds':>9}{'share':>8}")
    for name, sec in [
        ("fixed start-up (to flow start)", startup),
        ("training (worker busy / workers)", training),
        ("logging (driver, MLflow)", logging),
        ("other (planning, waiting, tail)", other),
    ]:
        print(f"{name:<34}{sec:>9.1f}{sec / wall:>8.0%}")
    print(f"orchestration + logging: {(wall - training) / wall:.0%} of wall (goal < 50%)")
    print(f"logging per run: {1000 * logging / n:.1f} ms (goal < 15 ms)")

    big = parse_config(
        {
            "name": "big",
            "targets": [{"name": "sin"}, {"name": "teacher"}],
            "widths": list(range(1, 126)),
            "seeds": 100,
            "optimizer": {"lr": [0.01, 0.03]},
        }
    )
    t = time.perf_counter()
    plan = plan_cells(big)
    cells_s = time.perf_counter() - t
    t = time.perf_counter()
    runs = plan_runs(big)
    runs_s = time.perf_counter() - t
    print(
        f"planning {len(plan)} runs: {cells_s:.3f} s as {len(plan.cells)} cells (what the "
        f"driver does), {runs_s:.2f} s expanded into {len(runs)} PlannedRuns"
    )


if __name__ == "__main__":
    main()
