"""What a sweep's driver keeps while shards come back: pure bookkeeping, no orchestration.

- ``ShardOutcome``: what one trained shard reports (the worker wrote its tables);
- ``Cells``: the sweep's cells, the seeds each still lacks, and which are complete;
- ``Tally``: the running totals that become the ``SweepSummary``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from .plan import PlannedCell, Segment
from .summary import Failure, SweepSummary

__all__ = ["Analysed", "Cells", "ShardOutcome", "Tally"]


@dataclass(frozen=True)
class ShardOutcome:
    """One shard, trained and written. ``pieces``: cell key -> (piece name, its run keys);
    ``seconds``: the task's busy time, ``write_seconds`` of it writing ``bytes``;
    ``writer``: the process that wrote (host:pid); ``span``: (start, end) epoch seconds."""

    keys: list[str]
    pieces: dict[str, tuple[str, list[str]]]
    diverged: int
    seconds: float
    write_seconds: float
    bytes: int
    node: str | None
    writer: str
    span: tuple[float, float]


@dataclass
class Cells:
    """The cells of a plan: ``planned`` (cell key -> PlannedCell, in plan order) and
    ``left`` (cell key -> its runs not yet in its tables). Counts per cell: the driver of
    a million networks keeps a few numbers per cell, not a key per network."""

    planned: dict[str, PlannedCell]
    left: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, plan) -> Cells:
        """``plan``: a Plan (its ``cells``)."""
        planned = {c.key: c for c in plan.cells}
        return cls(planned, {k: len(c) for k, c in planned.items()})

    def wanted(self, naming) -> dict:
        """cell key -> (its run's name, its spec, its seeds), ``naming(specs)`` giving the
        names (``tracking.layout.cell_names``)."""
        names = naming({k: c.spec for k, c in self.planned.items()})
        return {k: (names[k], c.spec, len(c)) for k, c in self.planned.items()}

    def pending(self, stored: dict) -> list[Segment]:
        """The seeds of each cell whose runs are not in its tables, as segments in plan
        order, and ``left`` set to their counts. ``stored``: cell key -> the run keys in
        its tables; a cell with none is taken whole without hashing its keys (a key
        stored under a cell that the plan no longer asks for, from an earlier version of
        the config, counts for nothing)."""
        out = []
        for k, cell in self.planned.items():
            have = stored.get(k)
            if have:
                seeds = tuple(
                    s for s, key in zip(cell.seeds, cell.keys(), strict=True) if key not in have
                )
            else:
                seeds = cell.seeds
            self.left[k] = len(seeds)
            if len(seeds):
                out.append(Segment(cell, seeds))
        return out

    def trained(self, cell: str, keys) -> None:
        self.left[cell] -= len(keys)

    def complete(self, cells, finished) -> list[str]:
        """Of ``cells`` (cell keys), those with no run left, sorted, except those for
        which ``finished(cell)`` is true (already closed)."""
        return [k for k in sorted(set(cells)) if self.left[k] == 0 and not finished(k)]


@dataclass
class Tally:
    """Running totals of a sweep's training."""

    failed: list[Failure] = field(default_factory=list)
    trained: int = 0
    diverged: int = 0
    busy_s: float = 0.0
    write_s: float = 0.0
    written: int = 0
    writers: dict[str, list] = field(default_factory=dict)  # host:pid -> [runs, s, bytes]
    spans: list[tuple[float, float]] = field(default_factory=list)
    logging_s: float = 0.0  # the driver's own store calls
    stopped: str | None = None  # why no more shards were handed out

    def add(self, outcome: ShardOutcome) -> None:
        self.busy_s += outcome.seconds
        self.spans.append(outcome.span)
        self.write_s += outcome.write_seconds
        self.written += outcome.bytes
        w = self.writers.setdefault(outcome.writer, [0, 0.0, 0])
        w[0], w[1], w[2] = (
            w[0] + len(outcome.keys),
            w[1] + outcome.write_seconds,
            w[2] + outcome.bytes,
        )
        self.trained += len(outcome.keys)
        self.diverged += outcome.diverged

    def fail(self, shard_id: str, err: BaseException, runs: int, hopeless: bool) -> None:
        """A shard that failed every retry; ``hopeless`` (a full disk, refused
        credentials): every later shard would fail at its write, so stop handing out."""
        self.failed.append(Failure(shard_id, repr(err), runs=runs))
        if hopeless and self.stopped is None:
            self.stopped = str(err)

    @contextmanager
    def timed(self):
        """A context that adds its wall time to ``logging_s``."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self.logging_s += time.perf_counter() - t

    def summary(self, *, skipped: int, analysed: Analysed, **given) -> SweepSummary:
        """The execution's SweepSummary: these totals, ``analysed``, and ``given`` (what the
        flow knows: names, counts of the plan, timings)."""
        return SweepSummary(
            skipped=skipped,
            trained=self.trained,
            diverged=self.diverged,
            remaining=given["runs"] - skipped - self.trained,
            failed_shards=self.failed,
            analysis_units=analysed.units,
            analysis_waiting=analysed.waiting,
            failed_units=analysed.failed,
            report=analysed.report,
            logging_s=self.logging_s,
            write_s=self.write_s,
            written_bytes=self.written,
            writers=self.writers,
            train_span_s=self.train_span_s,
            first_shard_at=self.first_shard_at,
            train_busy_s=self.busy_s,
            stopped=self.stopped,
            **given,
        )

    @property
    def train_span_s(self) -> float:
        return max(e for _, e in self.spans) - min(s for s, _ in self.spans) if self.spans else 0.0

    @property
    def first_shard_at(self) -> float:
        return min((s for s, _ in self.spans), default=0.0)


@dataclass(frozen=True)
class Analysed:
    """What the analysis did: units logged, units waiting for runs, failed units (the report
    among them), and the report's folder."""

    units: int = 0
    waiting: int = 0
    failed: list[Failure] = field(default_factory=list)
    report: str | None = None
