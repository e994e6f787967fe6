"""The ranges of a run's numeric parameters, stated once.

``RUN_CONSTRAINTS`` maps a RunSpec field to the ``Interval`` its values must lie in (the
way scikit-learn states ``_parameter_constraints``). ``RunSpec`` checks its fields against
it, and the sweep config builds its pydantic fields from it (``Interval.field``), so a
range is written here and nowhere else. The upper bounds are what no sweep needs and what
would fail far from the config: an int64 column, a float overflow, a plan that fills the
driver's memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "Interval",
    "MAX_CLASSES",
    "MAX_COUNT",
    "MAX_INPUT_DIM",
    "MAX_RUNS",
    "MAX_SAMPLES",
    "MAX_SEED",
    "MAX_STEPS",
    "MAX_WIDTH",
    "RUN_CONSTRAINTS",
]

MAX_SEED = 2**63 - 1  # seeds and steps are stored in int64 columns
MAX_STEPS = 10**9
MAX_WIDTH = 2**20  # neurons of a student or a teacher
MAX_INPUT_DIM = 10_000
MAX_CLASSES = 10_000
MAX_SAMPLES = 2**31 - 1  # training points of one network (a grid's included)
MAX_COUNT = 10**6  # a count of the analysis (pairs, seeds, samples)
# networks one sweep may plan: a plan holds cells, not networks (``sweep.plan``), but
# the store keeps a row per network and a report reads them, cell by cell
MAX_RUNS = 10**7


@dataclass(frozen=True)
class Interval:
    """Values of ``kind`` (int or float) between ``low`` and ``high`` (None: unbounded),
    each end included or not by ``closed``: "both", "left", "right" or "neither". A float
    must be finite."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def __post_init__(self):
        if self.closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be both, left, right or neither, got {self.closed!r}")
        low_closed, high_closed = self.closed in ("both", "left"), self.closed in ("both", "right")
        object.__setattr__(self, "_low_closed", low_closed)
        object.__setattr__(self, "_high_closed", high_closed)
        # one chained comparison, built once: RunSpec checks every field of every planned
        # run. An unbounded end is a strict comparison with an infinity, so +-inf fail it
        # (a float must be finite), and NaN fails every comparison.
        lo = -math.inf if self.low is None else self.low
        hi = math.inf if self.high is None else self.high
        test = {
            (True, True): lambda v: lo <= v <= hi,
            (True, False): lambda v: lo <= v < hi,
            (False, True): lambda v: lo < v <= hi,
            (False, False): lambda v: lo < v < hi,
        }[low_closed and self.low is not None, high_closed and self.high is not None]
        object.__setattr__(self, "test", test)

    def contains(self, value) -> bool:
        return self.test(value)

    def _num(self, x) -> str:
        return str(int(x)) if self.kind is int else f"{x:g}"

    def describe(self) -> str:
        """What the messages say: ">= 0", "> 0", "in [0, 1)", "in (0, 1048576]"."""
        if self.high is None:
            return f"{'>=' if self._low_closed else '>'} {self._num(self.low)}"
        if self.low is None:
            return f"{'<=' if self._high_closed else '<'} {self._num(self.high)}"
        left, right = "[" if self._low_closed else "(", "]" if self._high_closed else ")"
        return f"in {left}{self._num(self.low)}, {self._num(self.high)}{right}"

    def field(self) -> dict:
        """The pydantic ``Field`` keywords that state this interval."""
        out: dict = {}
        if self.low is not None:
            out["ge" if self._low_closed else "gt"] = self.low
        if self.high is not None:
            out["le" if self._high_closed else "lt"] = self.high
        if self.kind is float:
            out["allow_inf_nan"] = False
        return out


def _positive(kind, high=None):
    return Interval(kind, 0, high, "right" if high is not None else "neither")


def _nonnegative(kind, high=None):
    return Interval(kind, 0, high, "both" if high is not None else "left")


RUN_CONSTRAINTS: dict[str, Interval] = {
    "d": _positive(int, MAX_INPUT_DIM),
    "width": _positive(int, MAX_WIDTH),
    "teacher_width": _positive(int, MAX_WIDTH),
    "n_samples": _positive(int, MAX_SAMPLES),
    "steps": _positive(int, MAX_STEPS),
    "seed": _nonnegative(int, MAX_SEED),
    "teacher_seed": _nonnegative(int, MAX_SEED),
    "n_classes": Interval(int, 2, MAX_CLASSES),
    "batch_size": _nonnegative(int, MAX_SAMPLES),
    "plateau_patience": _nonnegative(int, MAX_STEPS),
    "polish": _nonnegative(int, MAX_STEPS),
    "D": _positive(float),
    "lr": _positive(float),
    "init_scale": _positive(float),
    "weight_decay": _nonnegative(float),
    "noise": _nonnegative(float),
    "grad_tol": _nonnegative(float),
    "plateau_rel_tol": _nonnegative(float),
    "momentum": Interval(float, 0, 1, "left"),
    "beta1": Interval(float, 0, 1, "left"),
    "beta2": Interval(float, 0, 1, "left"),
}
