"""Analysis-stage tasks: thin wrappers over realspace.sweep.analysis and the tracking store."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE


@task(name="load-end-points", cache_policy=NO_CACHE, persist_result=False)
def load_end_points_task(
    tracking_uri: str, experiment: str, pieces: list, keys: list[str]
) -> list[dict]:
    """The raw end points of trained networks, by run key, from their pieces' arrays."""
    from realspace.tracking.store import open_store

    return open_store(tracking_uri, experiment).end_points(pieces, keys)


@task(name="analysis-unit", cache_policy=NO_CACHE, persist_result=False)
def analysis_unit_task(stage: str, inputs: dict, params: list[dict], options: dict) -> list[dict]:
    """Compute one analysis unit's rows (on a worker)."""
    import torch

    from realspace.sweep.analysis import compute_unit
    from realspace.train import TrainOptions

    if options.get("threads"):
        torch.set_num_threads(max(1, int(options["threads"])))
    device = None if options.get("device", "auto") == "auto" else options["device"]
    dtype = torch.float64 if options.get("dtype") == "float64" else torch.float32
    return compute_unit(stage, inputs, params, TrainOptions(device=device, dtype=dtype))


@task(
    name="log-analysis-unit",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=4,
    retry_delay_seconds=[2, 8, 30, 60],  # idempotent: see SweepStore.log_stage
)
def log_unit_task(tracking_uri: str, experiment: str, parent: str, unit, rows: list[dict]) -> str:
    """Log one unit as a child run (FINISHED only once its table is written)."""
    from realspace.tracking.store import open_store

    # specs and keys of the members: the members param names them already
    params = {k: v for k, v in unit.inputs.items() if k not in ("spec", "specs", "keys")}
    if unit.members:
        params["members"] = ",".join(unit.members)
    return open_store(tracking_uri, experiment).log_stage(
        parent, unit.key, unit.stage, unit.name, rows, params
    )


@task(name="report", cache_policy=NO_CACHE, persist_result=False)
def report_task(config: dict, tracking_uri: str, out_dir: str | None = None) -> str:
    """Build the sweep's report, write it to a folder and log it to the parent run."""
    from realspace.report.publish import publish_report

    return str(publish_report(config, tracking_uri, out_dir).folder)
