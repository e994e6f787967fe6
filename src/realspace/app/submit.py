"""A sweep submitted to a Prefect server: a deployment on a work pool, run by a worker.

    flow_run = submit(plan, pool="realspace")   # returns at once; a worker runs the sweep
    cancel(flow_run.id)                          # Cancelling, then Cancelled
    submitted_runs(plan.config)                  # this sweep's flow runs and their states

Each sweep (by name) has one deployment, ``realspace-submitted-sweep/<name>``, whose
default parameters are the sweep as last submitted; ``submit`` creates or updates it and
then creates a flow run of it. A schedule added to that deployment (``prefect deployment
schedule create``) runs the same sweep again on its own, resuming it each time.

The deployment's entrypoint is this module (``realspace.app.submit.submitted_sweep``), so a
worker runs whatever realspace its Python has installed: on a head node, the project
source, installed in place. The flow run calls ``run_sweep`` as ``realspace sweep`` does:
the same lease (a second driver of the sweep, submitted or not, makes the run fail
without work), the same resume, the same release of the lease on every way out. A
cancellation reaches the run as SIGTERM from its worker, which Prefect raises as a
``TerminationSignal`` (a BaseException: no ``except Exception`` of the sweep swallows it);
``run_sweep`` releases the lease on the way out, and what was in flight is left as an
interruption leaves it (pieces written whole or not at all; open cells not FINISHED),
for the next run to resume.

A flow run whose worker died with it (SIGKILL, an OOM kill, a lost host) is never
reported over to Prefect: it would stay Running there forever. The sweep's lease tells
what Prefect cannot: ``submitted_runs`` (and so ``realspace status``) and ``submit`` mark
such a run Crashed when ``dead_driver`` says its driver is gone.

About 430 lines: submission, cancellation, the listing of a sweep's flow runs and the crash
check of one deployment, each a few Prefect client calls with the errors they can raise.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prefect import flow

from ..sweep.plan import sweep_key
from ..tracking.lease import EXPIRY_S, Holder, LeaseState, lease_state, pid_alive
from ..tracking.secrets import mask
from .service import NotStarted, OverBudget, SweepPlan, check_services, plan_sweep, run_sweep

__all__ = [
    "DEFAULT_POOL",
    "FLOW_NAME",
    "SubmittedRun",
    "cancel",
    "dead_driver",
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


ACTIVE = ("Pending", "Running")  # the states of a flow run whose driver should be alive
CLOCK_SKEW_S = 5.0  # the Prefect server's clock against a driver's (NTP: far less)


def dead_driver(
    state: str,
    started: float | None,
    holder: Holder | None,
    now: float,
    host: str | None = None,
    alive: Callable[[int, str], bool] = pid_alive,
    expiry: float = EXPIRY_S,
) -> str | None:
    """Why a submitted flow run in Prefect ``state``, started at ``started`` (seconds since
    the epoch; Pending: when it became Pending), has a dead driver, given the sweep's
    lease as last taken (``holder``); None when it may be alive.

    Its driver takes the lease within seconds of starting and holds it (heartbeat) until
    it ends. So a Pending or Running run older than the lease's expiry is dead when the
    lease is free: released, expired, or its process gone (``lease_state``), whether the
    run took it (a generation taken at or after its start: its own) or never did (only
    an older generation). A run younger than the expiry is left alone: it may not have
    taken the lease yet. A live lease may be another run's, this one starting or dead:
    nothing can be told until it frees. No lease at all (``holder`` None) is no evidence
    either: the sweep's store may be another than the one read.
    """
    if state not in ACTIVE or started is None or now - started <= expiry or holder is None:
        return None
    lease = lease_state(holder, now, host, alive, expiry)
    if lease is LeaseState.LIVE:
        return None
    how = {
        LeaseState.RELEASED: "was released",
        LeaseState.EXPIRED: f"has had no heartbeat for over {expiry:.0f} s",
        LeaseState.DEAD: "is held by a process that is gone",
    }[lease]
    last = f"host {holder.host}, pid {holder.pid}"
    if holder.since >= started - CLOCK_SKEW_S:
        return (
            f"the sweep's driver is gone: its lease expired (generation {holder.generation} "
            f"{how}; last holder {last}); submit the sweep again to resume it"
        )
    return (
        f"the sweep's driver is gone: it did not take the sweep's lease in "
        f"{now - started:.0f} s, and the lease expired (generation {holder.generation} "
        f"{how}; last holder {last}); submit the sweep again to resume it"
    )


def _started(run) -> float | None:
    """When the flow run started (Pending: when it became Pending)."""
    if run.start_time is not None:
        return run.start_time.timestamp()
    if run.state is not None and run.state.name == "Pending" and run.state.timestamp:
        return run.state.timestamp.timestamp()
    return None


def _read_lease(cfg, tracking_uri: str) -> Holder | None:
    """The sweep's lease as last taken in the store at ``tracking_uri`` (None: no parent
    run there, or never taken). Never creates anything."""
    from ..sweep.plan import sweep_key
    from ..tracking.lease import read_holder
    from ..tracking.runs import SweepStore
    from ..tracking.secrets import reveal_uri

    store = SweepStore(reveal_uri(tracking_uri), cfg.tracking.experiment or cfg.name, create=False)
    parent = store.find_parent(sweep_key(cfg))
    return None if parent is None else read_holder(store.client, parent)


def _reap(client, cfg, tracking_uri: str | None, runs: list) -> list:
    """Mark Crashed the flow runs among ``runs`` (Prefect's) whose driver is gone
    (``dead_driver``); returns ``runs`` with those states updated. Only runs submitted to
    the store at ``tracking_uri`` are judged (the lease read is that store's); a store that
    cannot be read judges none."""
    import logging

    from prefect.states import Crashed

    if tracking_uri is None:
        return runs
    now = time.time()
    judged = [
        r
        for r in runs
        if r.state is not None
        and r.state.name in ACTIVE
        and (_started(r) or now) < now - EXPIRY_S
        and r.parameters.get("tracking_uri") == mask(tracking_uri)
    ]
    if not judged:
        return runs  # the common case: no store read at all
    try:
        holder = _read_lease(cfg, tracking_uri)
    except Exception as e:  # noqa: BLE001 - no lease seen: nothing judged dead
        logging.getLogger(__name__).warning("could not read the sweep's lease: %s", e)
        return runs
    crashed = {}
    for r in judged:
        why = dead_driver(r.state.name, _started(r), holder, now)
        if why is not None:
            client.set_flow_run_state(r.id, Crashed(message=why), force=True)
            crashed[r.id] = client.read_flow_run(r.id)
    return [crashed.get(r.id, r) for r in runs]


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

    from ..report.publish import default_report_dir

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
        # the sweep's runs whose driver died are Crashed before the new one starts (its
        # lease taken, they could no longer be told from a live run's rival)
        _reap(client, cfg, plan.tracking_uri, _read_runs(client, cfg, 20))
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


def _read_runs(client, cfg, limit: int) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort

    return client.read_flow_runs(
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[sweep_tag(cfg)])),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=limit,
    )


def submitted_runs(
    cfg, limit: int = 20, tracking_uri: str | None = None
) -> list[SubmittedRun] | None:
    """The sweep's submitted flow runs, newest first; None when PREFECT_API_URL is unset
    (nothing to ask). With ``tracking_uri`` (the sweep's store), runs whose driver died
    are marked Crashed first (``dead_driver``). Raises ConnectionError when the server
    does not answer."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return None
    try:
        with _client(timeout=5) as client:
            runs = _reap(client, cfg, tracking_uri, _read_runs(client, cfg, limit))
    except Exception as e:  # noqa: BLE001 - status shows the store's table regardless
        raise ConnectionError(f"Prefect server {mask(PREFECT_API_URL.value())}: {e}") from None
    return [_submitted(r, f"{FLOW_NAME}/{cfg.name}") for r in runs]
