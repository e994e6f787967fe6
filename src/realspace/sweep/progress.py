"""Progress of a sweep on the terminal (rich): runs done / total, networks per second, ETA."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["SweepProgress"]


class _Rate(ProgressColumn):
    """Items (networks, analysis units) logged per second since the start (skipped excluded)."""

    def __init__(self, unit: str = "nets"):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        elapsed = task.finished_time or task.elapsed
        new = task.completed - task.fields.get("initial", 0)
        if not elapsed or new <= 0:
            return Text(f"- {self.unit}/s", style="cyan")
        return Text(f"{new / elapsed:.1f} {self.unit}/s", style="cyan")


class SweepProgress:
    """Context manager; ``advance(n)`` after n runs are logged. Silent when disabled."""

    def __init__(
        self,
        total: int,
        done: int = 0,
        enabled: bool = True,
        console: Console | None = None,
        label: str = "sweep",
        unit: str = "nets",
    ):
        self.enabled = enabled
        self.start = time.perf_counter()
        self._progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(unit),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
            disable=not enabled,
        )
        self._task = self._progress.add_task("runs", total=total, completed=done, initial=done)

    def __enter__(self):
        self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)
