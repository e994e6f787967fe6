"""The sweep as an application: what ``realspace sweep`` does, as two library calls.

    plan = plan_sweep("configs/default.yaml")        # validate, plan, estimate; no service
    summary = run_sweep(plan)                        # check services, train, log, analyse

``run_sweep`` checks the tracking store and the Ray address first (seconds, not the
minutes of a client's retries), then refuses a sweep over its memory, disk or run budget
unless ``allow_over_budget``, then opens the store (creating the sweep's experiment)
while the Prefect API (``PREFECT_API_URL`` or a temporary local server) and the task
runner (a local Ray, a Ray cluster, or in-process) start,
runs the sweep flow and returns its typed :class:`SweepSummary`. Nothing here prints:
the CLI formats. Every error raised before work starts is a :class:`NotStarted`.

One driver per sweep: with the store open, ``run_sweep`` takes the sweep's lease
(``tracking.lease``: on the parent run, with a heartbeat) before the flow starts, and
gives it back when the flow ends, however it ends. A second driver of the same sweep
raises :class:`AlreadyRunning` naming the first, or with ``wait`` waits for it (before
starting its Prefect API and Ray: a waiting driver holds nothing).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.spec import cell_of
from ..report.publish import default_report_dir
from ..sweep.budget import cuda_present, graph_kernel_problem, shard_budget, size_problems
from ..sweep.config import ConfigError, SweepConfig, as_config
from ..sweep.plan import Plan, PlanTooLarge, check_plan_size, pack_shards, plan_cells
from ..sweep.summary import SweepSummary
from ..tracking.secrets import hide_uri, mask

__all__ = [
    "AlreadyRunning",
    "LeaseLost",
    "NotStarted",
    "OverBudget",
    "SweepPlan",
    "plan_sweep",
    "check_services",
    "open_tracking_store",
    "run_sweep",
]


class NotStarted(Exception):
    """Nothing was started: bad input or an unreachable service (the message says which;
    credentials masked)."""


class OverBudget(NotStarted):
    """The sweep exceeds a memory, disk or stated run budget (``problems``, one line each)."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class AlreadyRunning(NotStarted):
    """Another driver runs this sweep now (``holder``: its host, pid, since, heartbeat)."""

    def __init__(self, message: str, holder):
        super().__init__(message)
        self.holder = holder


