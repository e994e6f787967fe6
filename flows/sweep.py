"""The sweep flow: plan -> skip what is done -> train shards on workers -> log -> summary.

No science here: every step calls realspace (planning, training, tracking).
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.futures import as_completed
from realspace.tasks.tracking import log_shard_task, open_sweep_task
from realspace.tasks.train import train_shard_task

from realspace.sweep.config import parse_config
from realspace.sweep.plan import pack_shards, plan_runs, sweep_key
from realspace.sweep.progress import SweepProgress


def shard_budget(cfg, workers: int) -> int:
    """Bytes one shard may use: the configured budget, else the device's share per worker."""

    from realspace.train import default_budget, pick_device

    if cfg.execution.memory_budget_mb:
        return int(cfg.execution.memory_budget_mb * 2**20)
    device = pick_device(None if cfg.execution.device == "auto" else cfg.execution.device)
    share = default_budget(device)
    return share if device.type == "cuda" else share // max(1, workers)


@flow(name="realspace-sweep", validate_parameters=False, log_prints=False)
def sweep_flow(
    config: dict,
    tracking_uri: str,
    max_shards: int | None = None,
    workers: int = 1,
    gpus_per_shard: float = 0.0,
    progress: bool = True,
) -> dict:
    """Run one sweep; returns counts and timings (see ``summary`` keys)."""
    t0 = time.perf_counter()
    started_at = time.time()
    cfg = parse_config(config)
    experiment = cfg.tracking.experiment or cfg.name
    runs = plan_runs(cfg)
    opened = open_sweep_task(tracking_uri, experiment, sweep_key(cfg), cfg.name)
    parent, done = opened["parent"], opened["done"]
    pending = [r for r in runs if r.key not in done]
    shards = pack_shards(pending, shard_budget(cfg, workers), cfg.execution.max_shard_size)
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
            submit = train_shard_task.submit
            if gpus_per_shard or cfg.execution.cpus_per_worker != 1:
                from prefect_ray.context import remote_options

                with remote_options(
                    num_cpus=cfg.execution.cpus_per_worker, num_gpus=gpus_per_shard
                ):
                    fut = submit([r.spec.to_dict() for r in shard.runs], options)
            else:
                fut = submit([r.spec.to_dict() for r in shard.runs], options)
            futures[fut] = shard
        for fut in as_completed(list(futures)):
            shard = futures[fut]
            try:
                result = fut.result()
                records = result["records"]
                busy += result["seconds"]
            except Exception as err:  # the shard failed every retry: report, go on
                failed.append({"shard": shard.id, "runs": len(shard.runs), "error": repr(err)})
                continue
            t = time.perf_counter()
            log_shard_task(
                tracking_uri, experiment, parent, shard.id, [r.key for r in shard.runs], records
            )
            t_log += time.perf_counter() - t
            logged += len(records)
            diverged += sum(r.status == "diverged" for r in records)
            bar.advance(len(records))

    remaining = len(pending) - logged
    summary = {
        "experiment": experiment,
        "parent_run": parent,
        "tracking_uri": tracking_uri,
        "runs": len(runs),
        "skipped": len(runs) - len(pending),
        "trained": logged,
        "diverged": diverged,
        "remaining": remaining,
        "shards": len(shards),
        "failed_shards": failed,
        "wall_s": time.perf_counter() - t0,
        "plan_s": t_plan - t0,
        "logging_s": t_log,
        "train_busy_s": busy,  # summed over shards, on the workers
        "started_at": started_at,
        "workers": workers,
    }
    from realspace.tracking.store import open_store

    open_store(tracking_uri, experiment).finish_parent(
        parent,
        {
            "runs_total": len(runs),
            "runs_trained": logged,
            "runs_remaining": remaining,
            "runs_diverged": diverged,
            "shards_failed": len(failed),
            "wall_seconds": summary["wall_s"],
        },
        status="FAILED" if failed else ("KILLED" if remaining else "FINISHED"),
    )
    return summary
