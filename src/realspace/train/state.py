"""The state a shard's runs are in."""

from __future__ import annotations

import enum

__all__ = ["RunStatus"]


class RunStatus(enum.IntEnum):
    """Where a run stands; an int so that a shard keeps its runs' codes in one tensor."""

    RUNNING = 0
    CONVERGED = 1
    PLATEAU = 2
    BUDGET = 3
    DIVERGED = 4

    @property
    def label(self) -> str:
        """The record's status string: "converged", "plateau", ..."""
        return self.name.lower()
