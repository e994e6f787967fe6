"""The process's open stores, and what opening a sweep for an execution returns.

Kept apart from ``runs`` (the SweepStore itself), so that a store's users name what they
get back without the store's internals.
"""

from __future__ import annotations

from dataclasses import dataclass

from .runs import SweepStore

__all__ = ["OpenedSweep", "open_store"]


@dataclass
class OpenedSweep:
    """A sweep opened for an execution: its parent run's id, its cell runs (cell key ->
    CellRun), the networks already in their tables (run key -> Piece), the analysis units
    FINISHED before (unit key -> run id) and the experiment's id."""

    parent: str
    cells: dict
    pieces: dict
    units: dict
    experiment_id: str | None

    def stored(self) -> dict[str, set[str]]:
        """cell key -> the run keys in that cell run's tables."""
        cell_of = {c.run_id: k for k, c in self.cells.items()}
        out: dict[str, set[str]] = {}
        for key, piece in self.pieces.items():
            out.setdefault(cell_of.get(piece.run_id), set()).add(key)
        return out


# One store per (URI, experiment) in a process: the sweep flow's tasks all run in the
# driver and would otherwise open a client (and look the experiment up) once per shard.
_OPEN: dict[tuple[str, str], SweepStore] = {}


def open_store(uri: str, experiment: str) -> SweepStore:
    """The process's SweepStore of ``experiment`` (created if missing) in the store at
    ``uri``. A masked URI (see ``secrets.hide_uri``) is resolved to the real one first."""
    from .secrets import reveal_uri

    uri = reveal_uri(uri)
    key = (uri, experiment)
    if key not in _OPEN:
        _OPEN[key] = SweepStore(uri, experiment)
    return _OPEN[key]
