"""The ``realspace`` command: sweep, submit, cancel, status, report, ui.

It parses arguments and formats results; the work is done by the library
(``realspace.app.service`` for a sweep, ``realspace.tracking`` for reading one back). Those
are imported inside the commands, so that ``realspace --help`` loads typer and rich alone.
What it prints is the business of ``console``. Just over 400 lines: six commands, each with
its options, its checks and its exit codes beside its body.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape  # text from users and errors (keys like targets[0]) is no markup
from rich.table import Table

from . import console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train shallow ReLU networks at scale; compare parameters and realizations.",
    # typer's tracebacks print local variables: a tracking URI with its password
    pretty_exceptions_enable=False,
)
out, err = console.out, console.err

ConfigArg = Annotated[Path, typer.Argument(help="YAML sweep file, e.g. configs/default.yaml")]
TrackingOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else the "
        "config's, else sqlite:///./mlruns.db)",
    ),
]
ReportDirOpt = Annotated[
    Path | None,
    typer.Option("--report-dir", help="folder of the report (default: reports/<sweep name>)"),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="HOST:PORT of a running Ray cluster (default: a local Ray)"),
]
AnalysisOpt = Annotated[
    bool,
    typer.Option(
        "--analysis/--no-analysis",
        help="after training, run the inverse-stability stages and write the report",
    ),
]
YesOpt = Annotated[
    bool,
    typer.Option(
        "--yes", help="run even when the sweep exceeds a memory, disk or stated run budget"
    ),
]


def _load(path: Path):
    from ..sweep.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as e:
        _fail(e)


def _uri(cli: str | None, cfg) -> str:
    from ..tracking.connection import resolve_tracking_uri

    return resolve_tracking_uri(cli, cfg.tracking.uri)


def _reachable(uri: str) -> None:
    """Exit 2 with a clear message when the tracking store cannot be reached (seconds, not
    the minutes MLflow's client would retry)."""
    from ..tracking.connection import check_reachable

    try:
        check_reachable(uri)
    except ConnectionError as e:
        _fail(e)


@app.command()
def sweep(
    config: ConfigArg,
    ray_address: RayAddressOpt = None,
    tracking_uri: TrackingOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="plan only; train nothing")] = False,
    max_shards: Annotated[
        int | None,
        typer.Option("--max-shards", min=1, help="train at most this many shards, then stop"),
    ] = None,
    in_process: Annotated[
        bool,
        typer.Option("--in-process", help="run shards in this process instead of on Ray workers"),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
    analysis: AnalysisOpt = True,
    report_dir: ReportDirOpt = None,
    yes: YesOpt = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="if another driver runs this sweep, wait for it to end, then resume "
            "(default: refuse, exit 3)",
        ),
    ] = False,
):
    """Run a sweep; a rerun resumes it (runs and analysis units already FINISHED are
    skipped). It ends with the report (see `realspace report`)."""
    from .service import AlreadyRunning, LeaseLost, NotStarted, OverBudget, plan_sweep, run_sweep

    try:
        plan = plan_sweep(config, tracking_uri, ray_address)
    except NotStarted as e:
        _fail(e)
    where = (
        "Ray at " + plan.ray_address
        if plan.ray_address
        else ("in-process" if in_process else "local Ray")
    )
    if dry_run:
        console.print_plan(plan, where)
        return
    err.print(
        f"sweep [bold]{plan.config.name}[/bold]: {len(plan.runs)} runs; "
        f"tracking {plan.masked_uri}; {where}",
        highlight=False,
    )
    try:
        summary = run_sweep(
            plan,
            max_shards=max_shards,
            in_process=in_process,
            progress=not quiet,
            analysis=analysis,
            report_dir=report_dir,
            allow_over_budget=yes,
            wait=wait,
            on_wait=console.waiting,
        )
    except AlreadyRunning as e:
        err.print(f"[red]refused:[/red] {escape(console.safe(e))}", highlight=False)
        raise typer.Exit(3) from None
    except LeaseLost as e:
        err.print(f"[red]stopped:[/red] {escape(console.safe(e))}", highlight=False)
        raise typer.Exit(1) from None
    except OverBudget as e:
        for p in e.problems:
            err.print(f"[red]refused:[/red] {escape(p)}", highlight=False)
        err.print("Nothing was started. Pass --yes to run it anyway.")
        raise typer.Exit(2) from None
    except NotStarted as e:
        _fail(e)
    console.summarize(summary, config)
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def submit(
    config: ConfigArg,
    ray_address: RayAddressOpt = None,
    tracking_uri: TrackingOpt = None,
    pool: Annotated[
        str, typer.Option("--pool", help="Prefect work pool whose worker runs the sweep")
    ] = "realspace",
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process", help="run shards in the flow run's process instead of on Ray workers"
        ),
    ] = False,
    analysis: AnalysisOpt = True,
    report_dir: ReportDirOpt = None,
    yes: YesOpt = False,
):
    """Submit a sweep to the Prefect server at PREFECT_API_URL: create or update its
    deployment on the work pool and a flow run of it, print the run's id, return at once.
    A worker of the pool runs it as `realspace sweep` would (resuming, one driver)."""
    from .service import NotStarted, OverBudget, plan_sweep
    from .submit import submit as submit_sweep

    try:
        plan = plan_sweep(config, tracking_uri, ray_address)
        run = submit_sweep(
            plan,
            pool=pool,
            in_process=in_process,
            analysis=analysis,
            report_dir=report_dir,
            allow_over_budget=yes,
        )
    except OverBudget as e:
        for p in e.problems:
            err.print(f"[red]refused:[/red] {escape(p)}", highlight=False)
        err.print("Nothing was submitted. Pass --yes to submit it anyway.")
        raise typer.Exit(2) from None
    except NotStarted as e:
        _fail(e)
    if plan.masked_uri != plan.tracking_uri:
        err.print(
            "[yellow]note:[/yellow] the tracking URI was submitted masked; the worker "
            "needs the real one in its MLFLOW_TRACKING_URI",
            highlight=False,
        )
    err.print(
        f"submitted sweep [bold]{plan.config.name}[/bold] ({len(plan.runs)} runs; tracking "
        f"{plan.masked_uri}) as deployment {run.deployment} on pool {pool}; "
        f"follow it with `realspace status {escape(str(config))}`, stop it with "
        f"`realspace cancel {run.id}`",
        highlight=False,
    )
    out.print(run.id, highlight=False)  # alone on stdout, for scripts


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(help="flow run id, as `realspace submit` printed")],
):
    """Cancel a submitted sweep's flow run through Prefect (Cancelling, then Cancelled
    once its worker has stopped it). What it wrote is kept; a later run resumes it."""
    from .service import NotStarted
    from .submit import cancel as cancel_run

    try:
        run = cancel_run(run_id)
    except NotStarted as e:
        _fail(e)
    if run.final:
        out.print(
            f"flow run {run.id} ({run.name}) is already {run.state}",
            highlight=False,
            soft_wrap=True,
        )
        return
    out.print(
        f"flow run {run.id} ({run.name}) was {run.state}; cancelling: its worker stops it",
        highlight=False,
        soft_wrap=True,
    )


