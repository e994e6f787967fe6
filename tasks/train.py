"""Training a shard on a worker: a thin wrapper over realspace.train."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE


# A shard that raises is retried twice with backoff (a run's result depends only on its
# spec, so a retry reproduces it); a worker process that dies is resubmitted by Ray itself.
@task(
    name="train-shard",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=2,
    retry_delay_seconds=[5, 30],
)
def train_shard_task(specs: list[dict], options: dict) -> dict:
    """Train, certify and record one shard: {"records": [RunRecord], "seconds": busy time,
    "node": the Ray node id or None}.

    ``options``: device, dtype ("float32" | "float64"), threads (torch intra-op threads).
    Resume is by run key in the tracking store, not by Prefect's cache (NO_CACHE).
    """
    import time

    import torch

    from realspace.train import RunSpec, TrainOptions, train_and_record

    if options.get("threads"):
        torch.set_num_threads(max(1, int(options["threads"])))
    device = None if options.get("device", "auto") == "auto" else options["device"]
    dtype = torch.float64 if options.get("dtype") == "float64" else torch.float32
    from realspace.tasks.faults import fault_point

    start = time.perf_counter()
    fault_point("train", detail=specs[0].get("parametrization", ""))
    records = train_and_record(
        [RunSpec.from_dict(s) for s in specs], TrainOptions(device=device, dtype=dtype)
    )
    return {"records": records, "seconds": time.perf_counter() - start, "node": _node_id()}


def _node_id() -> str | None:
    """The Ray node this task ran on (None outside Ray): recorded with every run."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - the node is provenance, never a reason to fail
        return None
