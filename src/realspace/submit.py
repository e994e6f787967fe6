"""A sweep submitted to a Prefect server: a deployment on a work pool, run by a worker.

    flow_run = submit(plan, pool="realspace")   # returns at once; a worker runs the sweep
    cancel(flow_run.id)                          # Cancelling, then Cancelled
    submitted_runs(plan.config)                  # this sweep's flow runs and their states

Each sweep (by name) has one deployment, ``realspace-submitted-sweep/<name>``, whose
default parameters are the sweep as last submitted; ``submit`` creates or updates it and
then creates a flow run of it. A schedule added to that deployment (``prefect deployment
schedule create``) runs the same sweep again on its own, resuming it each time.

The deployment's entrypoint is this module (``realspace.submit.submitted_sweep``), so a
worker runs whatever realspace its Python has installed: on a head node, the project
source, installed in place. The flow run calls ``run_sweep`` as ``realspace sweep`` does:
the same lease (a second driver of the sweep, submitted or not, makes the run fail
without work), the same resume, the same release of the lease on every way out. A
cancellation reaches the run as SIGTERM from its worker, which Prefect raises as a
``TerminationSignal`` (a BaseException: no ``except Exception`` of the sweep swallows it);
``run_sweep`` releases the lease on the way out, and what was in flight is left as an
interruption leaves it (pieces written whole or not at all; open cells not FINISHED),
for the next run to resume.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from prefect import flow

from .service import NotStarted, OverBudget, SweepPlan, check_services, plan_sweep, run_sweep
from .sweep.plan import sweep_key
from .tracking.secrets import mask

__all__ = [
    "DEFAULT_POOL",
    "FLOW_NAME",
    "SubmittedRun",
    "cancel",
    "prefect_url",
    "submit",
    "submitted_runs",
    "submitted_sweep",
    "sweep_tag",
    "worker_uri",
]

FLOW_NAME = "realspace-submitted-sweep"
DEFAULT_POOL = "realspace"


def sweep_tag(cfg) -> str:
    """The tag of every flow run of this sweep (its science identity, as the store's
    parent run has it), by which ``realspace status`` finds them."""
    return f"realspace-sweep:{sweep_key(cfg)}"


def prefect_url() -> str:
    """PREFECT_API_URL, or NotStarted: a submitted sweep needs a server that outlives this
    command (a temporary one would end with it)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise NotStarted(
            "PREFECT_API_URL is not set: submitting needs a running Prefect server "
            "(`prefect server start`, then PREFECT_API_URL=http://HOST:4200/api); "
            "`realspace sweep` runs a sweep without one"
        )
    return url


def _client(timeout: float = 10.0):
    """A Prefect client that gives up within seconds when the server is away."""
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True, httpx_settings={"timeout": timeout})


def _check_prefect(url: str) -> None:
    import httpx

    try:
        ok = httpx.get(f"{url.rstrip('/')}/health", timeout=5).status_code == 200
    except httpx.HTTPError as e:
        raise NotStarted(f"no Prefect server at {mask(url)}: {e}") from None
    if not ok:
        raise NotStarted(f"the Prefect server at {mask(url)} is not healthy")


@dataclass(frozen=True)
class SubmittedRun:
    """A flow run of a submitted sweep, as the Prefect server has it."""

    id: str
    name: str
    state: str  # Prefect's state name: Scheduled, Pending, Running, Completed, Cancelled...
    final: bool
    created: str  # ISO time
    deployment: str  # realspace-submitted-sweep/<sweep name>
    pool: str | None


def worker_uri(submitted: str) -> str:
    """The tracking URI a worker uses for the ``submitted`` parameter: a URI with a
    password was masked before it became a parameter (Prefect stores those), and the
    worker's own MLFLOW_TRACKING_URI supplies it. NotStarted when it does not."""
    real = os.environ.get("MLFLOW_TRACKING_URI")
    if "***" not in submitted:
        return submitted
    if real and mask(real) == submitted:
        return real
    raise NotStarted(
        f"the tracking URI {submitted} was submitted masked: set MLFLOW_TRACKING_URI "
        "to the real one in the worker's environment"
    )


@flow(name=FLOW_NAME, validate_parameters=False, log_prints=False)
def submitted_sweep(
    config: dict,
    tracking_uri: str,
    ray_address: str | None = None,
    in_process: bool = False,
    analysis: bool = True,
    report_dir: str | None = None,
    allow_over_budget: bool = False,
) -> dict:
    """A sweep as ``realspace sweep`` runs it, in a worker's flow run. Fails (the flow
    run's state says why) when the sweep cannot start, when another driver holds it, or
    when shards or analysis units failed."""
    plan = plan_sweep(config, worker_uri(tracking_uri), ray_address)
    summary = run_sweep(
        plan,
        in_process=in_process,
        progress=False,
        analysis=analysis,
        report_dir=report_dir,
        allow_over_budget=allow_over_budget,
    )
    counts = {
        "runs": summary.runs,
        "trained": summary.trained,
        "skipped": summary.skipped,
        "remaining": summary.remaining,
        "failed_shards": len(summary.failed_shards),
        "failed_units": len(summary.failed_units),
        "parent_run": summary.parent_run,
    }
    if summary.failed:
        raise RuntimeError(f"sweep {plan.config.name}: failures: {counts}")
    return counts