def _fail(e: Exception):
    err.print(f"[red]error:[/red] {escape(console.safe(e))}", highlight=False)
    raise typer.Exit(2) from None


@app.command()
def status(config: ConfigArg, tracking_uri: TrackingOpt = None):
    """Done / pending networks per cell (target x parametrization x width)."""
    from ..core.spec import cell_of
    from ..tracking.reader import cell_status

    cfg = _load(config)
    uri = _uri(tracking_uri, cfg)
    _reachable(uri)
    try:
        found = cell_status(cfg, uri)
    except (ValueError, LookupError) as e:  # a run the spec refuses; a store of another layout
        _fail(e)
    table = Table(title=f"sweep {cfg.name} ({console.safe(uri)})")
    for col in ("target", "parametrization", "width", "done", "pending"):
        table.add_column(col, justify="right" if col in ("width", "done", "pending") else "left")
    cells: dict[tuple, Counter] = {}
    for planned, done in found:
        c = cells.setdefault(cell_of(planned.spec), Counter())
        c["done"] += done
        c["pending"] += len(planned) - done
    totals = Counter()
    for cell, c in cells.items():
        totals.update(c)
        table.add_row(cell[0], cell[1], str(cell[2]), str(c["done"]), str(c["pending"]))
    out.print(table)
    runs = totals["done"] + totals["pending"]
    out.print(f"total: {totals['done']} done, {totals['pending']} pending of {runs}")
    console.print_submitted(cfg, uri)


