"""The sweep flow: plan -> open the sweep's cell runs, skip what their tables hold ->
train shards on workers, which write their tables into the cell runs -> close each cell
once complete -> analysis stages (planned and resumed the same way) -> report -> summary.

No science here: every step calls realspace (planning, training, tracking).
"""

from __future__ import annotations

import itertools
import time

from prefect import flow
from prefect.futures import as_completed

from realspace.files import hopeless
from realspace.sweep.analysis import plan_analysis
from realspace.sweep.budget import shard_budget
from realspace.sweep.config import parse_config
from realspace.sweep.plan import cell_key, pack_shards, plan_runs, sweep_key
from realspace.sweep.progress import SweepProgress
from realspace.sweep.summary import Failure, SweepSummary
from realspace.tasks.analysis import (
    analysis_unit_task,
    load_end_points_task,
    log_unit_task,
    report_task,
)
from realspace.tasks.faults import fault_point
from realspace.tasks.tracking import close_cells_task, open_sweep_task
from realspace.tasks.train import shard_order, train_shard_task
from realspace.tracking.layout import cell_names
from realspace.tracking.tables import Piece


def in_order(submit, items, window: int, stop=lambda: False):
    """Yield (future, item) as they complete, ``submit(item)`` called in the items' order
    with at most ``window`` futures in flight. Ray starts queued tasks in no set order
    (a shard queued early can wait until the end), so shards are handed over only as
    slots free up, plus one queued so that a freed worker never waits on the driver;
    the next is submitted before a result is yielded for the caller to log. Once
    ``stop()`` is true nothing more is submitted; what is in flight is still yielded."""
    items, flying = iter(items), {}
    for item in itertools.islice(items, window):
        flying[submit(item)] = item
    while flying:
        fut = next(as_completed(list(flying)))
        done = flying.pop(fut)
        if not stop():
            for item in itertools.islice(items, 1):
                flying[submit(item)] = item
        yield fut, done


def _slots(cfg, workers: int, gpus_per_shard: float) -> int:
    """How many shards can train at once: Ray's CPUs (and GPUs) over a shard's request
    when Ray runs here (a local Ray or a cluster), else ``workers``."""
    import ray

    if not ray.is_initialized():
        return max(1, workers)
    have = ray.cluster_resources()
    slots = have.get("CPU", 1) / cfg.execution.cpus_per_worker
    if gpus_per_shard:
        slots = min(slots, have.get("GPU", 0) / gpus_per_shard)
    return max(1, int(slots))


def _submit(task, cfg, gpus_per_shard, *args):
    """Submit to the task runner, asking Ray for the configured resources."""
    if gpus_per_shard or cfg.execution.cpus_per_worker != 1:
        from prefect_ray.context import remote_options

        with remote_options(num_cpus=cfg.execution.cpus_per_worker, num_gpus=gpus_per_shard):
            return task.submit(*args)
    return task.submit(*args)


