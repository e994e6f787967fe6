"""What the command line prints: plans, summaries, submitted runs, every text through
``safe`` (credentials masked) and rich's ``escape`` (text from users is no markup)."""

from __future__ import annotations

import os

from rich.console import Console
from rich.markup import escape

__all__ = ["err", "look", "out", "print_plan", "print_submitted", "safe", "summarize", "waiting"]

out = Console()
err = Console(stderr=True, soft_wrap=True)  # error lines whole: they name URIs and paths


def safe(text) -> str:
    """What may be printed: credentials masked (see realspace.tracking.secrets)."""
    from ..tracking.secrets import mask

    return mask(str(text))


def waiting(holder) -> None:
    from ..tracking.lease import describe

    err.print(
        f"waiting: another driver runs this sweep ({escape(describe(holder))})",
        highlight=False,
    )


def print_plan(plan, where: str) -> None:
    est = plan.estimate
    out.print(
        f"sweep [bold]{plan.config.name}[/bold]: {len(plan.runs)} runs in {plan.cells} cells, "
        f"{plan.shapes} shapes; tracking {plan.masked_uri}; {where}. Nothing trained.\n"
        f"estimate: largest network {est['largest_network_bytes'] / 2**20:.1f} MiB "
        f"to train, tracking store +{est['store_bytes'] / 2**20:.1f} MiB",
        highlight=False,
    )
    for p in plan.problems:
        err.print(f"[yellow]warning:[/yellow] {escape(p)}", highlight=False)


def look(s, config) -> str:
    """Where to see the sweep: a tracking server serves its own UI, so the parent run's
    page there (in MLflow's machine-learning view, without credentials); any other store
    through `realspace ui`."""
    from ..tracking.layout import run_url, ui_base

    base = ui_base(s.tracking_uri)
    if base and s.experiment_id:
        return run_url(base, s.experiment_id, s.parent_run)
    return f"realspace ui {escape(str(config))}  (the experiment '{s.experiment}')"


def summarize(s, config) -> None:
    for f in s.failed_shards:
        err.print(
            f"[red]shard {escape(f.name)} failed[/red] ({f.runs} runs): {escape(safe(f.error))}",
            highlight=False,
        )
    for f in s.failed_units:
        err.print(
            f"[red]analysis {escape(f.name)} failed[/red]: {escape(safe(f.error))}",
            highlight=False,
        )
    if s.stopped:
        err.print(
            f"[red]stopped:[/red] no more shards were started: {escape(safe(s.stopped))}",
            highlight=False,
        )
    state = "complete" if s.remaining == 0 else f"{s.remaining} runs remaining"
    out.print(
        f"[bold]done[/bold]: {s.trained} trained, {s.skipped} already finished, "
        f"{s.diverged} diverged, {len(s.failed_shards)} shards failed; {state}. "
        f"Wall {s.wall_s:.1f} s (start-up {s.startup_s:.1f} s, logging {s.logging_s:.1f} s).\n"
        f"Experiment '{s.experiment}', parent run {s.parent_run} in "
        f"{safe(s.tracking_uri)}\n"
        f"Look: {look(s, config)}",
        highlight=False,
    )
    if s.report:
        out.print(
            f"Analysis: {s.analysis_units} units logged ({s.analysis_s:.1f} s); report "
            f"{s.report}/report.html (also on the parent run under report/)",
            highlight=False,
        )


def print_submitted(cfg, uri: str) -> None:
    """The sweep's submitted flow runs, when PREFECT_API_URL names a server (one request;
    nothing printed without one, a warning when it does not answer). Runs whose driver
    died are marked Crashed on the way (see ``submit.dead_driver``)."""
    if not os.environ.get("PREFECT_API_URL"):
        return  # before importing Prefect: status without a server stays light
    from .submit import submitted_runs

    try:
        runs = submitted_runs(cfg, tracking_uri=uri)
    except ConnectionError as e:
        err.print(f"[yellow]warning:[/yellow] {escape(safe(e))}", highlight=False)
        return
    if not runs:
        return
    # lines, not a table: a table narrower than an id would cut the id `cancel` needs
    out.print(f"submitted flow runs of {cfg.name} (newest first):", highlight=False)
    for r in runs:
        out.print(
            f"  {r.id} {r.state} {r.name} created {r.created[:19]}",
            highlight=False,
            soft_wrap=True,  # an id cut by the terminal's width is no id
        )