@app.command()
def report(
    config: ConfigArg,
    tracking_uri: TrackingOpt = None,
    out_dir: ReportDirOpt = None,
    log: Annotated[
        bool, typer.Option("--log/--no-log", help="attach the report to the sweep's parent run")
    ] = True,
):
    """Write report.md and report.html (statistics, figures, claim verdicts) of a sweep's
    finished runs and log them to its parent run."""
    from ..report.publish import default_report_dir, publish
    from ..tracking.reader import SweepReader

    cfg = _load(config)
    uri = _uri(tracking_uri, cfg)
    _reachable(uri)
    try:
        reader = SweepReader(cfg, uri)
    except LookupError as e:  # no store, or this sweep never ran in it
        _fail(e)
    rep = publish(reader, out_dir or default_report_dir(cfg), log=log)
    for v in rep.verdicts:
        out.print(f"claim {v['claim']}: [bold]{v['verdict']}[/bold]  {v['statement']}")
    out.print(f"report: {rep.folder / 'report.html'}", highlight=False)


@app.command()
def ui(
    config: Annotated[Path | None, typer.Argument(help="sweep file (for its tracking URI)")] = None,
    tracking_uri: TrackingOpt = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 5000,
    host: Annotated[str, typer.Option("--host", help="bind address")] = "127.0.0.1",
):
    """Start the MLflow UI against the sweep's tracking store and print its URL."""
    import subprocess

    from ..tracking.connection import artifact_root, connect, resolve_tracking_uri, store_exists
    from ..tracking.layout import experiment_url

    cfg = _load(config) if config else None
    uri = resolve_tracking_uri(tracking_uri, cfg.tracking.uri if cfg else None)
    page = base = f"http://{host}:{port}"
    if cfg is not None and store_exists(uri):  # the sweep's own page, once it has one
        _reachable(uri)  # a server that is away: said now, not after a client's retries
        exp = connect(uri, cfg.tracking.experiment or cfg.name, create=False).experiment_id
        page = experiment_url(base, exp) if exp is not None else base
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            f"[yellow]warning:[/yellow] binding {host}: the UI is reachable from other "
            "machines and has no authentication"
        )
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    if artifact_root(uri):  # a SQLite store: its artifacts beside it, where sweeps put them
        cmd += ["--default-artifact-root", artifact_root(uri)]
    out.print(f"MLflow UI for {console.safe(uri)}: {page}  (Ctrl-C to stop)", highlight=False)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "DO_NOT_TRACK": "true"}
    # the store by environment, not argv: any user of the host sees a command line (`ps`)
    env["MLFLOW_BACKEND_STORE_URI"] = uri
    # mlflow ui starts a uvicorn worker of its own: in a process group of their own, ended
    # as one on Ctrl-C, SIGTERM (a process manager, `timeout`) or SIGHUP (a closed
    # terminal), so no server outlives the command and holds the port
    server = subprocess.Popen(cmd, env=env, start_new_session=True)
    _end_group_on_signals(server)
    server.wait()


def _end_group_on_signals(proc) -> None:
    """On SIGINT, SIGTERM or SIGHUP: SIGTERM ``proc``'s process group, SIGKILL what is
    left of it after 5 s, and exit 0 (the user asked for the stop)."""
    import signal
    import time

    def group_alive() -> bool:
        proc.poll()  # reap the leader: a zombie still counts as a member of the group
        try:
            os.killpg(proc.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def stop(signum, frame):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 5
            while group_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not group_alive():
                break
        raise SystemExit(0)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)


def main() -> None:
    """The `realspace` command. An error no command expected (an MlflowException from a
    store, a Ray or Prefect failure) ends in one masked line and exit 1: a traceback
    would show the tracking URI's password, which MLflow puts in its error text.
    REALSPACE_TRACEBACK=1 prints the traceback too, masked; every log record (this
    process's, Prefect's, MLflow's) is masked as it is made."""
    from ..tracking.secrets import mask_log_records

    mask_log_records()
    try:
        app()
    except Exception as e:  # noqa: BLE001 - the last stop before the terminal
        if os.environ.get("REALSPACE_TRACEBACK") == "1":
            import traceback

            err.print(escape(console.safe(traceback.format_exc())), highlight=False)
        err.print(
            f"[red]error:[/red] {escape(console.safe(f'{type(e).__name__}: {e}'))}\n"
            "(unexpected; REALSPACE_TRACEBACK=1 shows where, credentials masked)",
            highlight=False,
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