def submit(
    plan: SweepPlan,
    pool: str = DEFAULT_POOL,
    in_process: bool = False,
    analysis: bool = True,
    report_dir: str | os.PathLike | None = None,
    allow_over_budget: bool = False,
) -> SubmittedRun:
    """Create or update the sweep's deployment on work pool ``pool`` and create a flow run
    of it; returns the run at once (a worker of the pool picks it up). Raises NotStarted
    before anything is created: no Prefect server, no such pool, an unreachable store or
    Ray address, a sweep over budget."""
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.deployments.runner import EntrypointType
    from prefect.exceptions import ObjectNotFound

    from .tracking.publish import default_report_dir

    url = prefect_url()
    _check_prefect(url)
    check_services(plan)
    if plan.problems and not allow_over_budget:
        raise OverBudget(plan.problems)
    cfg = plan.config
    with _client() as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            raise NotStarted(
                f"no work pool {pool!r} in the Prefect server at {mask(url)}: create it with "
                f"`prefect work-pool create {pool} --type process` and start a worker with "
                f"`prefect worker start --pool {pool}`"
            ) from None
    doc = cfg.model_dump(mode="json")
    if doc["tracking"]["uri"]:
        doc["tracking"]["uri"] = mask(doc["tracking"]["uri"])
    # paths absolute: the worker runs the flow from its own folder, not this one
    report = Path(report_dir or default_report_dir(cfg)).resolve()
    params = {
        "config": doc,
        "tracking_uri": mask(plan.tracking_uri),
        "ray_address": plan.ray_address,
        "in_process": in_process,
        "analysis": analysis,
        "report_dir": str(report),
        "allow_over_budget": allow_over_budget,
    }
    tag = sweep_tag(cfg)
    with _client() as client:
        try:
            existing = client.read_deployment_by_name(f"{FLOW_NAME}/{cfg.name}")
        except ObjectNotFound:
            existing = None
        if existing is None:
            deployment_id = submitted_sweep.to_deployment(
                name=cfg.name,
                parameters=params,  # the defaults of a scheduled run too
                tags=[tag],
                description=f"realspace sweep {cfg.name}",
                entrypoint_type=EntrypointType.MODULE_PATH,
                enforce_parameter_schema=False,
            ).apply(work_pool_name=pool)
        else:
            # only what a submission sets: a schedule added to the deployment stays (a
            # redeployment through to_deployment().apply() clears it)
            deployment_id = existing.id
            client.update_deployment(
                deployment_id,
                DeploymentUpdate(
                    parameters=params,
                    tags=[tag],
                    work_pool_name=pool,
                    entrypoint=f"{submitted_sweep.fn.__module__}.{submitted_sweep.fn.__name__}",
                ),
            )
        run = client.create_flow_run_from_deployment(deployment_id, tags=[tag])
    return _submitted(run, f"{FLOW_NAME}/{cfg.name}")


def _submitted(run, deployment: str) -> SubmittedRun:
    state = run.state
    return SubmittedRun(
        id=str(run.id),
        name=run.name,
        state=state.name if state else "Unknown",
        final=bool(state and state.is_final()),
        created=run.created.isoformat() if run.created else "",
        deployment=deployment,
        pool=run.work_pool_name,
    )


def _flow_run_id(run_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(run_id)
    except ValueError:
        raise NotStarted(f"{run_id!r} is not a flow run id (a UUID, as `submit` printed)") from None


def cancel(run_id: str) -> SubmittedRun:
    """Ask Prefect to cancel the submitted sweep's flow run ``run_id``: it goes to
    Cancelling, its worker stops it (SIGTERM) and marks it Cancelled. Returns the run as
    it was; one already over is returned unchanged. NotStarted when there is no server,
    no such run, or the run is not a submitted sweep."""
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Cancelling

    ident = _flow_run_id(run_id)
    url = prefect_url()
    _check_prefect(url)
    with _client() as client:
        try:
            run = client.read_flow_run(ident)
        except ObjectNotFound:
            raise NotStarted(f"no flow run {run_id} in the Prefect server at {mask(url)}") from None
        if not any(t.startswith("realspace-sweep:") for t in run.tags):
            raise NotStarted(f"flow run {run_id} is not a submitted realspace sweep")
        submitted = _submitted(run, "")
        if submitted.final:
            return submitted
        result = client.set_flow_run_state(ident, Cancelling(message="cancelled by realspace"))
        if result.status.value == "ABORT":
            reason = result.details.reason if result.details else "refused"
            raise NotStarted(f"Prefect refused to cancel flow run {run_id}: {reason}")
    return submitted


def submitted_runs(cfg, limit: int = 20) -> list[SubmittedRun] | None:
    """The sweep's submitted flow runs, newest first; None when PREFECT_API_URL is unset
    (nothing to ask). Raises ConnectionError when the server does not answer."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return None
    try:
        with _client(timeout=5) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[sweep_tag(cfg)])),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=limit,
            )
    except Exception as e:  # noqa: BLE001 - status shows the store's table regardless
        raise ConnectionError(f"Prefect server {mask(PREFECT_API_URL.value())}: {e}") from None
    return [_submitted(r, f"{FLOW_NAME}/{cfg.name}") for r in runs]