def run_analysis(cfg, runs, uri, experiment, parent, pieces, units_done, options, gpus, progress):
    """Compute and log every analysis unit not finished yet whose inputs are all trained
    (``pieces``: run key -> its piece, of every trained network; ``units_done``: the
    units FINISHED before). Returns (units logged, units waiting for runs, failed units)."""
    units = plan_analysis(cfg, runs)
    todo = [u for u in units if u.key not in units_done]
    ready = [u for u in todo if all(m in pieces for m in u.members)]
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
            members = list(u.members)
            params = (
                load_end_points_task(uri, experiment, [pieces[m] for m in members], members)
                if members
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
            log_unit_task(uri, experiment, parent, u, rows)
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
    members: dict[str, list[str]] = {}  # cell key -> its run keys
    specs = {}
    cell = {}  # run key -> cell key
    for r in runs:
        cell[r.key] = k = cell_key(r.spec)
        members.setdefault(k, []).append(r.key)
        specs.setdefault(k, r.spec)
    names = cell_names(specs)
    wanted = {k: (names[k], specs[k], len(keys)) for k, keys in members.items()}
    t = time.perf_counter()
    opened = open_sweep_task(tracking_uri, experiment, sweep_key(cfg), cfg.name, wanted)
    t_log = time.perf_counter() - t
    parent, cells, pieces = opened["parent"], opened["cells"], opened["pieces"]
    network_runs = cfg.tracking.wants_network_runs(len(runs))
    pending = [r for r in runs if r.key not in pieces]
    left = {k: sum(key not in pieces for key in keys) for k, keys in members.items()}
    shards = pack_shards(
        pending,
        shard_budget(cfg, workers),
        cfg.execution.max_shard_size,
        cfg.execution.dtype,
        workers=workers,
        per_worker=cfg.execution.shards_per_worker,
    )
    if max_shards is not None:
        shards = shards[:max_shards]
    options = {
        "device": cfg.execution.device,
        "dtype": cfg.execution.dtype,
        "threads": cfg.execution.cpus_per_worker,
        "tracking_uri": tracking_uri,
    }
    t_plan = time.perf_counter()

    def close(keys):
        """Close the cells of ``keys`` that are complete now (and not FINISHED)."""
        nonlocal t_log
        t = time.perf_counter()
        complete = [
            (cells[k], members[k])
            for k in sorted({cell[key] for key in keys})
            if left[k] == 0 and cells[k].status != "FINISHED"
        ]
        if complete:
            close_cells_task(tracking_uri, experiment, complete, network_runs)
        t_log += time.perf_counter() - t

    close(pieces)  # cells completed by an execution that died before closing them
    failed, logged, diverged, busy, t_write, written = [], 0, 0, 0.0, 0.0, 0
    full: list[str] = []  # a full disk's error, once seen: no more shards handed out
    writers: dict[str, list] = {}
    spans: list[tuple[float, float]] = []
    with SweepProgress(total=len(runs), done=len(runs) - len(pending), enabled=progress) as bar:

        def submit(shard):
            order = shard_order(shard.id, shard.runs, cell, cells)
            return _submit(train_shard_task, cfg, gpus_per_shard, order, options)

        window = _slots(cfg, workers, gpus_per_shard) + 1
        for fut, shard in in_order(submit, shards, window, stop=lambda: bool(full)):
            try:
                result = fut.result()
            except Exception as err:  # the shard failed every retry: report, go on
                failed.append(Failure(shard.id, repr(err), runs=len(shard.runs)))
                if hopeless(err):  # a full disk, refused credentials:
                    # every shard would train only to fail at its write: hand out no more
                    full.append(str(err))
                continue
            busy += result["seconds"]
            spans.append(result["span"])
            t_write += result["write_seconds"]
            written += result["bytes"]
            keys = result["keys"]
            w = writers.setdefault(result["writer"], [0, 0.0, 0])
            w[0], w[1], w[2] = (
                w[0] + len(keys),
                w[1] + result["write_seconds"],
                w[2] + result["bytes"],
            )
            for k, (name, ks) in result["pieces"].items():
                pieces.update(
                    dict.fromkeys(ks, Piece(cells[k].run_id, cells[k].artifact_uri, name))
                )
                left[k] -= len(ks)
            logged += len(keys)
            diverged += result["diverged"]
            bar.advance(len(keys))
            close(keys)

    remaining = len(pending) - logged
    t_analysis = time.perf_counter()
    units, waiting, failed_units, report = 0, 0, [], None
    if analysis and not full:
        units, waiting, failed_units = run_analysis(
            cfg,
            runs,
            tracking_uri,
            experiment,
            parent,
            pieces,
            opened["units"],
            options,
            gpus_per_shard,
            progress,
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
        experiment_id=opened["experiment_id"],
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
        write_s=t_write,
        written_bytes=written,
        writers=writers,
        train_span_s=max(e for _, e in spans) - min(s for s, _ in spans) if spans else 0.0,
        first_shard_at=min((s for s, _ in spans), default=0.0),
        analysis_s=analysis_s,
        train_busy_s=busy,
        started_at=started_at,
        workers=workers,
        stopped=full[0] if full else None,
    )
    from realspace.tracking.runs import open_store

    open_store(tracking_uri, experiment).finish_parent(
        parent,
        {
            "cells_total": len(members),
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
