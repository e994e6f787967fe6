"""What one execution of a sweep did: the typed result the flow returns and the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Failure", "SweepSummary"]


@dataclass(frozen=True)
class Failure:
    """A shard or an analysis unit that failed every retry: the rest of the sweep went on."""

    name: str  # shard id or analysis unit name
    error: str  # repr of the last exception
    runs: int = 0  # networks in a failed shard (0 for an analysis unit)


@dataclass(frozen=True)
class SweepSummary:
    """Counts and timings of one execution (a rerun counts only what it did itself)."""

    experiment: str
    parent_run: str
    experiment_id: str | None  # the experiment's MLflow id: links into the UI
    tracking_uri: str  # masked: never a password
    runs: int  # planned
    skipped: int  # already in the store before this execution
    trained: int  # trained and written now
    diverged: int
    remaining: int  # planned runs still not in the store
    shards: int
    failed_shards: list[Failure] = field(default_factory=list)
    analysis_units: int = 0  # logged now
    analysis_waiting: int = 0  # waiting for runs that are not trained yet
    failed_units: list[Failure] = field(default_factory=list)
    report: str | None = None  # folder of the report, when one was written
    wall_s: float = 0.0  # from the start of the call that ran the sweep
    startup_s: float = 0.0  # before the flow started (checks, Prefect API, task runner)
    plan_s: float = 0.0
    logging_s: float = 0.0  # the driver's tracking calls (opening, closing cells)
    write_s: float = 0.0  # the workers' writes of their tables, summed over shards
    written_bytes: int = 0  # of those tables and arrays
    # per writing process (host:pid): [networks, seconds writing, bytes]
    writers: dict[str, list] = field(default_factory=dict)
    analysis_s: float = 0.0
    train_busy_s: float = 0.0  # summed over shards, on the workers (writes included)
    train_span_s: float = 0.0  # from the first shard's start to the last one's end
    first_shard_at: float = 0.0  # epoch seconds a worker started the first shard
    started_at: float = 0.0  # epoch seconds
    workers: int = 1
    # why the driver stopped handing out shards early (a full disk), with what to do
    stopped: str | None = None

    @property
    def complete(self) -> bool:
        return self.remaining == 0 and not self.failed_shards and not self.failed_units

    @property
    def failed(self) -> bool:
        return bool(self.failed_shards or self.failed_units)

    @property
    def parent_status(self) -> str:
        """The sweep's parent run ends FAILED when a shard or unit failed, KILLED when runs
        are left (stopped early, ``--max-shards``), else FINISHED."""
        return "FAILED" if self.failed else ("KILLED" if self.remaining else "FINISHED")

    def parent_metrics(self, cells: int) -> dict:
        """The totals logged on the sweep's parent run."""
        return {
            "cells_total": cells,
            "runs_total": self.runs,
            "runs_trained": self.trained,
            "runs_remaining": self.remaining,
            "runs_diverged": self.diverged,
            "shards_failed": len(self.failed_shards),
            "analysis_units_failed": len(self.failed_units),
            "wall_seconds": self.wall_s,
        }
