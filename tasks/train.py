"""Training a shard on a worker, and writing its tables where it trained: a thin wrapper
over realspace.train and realspace.tracking.tables."""

from __future__ import annotations

import json
import os
import socket
import time

from prefect import task
from prefect.cache_policies import NO_CACHE

from realspace.sweep.tally import ShardOutcome

# Writing a piece retries with backoff (a tracking server that is away for a while)
# before the task fails; a piece is named by its networks, so a retry never duplicates.
WRITE_DELAYS = (2, 8, 30, 60)


def _retry_unless_hopeless(task, task_run, state) -> bool:
    """A full disk or refused credentials (``files.hopeless``) are not retried: the retry
    would train the whole shard again (hours on a large one) and fail at the same write;
    the driver stops handing out shards instead."""
    from realspace.files import hopeless

    return not hopeless(state.data)


# A shard that raises is retried twice with backoff (a run's result depends only on its
# spec, so a retry reproduces it); a worker process that dies is resubmitted by Ray itself.
@task(
    name="train-shard",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=_retry_unless_hopeless,
)
def train_shard_task(order: str, options: dict) -> ShardOutcome:
    """Train, certify and record one shard, and write its networks into their cell runs'
    tables (one piece per cell). ``order``: the shard as ``shard_order`` writes it;
    ``options``: device, dtype ("float32" | "float64"), kernel (TrainOptions.kernel),
    threads (torch intra-op threads),
    tracking_uri.

    Returns a ``ShardOutcome``. Resume is by the tables in the tracking store, not by
    Prefect's cache (NO_CACHE).
    """
    import torch

    from realspace.tasks.faults import fault_point
    from realspace.train import RunSpec, TrainOptions, train_and_record

    if options.get("threads"):
        torch.set_num_threads(max(1, int(options["threads"])))
    device = None if options.get("device", "auto") == "auto" else options["device"]
    dtype = torch.float64 if options.get("dtype") == "float64" else torch.float32

    start, started_at = time.perf_counter(), time.time()
    work = json.loads(order)
    shard_id, cells = work["shard"], work["cells"]
    keys = [key for key, _, _ in work["runs"]]
    specs = [RunSpec.from_dict({**cells[c]["spec"], "seed": seed}) for _, c, seed in work["runs"]]
    dest = {key: {"cell": c, **cells[c]} for key, c, _ in work["runs"]}
    fault_point("train", detail=specs[0].parametrization)
    kernel = options.get("kernel", "auto")
    records = train_and_record(specs, TrainOptions(device=device, dtype=dtype, kernel=kernel))
    fault_point("trained")
    node = _node_id()
    client = _client(options["tracking_uri"], cells)  # a process's first: imports MLflow
    t_write = time.perf_counter()
    written, pieces = _write_pieces(client, shard_id, keys, records, dest, node)
    end = time.perf_counter()
    return ShardOutcome(
        keys=list(keys),
        pieces=pieces,
        diverged=sum(r.status == "diverged" for r in records),
        seconds=end - start,
        write_seconds=end - t_write,
        bytes=written,
        node=node,
        writer=f"{socket.gethostname()}:{os.getpid()}",
        span=(started_at, time.time()),
    )


def shard_order(shard, cells: dict) -> str:
    """A shard's work as one JSON text for ``train_shard_task``: each cell it touches once
    (its spec, seed aside, and its run's id and artifact URI), then per run its key, cell
    and seed. ``shard``: a Shard (its segments' keys are hashed here, a shard at a time);
    ``cells``: cell key -> CellRun.

    One string rather than thousands of spec dicts: Prefect walks every argument of a
    task looking for futures to resolve, about 2 s for a shard of 4,096 spec dicts; a
    string it does not walk, and the text is a fiftieth of the size."""
    used, rows = {}, []
    for segment in shard.segments:
        c = segment.cell.key
        if c not in used:
            cell = cells[c]
            spec = {k: v for k, v in segment.cell.spec.to_dict().items() if k != "seed"}
            used[c] = {"spec": spec, "run_id": cell.run_id, "artifact_uri": cell.artifact_uri}
        keys = segment.cell.keys(segment.seeds)
        rows += [[key, c, int(seed)] for key, seed in zip(keys, segment.seeds, strict=True)]
    return json.dumps({"shard": shard.id, "cells": used, "runs": rows})


def _client(uri: str, cells: dict):
    """An MlflowClient when some cell's artifacts are remote (uploaded through it), else
    None: a local artifact store is written in place and the worker never imports MLflow."""
    from realspace.tracking.artifacts import local_dir
    from realspace.tracking.secrets import reveal_uri

    if all(local_dir(c["artifact_uri"]) is not None for c in cells.values()):
        return None
    from mlflow.tracking import MlflowClient

    return MlflowClient(reveal_uri(uri))


def _write_pieces(client, shard_id, keys, records, cells, node) -> tuple[int, dict]:
    """One piece per cell of the shard; a remote store's write is retried on failure
    (WRITE_DELAYS). Returns (bytes written, {cell key: [piece name, its run keys]})."""
    from realspace.files import hopeless
    from realspace.tasks.faults import fault_point
    from realspace.tracking.artifacts import local_dir
    from realspace.tracking.tables import piece_arrays, piece_name, piece_rows, put_piece

    by_cell: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        by_cell.setdefault(cells[key]["cell"], []).append(i)
    written, pieces = 0, {}
    for cell, idx in by_cell.items():
        ks, recs = [keys[i] for i in idx], [records[i] for i in idx]
        dest = cells[ks[0]]
        rows, arrays = piece_rows(ks, recs, shard_id, node), piece_arrays(ks, recs)
        name = piece_name(ks)
        # a local folder either takes the write or not (a full disk): no point waiting
        remote = local_dir(dest["artifact_uri"]) is None
        for delay in (*(WRITE_DELAYS if remote else ()), None):
            try:
                written += put_piece(
                    client, dest["run_id"], dest["artifact_uri"], name, rows, arrays
                )
                break
            except Exception as e:
                if delay is None or hopeless(e):  # refused credentials: refused again
                    raise
                time.sleep(delay)
        pieces[cell] = [name, ks]
        fault_point("logging")
    return written, pieces


def _node_id() -> str | None:
    """The Ray node this task ran on (None outside Ray): recorded with every run."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - the node is provenance, never a reason to fail
        return None