class LeaseLost(RuntimeError):
    """This driver's lease was taken over (it was cut off from the store for longer than
    the lease's expiry); it stopped. What it wrote is kept, and resumed by whoever runs
    the sweep now."""


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep, planned and sized, before any service is touched."""

    config: SweepConfig
    tracking_uri: str  # the real URI: print ``masked_uri`` instead
    ray_address: str | None  # None: a local Ray (or in-process)
    runs: Plan  # its cells; len(runs) networks, iterated one by one when asked
    workers: int
    estimate: dict  # runs, largest_network_bytes, store_bytes (free_disk_bytes when local)
    problems: list[str]  # budgets exceeded, one line each

    @property
    def masked_uri(self) -> str:
        return mask(self.tracking_uri)

    @property
    def cells(self) -> int:
        return len({cell_of(c.spec) for c in self.runs.cells})

    @property
    def shapes(self) -> int:
        return len(
            pack_shards(
                self.runs.segments(), 2**62, self.config.execution.max_shard_size, per_worker=0
            )
        )


def _config(config) -> SweepConfig:
    try:
        return as_config(config)
    except ConfigError as e:
        raise NotStarted(str(e)) from None


def plan_sweep(
    config, tracking_uri: str | None = None, ray_address: str | None = None
) -> SweepPlan:
    """Validate ``config`` (a path, dict or SweepConfig), plan its runs and size them.

    The tracking store is, in order: ``tracking_uri``, MLFLOW_TRACKING_URI, the config's
    ``tracking.uri``, ``sqlite:///./mlruns.db``; the Ray address: ``ray_address``, else
    the config's ``execution.ray_address``, else a local Ray.
    """
    from ..tracking.connection import resolve_tracking_uri

    cfg = _config(config)
    uri = resolve_tracking_uri(tracking_uri, cfg.tracking.uri)
    address = ray_address or cfg.execution.ray_address
    workers = cfg.execution.num_workers or os.cpu_count() or 1
    local = Path(uri.removeprefix("sqlite:///")).parent if uri.startswith("sqlite:///") else None
    try:  # a run the spec refuses (a target's parameters), a device that is not there
        runs = plan_cells(cfg)
        budget = shard_budget(cfg, workers)
    except (ValueError, RuntimeError) as e:
        raise NotStarted(mask(str(e))) from None
    if cfg.execution.kernel == "graph":  # the workers here compile: said now, not per shard
        device = cfg.execution.device
        problem = graph_kernel_problem(
            ("cuda" if cuda_present() else "cpu") if device == "auto" else device
        )
        if problem:
            raise NotStarted(problem)
    estimate, problems = size_problems(
        runs.cells, budget, cfg.execution.max_runs, local, cfg.execution.dtype
    )
    return SweepPlan(cfg, uri, address, runs, workers, estimate, problems)


def check_services(plan: SweepPlan) -> None:
    """Raise NotStarted within seconds when the tracking store or the Ray cluster cannot be
    reached (a client's own retries would take minutes)."""
    from ..flows.runtime import check_ray_address
    from ..tracking.connection import check_reachable

    try:
        check_reachable(plan.tracking_uri)
        if plan.ray_address:
            check_ray_address(plan.ray_address)
    except ConnectionError as e:
        raise NotStarted(mask(str(e))) from None


def open_tracking_store(plan: SweepPlan) -> None:
    """Open the store and create the sweep's experiment; NotStarted when that fails."""
    from ..tracking.store import open_store

    try:
        open_store(plan.tracking_uri, plan.config.tracking.experiment or plan.config.name)
    except Exception as e:  # noqa: BLE001 - any failure here is the user's to see, plainly
        raise NotStarted(f"tracking store {plan.masked_uri}: {mask(str(e))}") from None


def take_lease(plan: SweepPlan, wait: bool = False, on_wait=None):
    """The sweep's lease (``tracking.lease.Lease``, its heartbeat running), its parent run
    created if this is the sweep's first run. Raises AlreadyRunning when another driver
    holds it (with ``wait``: waits, calling ``on_wait(holder)`` for each new holder)."""
    import _thread

    from ..sweep.plan import sweep_key
    from ..tracking.lease import SweepBusy, acquire
    from ..tracking.store import open_store

    cfg = plan.config
    try:
        store = open_store(plan.tracking_uri, cfg.tracking.experiment or cfg.name)
        parent = store.find_or_create_parent(sweep_key(cfg), cfg.name)
        # a driver whose lease was taken over stops: its main thread is interrupted,
        # and run_sweep turns that into LeaseLost
        return acquire(
            store.client,
            parent,
            cfg.name,
            wait=wait,
            on_wait=on_wait,
            on_lost=lambda holder: _thread.interrupt_main(),
        )
    except SweepBusy as e:
        raise AlreadyRunning(str(e), e.holder) from None
    except NotStarted:
        raise
    except Exception as e:  # noqa: BLE001 - the store failed: the user's to see, plainly
        raise NotStarted(f"tracking store {plan.masked_uri}: {mask(str(e))}") from None


def _gpus_per_shard(cfg: SweepConfig) -> float:
    if cfg.execution.gpus_per_worker is not None:
        return cfg.execution.gpus_per_worker
    if cfg.execution.device == "cpu":
        return 0.0
    # the driver asks once whether workers should reserve a GPU each
    return 1.0 if cuda_present() else 0.0


def run_sweep(
    plan: SweepPlan,
    *,
    max_shards: int | None = None,
    in_process: bool = False,
    progress: bool = True,
    analysis: bool = True,
    report_dir: str | os.PathLike | None = None,
    allow_over_budget: bool = False,
    wait: bool = False,
    on_wait=None,
) -> SweepSummary:
    """Train, log and analyse the sweep of ``plan``; a rerun resumes it (runs and analysis
    units already FINISHED are skipped). Raises NotStarted (OverBudget for budgets,
    AlreadyRunning when another driver runs the sweep) before any work; after that,
    failures of shards and units are in the summary, not raised, except LeaseLost.

    ``wait``: wait for another driver of the sweep to end instead of raising
    AlreadyRunning (``on_wait(holder)`` is called when waiting starts)."""
    t0 = time.perf_counter()
    if analysis:  # the analysis stages are planned network by network
        try:
            check_plan_size(plan.config)
        except PlanTooLarge as e:
            raise NotStarted(f"{e}; or train it without the analysis (--no-analysis)") from None
    check_services(plan)
    if plan.problems and not allow_over_budget:
        raise OverBudget(plan.problems)
    held = []  # the lease once taken (here with --wait, else during start-up)
    if wait:  # before anything starts: a driver that waits holds no Ray and no server
        open_tracking_store(plan)
        held.append(take_lease(plan, wait=True, on_wait=on_wait))
    try:
        summary, startup = _start_and_run(
            plan, held, t0, in_process, max_shards, progress, analysis, report_dir
        )
    except KeyboardInterrupt:
        if held and held[0].lost is not None:
            from ..tracking.lease import describe

            raise LeaseLost(
                "this driver stopped: its lease on the sweep was taken over by another "
                f"driver ({describe(held[0].lost)}); nothing written is lost"
            ) from None
        raise
    finally:
        for lease in held:
            lease.release()  # on every way out; SIGKILL leaves it to expire
    return replace(summary, wall_s=time.perf_counter() - t0, startup_s=startup)


def _start_and_run(plan, held, t0, in_process, max_shards, progress, analysis, report_dir):
    """Start the Prefect API and the task runner, take the lease (unless ``held`` has
    it) and run the flow; (summary, start-up seconds). The lease is appended to ``held``
    as soon as it is taken, for the caller to release."""
    from ..flows.runtime import local_ray, quiet_environment, ray_task_runner, starting_prefect_api

    quiet_environment(local_ray=not (in_process or plan.ray_address))
    cfg = plan.config
    doc = cfg.model_dump(mode="json")
    if doc["tracking"]["uri"]:
        doc["tracking"]["uri"] = mask(doc["tracking"]["uri"])
    uri = hide_uri(plan.tracking_uri)  # flow parameters are stored by Prefect: no password

    # Start-up overlaps: the Prefect server starts in its own process while the store opens
    # and the lease is taken, then the flow's modules load and a local Ray starts and warms
    # its workers while the server finishes starting. (The environment a local Ray's workers
    # inherit, the API URL included, is complete first.) The lease comes before all but the
    # server: a driver refused it stops within seconds, having started nothing else.
    with starting_prefect_api() as api_ready:
        if not held:
            open_tracking_store(plan)  # only now: a refused sweep leaves no experiment behind
            held.append(take_lease(plan))  # AlreadyRunning
        from ..flows.sweep import sweep_flow

        runner = None
        if not in_process:
            runner = ray_task_runner(plan.ray_address, None if plan.ray_address else plan.workers)
        with local_ray(runner):
            api_ready()
            flow = sweep_flow if runner is None else sweep_flow.with_options(task_runner=runner)
            startup = time.perf_counter() - t0
            summary = flow(
                doc,
                uri,
                max_shards=max_shards,
                workers=plan.workers,
                gpus_per_shard=_gpus_per_shard(cfg),
                progress=progress,
                analysis=analysis,
                report_dir=str(report_dir or default_report_dir(cfg)),
            )
            held[0].release()  # now: a driver waiting for it starts while this one stops
    return summary, startup
