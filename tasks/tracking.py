"""Tracking-store tasks that run in the driver: a thin wrapper over realspace.tracking.
The networks' tables are written by the workers (tasks/train.py), not here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE

if TYPE_CHECKING:
    from realspace.sweep.summary import SweepSummary
    from realspace.tracking.store import OpenedSweep

# Store calls retry with backoff (a tracking server that is away for a while); each is
# idempotent, so a retry never duplicates a run.
STORE_RETRIES = {"retries": 4, "retry_delay_seconds": [2, 8, 30, 60]}


@task(name="open-sweep", cache_policy=NO_CACHE, persist_result=False, **STORE_RETRIES)
def open_sweep_task(
    tracking_uri: str, experiment: str, sweep_key: str, name: str, cells: dict
) -> OpenedSweep:
    """Find or create the sweep's parent run and its cell runs (``cells``: cell key ->
    (name, spec, seeds)), delete analysis units left unfinished by a crash, and read
    which networks are in the cells' tables.

    Returns an ``OpenedSweep``.
    """
    from realspace.tracking.store import OpenedSweep, open_store

    store = open_store(tracking_uri, experiment)
    parent = store.parent_run(sweep_key, name)
    units = store.reconcile(parent).done
    opened = store.open_cells(parent, cells)
    pieces = {}
    for cell in opened.values():
        pieces.update(store.pieces(cell))
    return OpenedSweep(parent, opened, pieces, units, store.experiment_id)


@task(name="close-cells", cache_policy=NO_CACHE, persist_result=False, **STORE_RETRIES)
def close_cells_task(
    tracking_uri: str, experiment: str, cells: list[tuple], network_runs: bool
) -> list[dict]:
    """Close the cells of ``cells`` ((CellRun, PlannedCell) pairs) whose networks are all
    in their tables: metrics, networks.html, a run per network with ``network_runs``,
    then FINISHED. One task for all the cells a shard completes (a task run costs the
    Prefect API a few calls; a sweep has hundreds of cells). Returns their metrics."""
    from realspace.tracking.store import open_store

    store = open_store(tracking_uri, experiment)
    return [store.close_cell(cell, planned.keys(), network_runs) for cell, planned in cells]


@task(name="finish-sweep", cache_policy=NO_CACHE, persist_result=False, **STORE_RETRIES)
def finish_sweep_task(
    tracking_uri: str, experiment: str, parent: str, summary: SweepSummary, cells: int
) -> None:
    """Log the execution's totals on the sweep's parent run and end it with
    ``summary.parent_status``."""
    from realspace.tracking.store import open_store

    open_store(tracking_uri, experiment).finish_parent(
        parent, summary.parent_metrics(cells), status=summary.parent_status
    )
