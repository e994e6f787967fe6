"""The sweep flow: plan -> skip what is done -> train shards on workers -> log ->
analysis stages (planned and resumed the same way) -> report -> summary.

No science here: every step calls realspace (planning, training, tracking).
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.futures import as_completed

from realspace.sweep.analysis import plan_analysis
from realspace.sweep.budget import shard_budget
from realspace.sweep.config import parse_config
from realspace.sweep.plan import pack_shards, plan_runs, sweep_key
from realspace.sweep.progress import SweepProgress
from realspace.sweep.summary import Failure, SweepSummary
from realspace.tasks.analysis import (
    analysis_unit_task,
    finished_runs_task,
    load_end_points_task,
    log_unit_task,
    report_task,
)
from realspace.tasks.faults import fault_point
from realspace.tasks.tracking import log_shard_task, open_sweep_task
from realspace.tasks.train import train_shard_task


def _submit(task, cfg, gpus_per_shard, *args):
    """Submit to the task runner, asking Ray for the configured resources."""
    if gpus_per_shard or cfg.execution.cpus_per_worker != 1:
        from prefect_ray.context import remote_options

        with remote_options(num_cpus=cfg.execution.cpus_per_worker, num_gpus=gpus_per_shard):
            return task.submit(*args)
    return task.submit(*args)


def run_analysis(cfg, runs, tracking_uri, experiment, parent, options, gpus, progress):
    """Compute and log every analysis unit not finished yet whose inputs are all trained.
    Returns (units logged, units waiting for runs, failed units)."""
    units = plan_analysis(cfg, runs)
    finished = finished_runs_task(tracking_uri, experiment, parent)
    todo = [u for u in units if u.key not in finished]
    ready = [u for u in todo if all(m in finished for m in u.members)]
    failed, logged = [], 0
    with SweepProgress(
        total=len(units),
        done=len(units) - len(todo),
        enabled=progress,
        label="analysis",
        unit="units",
    ) as bar:
        futures = {}
        for u in ready:
            params = (
                load_end_points_task(tracking_uri, experiment, [finished[m] for m in u.members])
                if u.members
                else []
            )
            futures[_submit(analysis_unit_task, cfg, gpus, u.stage, u.inputs, params, options)] = u
        for fut in as_completed(list(futures)):
            u = futures[fut]
            try:
                rows = fut.result()
            except Exception as err:
                failed.append(Failure(u.name, repr(err)))
                continue
            log_unit_task(tracking_uri, experiment, parent, u, rows)
            fault_point("analysis")
            logged += 1
            bar.advance(1)
    return logged, len(todo) - len(ready), failed


@flow(name="realspace-sweep", validate_parameters=False, log_prints=False)
def sweep_flow(
    config: dict,
    tracking_uri: str,
    max_shards: int | None = None,
    workers: int = 1,
    gpus_per_shard: float = 0.0,
    progress: bool = True,
    analysis: bool = True,
    report_dir: str | None = None,
) -> SweepSummary:
    """Run one sweep (resuming what is done); returns its counts and timings."""
    t0 = time.perf_counter()
    started_at = time.time()
    cfg = parse_config(config)
    experiment = cfg.tracking.experiment or cfg.name
    runs = plan_runs(cfg)
    fault_point("plan")
    opened = open_sweep_task(tracking_uri, experiment, sweep_key(cfg), cfg.name)
    parent, done = opened["parent"], opened["done"]
    pending = [r for r in runs if r.key not in done]
    shards = pack_shards(
        pending, shard_budget(cfg, workers), cfg.execution.max_shard_size, cfg.execution.dtype
    )
    if max_shards is not None:
        shards = shards[:max_shards]
    options = {
        "device": cfg.execution.device,
        "dtype": cfg.execution.dtype,
        "threads": cfg.execution.cpus_per_worker,
    }
    t_plan = time.perf_counter()

    failed, logged, diverged, t_log, busy = [], 0, 0, 0.0, 0.0
    with SweepProgress(total=len(runs), done=len(runs) - len(pending), enabled=progress) as bar:
        futures = {}
        for shard in shards:
            specs = [r.spec.to_dict() for r in shard.runs]
            futures[_submit(train_shard_task, cfg, gpus_per_shard, specs, options)] = shard
        for fut in as_completed(list(futures)):
            shard = futures[fut]
            try:
                result = fut.result()
                records = result["records"]
                busy += result["seconds"]
            except Exception as err:  # the shard failed every retry: report, go on
                failed.append(Failure(shard.id, repr(err), runs=len(shard.runs)))
                continue
            fault_point("trained")
            t = time.perf_counter()
            log_shard_task(
                tracking_uri,
                experiment,
                parent,
                shard.id,
                [r.key for r in shard.runs],
                records,
                node=result.get("node"),
            )
            t_log += time.perf_counter() - t
            logged += len(records)
            diverged += sum(r.status == "diverged" for r in records)
            bar.advance(len(records))

    remaining = len(pending) - logged
    t_analysis = time.perf_counter()
    units, waiting, failed_units, report = 0, 0, [], None
    if analysis:
        units, waiting, failed_units = run_analysis(
            cfg, runs, tracking_uri, experiment, parent, options, gpus_per_shard, progress
        )
        if cfg.analysis.report:
            try:
                report = report_task(config, tracking_uri, report_dir)
            except Exception as err:  # the report never costs a sweep its results
                failed_units.append(Failure("report", repr(err)))
    analysis_s = time.perf_counter() - t_analysis
    summary = SweepSummary(
        experiment=experiment,
        parent_run=parent,
        tracking_uri=tracking_uri,
        runs=len(runs),
        skipped=len(runs) - len(pending),
        trained=logged,
        diverged=diverged,
        remaining=remaining,
        shards=len(shards),
        failed_shards=failed,
        analysis_units=units,
        analysis_waiting=waiting,
        failed_units=failed_units,
        report=report,
        wall_s=time.perf_counter() - t0,
        plan_s=t_plan - t0,
        logging_s=t_log,
        analysis_s=analysis_s,
        train_busy_s=busy,
        started_at=started_at,
        workers=workers,
    )
    from realspace.tracking.connection import open_store

    open_store(tracking_uri, experiment).finish_parent(
        parent,
        {
            "runs_total": len(runs),
            "runs_trained": logged,
            "runs_remaining": remaining,
            "runs_diverged": diverged,
            "shards_failed": len(failed),
            "analysis_units_failed": len(failed_units),
            "wall_seconds": summary.wall_s,
        },
        status="FAILED" if failed or failed_units else ("KILLED" if remaining else "FINISHED"),
    )
    return summary
