"""Tracking-store tasks: thin wrappers over realspace.tracking (they run in the driver)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE


@task(name="open-sweep", cache_policy=NO_CACHE, persist_result=False)
def open_sweep_task(tracking_uri: str, experiment: str, sweep_key: str, name: str) -> dict:
    """Find or create the sweep's parent run; clean children left unfinished by a crash.

    Returns {"parent": run id, "done": {run key: run id}} from one query of the sweep.
    """
    from realspace.tracking.connection import open_store

    store = open_store(tracking_uri, experiment)
    parent = store.parent_run(sweep_key, name)
    return {"parent": parent, "done": store.reconcile(parent).done}


# Logging retries with backoff (a tracking server that is away for a while); it is
# idempotent, so a retry never duplicates a run.
LOG_RETRIES = {"retries": 4, "retry_delay_seconds": [2, 8, 30, 60]}


@task(name="log-shard", cache_policy=NO_CACHE, persist_result=False, **LOG_RETRIES)
def log_shard_task(
    tracking_uri: str,
    experiment: str,
    parent: str,
    shard_id: str,
    keys: list[str],
    records: list,
    node: str | None = None,
) -> list[str]:
    """Log every record of a shard as a child run (FINISHED only once complete)."""
    from realspace.tasks.faults import fault_point
    from realspace.tracking.connection import open_store

    store = open_store(tracking_uri, experiment)
    return store.log_shard(
        parent, shard_id, keys, records, node=node, after_each=lambda: fault_point("logging")
    )
