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
from realspace.sweep.plan import check_plan_size, pack_shards, plan_cells, sweep_key
from realspace.sweep.progress import SweepProgress
from realspace.sweep.summary import Failure, SweepSummary
from realspace.sweep.tally import Analysed, Cells, Tally
from realspace.tasks.analysis import (
    analysis_unit_task,
    load_end_points_task,
    log_unit_task,
    report_task,
)
from realspace.tasks.faults import fault_point
from realspace.tasks.tracking import close_cells_task, finish_sweep_task, open_sweep_task
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


def run_analysis(cfg, plan, uri, experiment, parent, pieces, units_done, options, gpus, progress):
    """Compute and log every analysis unit not finished yet whose inputs are all trained
    (``pieces``: run key -> its piece, of every trained network; ``units_done``: the
    units FINISHED before). Returns (units logged, units waiting for runs, failed units)."""
    units = plan_analysis(cfg, plan)
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


def _worker_options(cfg, tracking_uri: str) -> dict:
    """What every shard's and unit's task is told besides its work."""
    return {
        "device": cfg.execution.device,
        "dtype": cfg.execution.dtype,
        "kernel": cfg.execution.kernel,
        "threads": cfg.execution.cpus_per_worker,
        "tracking_uri": tracking_uri,
    }


def _plan_shards(cfg, pending, workers: int, max_shards: int | None):
    """``pending``: the segments (seeds of a cell) still to train."""
    shards = pack_shards(
        pending,
        shard_budget(cfg, workers),
        cfg.execution.max_shard_size,
        cfg.execution.dtype,
        workers=workers,
        per_worker=cfg.execution.shards_per_worker,
    )
    return shards if max_shards is None else shards[:max_shards]


def train_shards(cfg, shards, cells: Cells, opened, tally: Tally, close, options, workers, gpus):
    """Train ``shards`` a window at a time; as each comes back, count it, note its pieces
    and close the cells it completed. A shard that failed every retry is reported and the
    sweep goes on, unless its error is hopeless (a full disk, refused credentials)."""

    def submit(shard):
        order = shard_order(shard, opened.cells)
        return _submit(train_shard_task, cfg, gpus, order, options)

    window = _slots(cfg, workers, gpus) + 1
    for fut, shard in in_order(submit, shards, window, stop=lambda: tally.stopped is not None):
        try:
            outcome = fut.result()
        except Exception as err:  # the shard failed every retry: report, go on
            tally.fail(shard.id, err, len(shard), hopeless(err))
            continue
        tally.add(outcome)
        for k, (name, ks) in outcome.pieces.items():
            cell = opened.cells[k]
            opened.pieces.update(dict.fromkeys(ks, Piece(cell.run_id, cell.artifact_uri, name)))
            cells.trained(k, ks)
        yield outcome
        close(outcome.pieces)


def analyse(cfg, config, plan, uri, experiment, opened, options, gpus, progress, report_dir):
    """The analysis units whose inputs are trained, then the report (whose failure never
    costs a sweep its results)."""
    units, waiting, failed = run_analysis(
        cfg, plan, uri, experiment, opened.parent, opened.pieces, opened.units, options, gpus,
        progress,
    )  # fmt: skip
    report = None
    if cfg.analysis.report:
        try:
            report = report_task(config, uri, report_dir)
        except Exception as err:
            failed.append(Failure("report", repr(err)))
    return Analysed(units, waiting, failed, report)


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
    t0, started_at = time.perf_counter(), time.time()
    cfg = parse_config(config)
    experiment = cfg.tracking.experiment or cfg.name
    plan = plan_cells(cfg)
    if analysis:  # its stages are planned network by network: refused before any work
        check_plan_size(cfg)
    fault_point("plan")
    cells, tally = Cells.of(plan), Tally()
    with tally.timed():
        opened = open_sweep_task(
            tracking_uri, experiment, sweep_key(cfg), cfg.name, cells.wanted(cell_names)
        )
    pending = cells.pending(opened.stored())
    shards = _plan_shards(cfg, pending, workers, max_shards)
    runs, skipped = len(plan), len(plan) - sum(len(s) for s in pending)
    options = _worker_options(cfg, tracking_uri)
    t_plan = time.perf_counter()
    network_runs = cfg.tracking.wants_network_runs(runs)

    def close(touched):
        """Close the cells of ``touched`` (cell keys) that are complete now (and not
        FINISHED)."""
        done = cells.complete(touched, finished=lambda k: opened.cells[k].status == "FINISHED")
        with tally.timed():
            if done:
                pairs = [(opened.cells[k], cells.planned[k]) for k in done]
                close_cells_task(tracking_uri, experiment, pairs, network_runs)

    close(cells.planned)  # cells completed by an execution that died before closing them
    with SweepProgress(total=runs, done=skipped, enabled=progress) as bar:
        for outcome in train_shards(
            cfg, shards, cells, opened, tally, close, options, workers, gpus_per_shard
        ):
            bar.advance(len(outcome.keys))

    t_analysis = time.perf_counter()
    analysed = Analysed()
    if analysis and tally.stopped is None:
        analysed = analyse(cfg, config, plan, tracking_uri, experiment, opened, options,
                           gpus_per_shard, progress, report_dir)  # fmt: skip
    summary = tally.summary(
        experiment=experiment,
        parent_run=opened.parent,
        experiment_id=opened.experiment_id,
        tracking_uri=tracking_uri,
        runs=runs,
        skipped=skipped,
        shards=len(shards),
        analysed=analysed,
        wall_s=time.perf_counter() - t0,
        plan_s=t_plan - t0,
        analysis_s=time.perf_counter() - t_analysis,
        started_at=started_at,
        workers=workers,
    )
    finish_sweep_task(tracking_uri, experiment, opened.parent, summary, len(cells.planned))
    return summary
