"""The optimum references of a sweep's runs: which program, if any, certifies each RunSpec.

One cache holds every solved program of a process (``PROGRAMS``, keyed by the data, the
loss, lam, the parametrization and the sample count): a report asks for a cell's lower
and upper bounds in turn, and runs of one data set differ only in width and seed.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from ..core.problem import make_data
from .binary import convex_optimum, free_part_separates
from .multiclass import MulticlassBounds, free_part_recedes, multiclass_bounds
from .patterns import EXACT_2D_MAX_POINTS

__all__ = [
    "PROGRAMS",
    "ProgramCache",
    "multiclass_references",
    "reference_optima",
    "separable_upper_bounds",
]


class ProgramCache:
    """Solved programs by key, the oldest dropped beyond ``size`` (a solution holds its
    network: a few kB; a sweep of many data sets must not keep them all)."""

    def __init__(self, size: int = 256):
        self.size = size
        self._solved: OrderedDict[str, object] = OrderedDict()

    @staticmethod
    def key(x: np.ndarray, y: np.ndarray, *params) -> str:
        h = hashlib.sha256(x.tobytes() + y.tobytes())
        h.update(repr(params).encode())
        return h.hexdigest()

    def get(self, key: str, solve: Callable[[], object]):
        """The solution under ``key``, from ``solve()`` the first time (None kept too)."""
        if key not in self._solved:
            if len(self._solved) >= self.size:
                self._solved.popitem(last=False)
            self._solved[key] = solve()
        return self._solved[key]

    def clear(self) -> None:
        self._solved.clear()


PROGRAMS = ProgramCache()


def reference_optima(specs, samples: int = 2000) -> list[tuple[float, str]]:
    """(J*, label) for each RunSpec; (nan, "") where no certified reference applies.

    Labels: ``teacher_realizable`` (J* = 0: a noiseless teacher, no weight decay, student
    width >= teacher width), ``convex_exact`` / ``convex_lower_bound`` /
    ``convex_sampled_upper_bound`` (weight decay > 0 on sampled data, MSE or logistic
    loss, see ``ConvexOptimum.reference``). One convex program per distinct data set,
    loss, lam and parametrization. A classification target without weight decay has none:
    its infimum 0 is not attained. Cross-entropy (m >= 3 classes) with weight decay:
    ``convex_relaxation_lower_bound`` where the patterns are exact (a lower bound on the
    optimum at every width, never the optimum), else none (``multiclass``).
    """
    out = []
    for spec in specs:
        realizable = spec.target in ("teacher", "gaussian") and not spec.noise
        if spec.weight_decay == 0:
            if realizable and spec.width >= spec.teacher_width:
                out.append((0.0, "teacher_realizable"))
            else:
                out.append((float("nan"), ""))
            continue
        if spec.loss == "cross_entropy":
            out.append(_multiclass_reference(spec, samples))
            continue
        if spec.loss not in ("mse", "logistic"):
            out.append((float("nan"), ""))
            continue
        x, y = make_data(spec)
        if spec.loss == "logistic" and free_part_separates(x, y, spec.has_linear):
            out.append((float("nan"), ""))  # infimum 0, not attained: no optimum
            continue
        params = ("binary", spec.weight_decay, spec.has_linear, spec.loss, samples)

        def solve(x=x, y=y, spec=spec):
            try:
                return convex_optimum(
                    x, y, spec.weight_decay, spec.has_linear, samples=samples, loss=spec.loss
                )
            except RuntimeError:  # no solver reached an accurate optimum: no reference
                return None

        solved = PROGRAMS.get(PROGRAMS.key(x, y, *params), solve)
        out.append((float("nan"), "") if solved is None else solved.reference(spec.width))
    return out


def _multiclass_reference(spec, samples: int) -> tuple[float, str]:
    """The relaxation's lower bound for a cross-entropy spec; sampled patterns give none
    (so their programs are not solved here)."""
    if not (spec.d == 1 or (spec.d == 2 and spec.n_samples <= EXACT_2D_MAX_POINTS)):
        return float("nan"), ""
    (bounds,) = multiclass_references([spec], samples)
    if bounds is None or bounds.lower is None:
        return float("nan"), ""
    return bounds.lower, MulticlassBounds.LOWER_LABEL


def multiclass_references(specs, samples: int = 2000) -> list[MulticlassBounds | None]:
    """The bounds of each cross-entropy RunSpec with weight decay > 0 (one program per
    distinct data set, lam and parametrization); None where none apply: another loss, no
    weight decay (on separable data the infimum 0 is not attained; otherwise nothing is
    certified and the best in the cell applies), an objective without minimizer
    (``free_part_recedes``), or programs the solver could not solve (with a warning)."""
    import warnings

    import cvxpy as cp

    out = []
    for spec in specs:
        if spec.loss != "cross_entropy" or not spec.weight_decay > 0:
            out.append(None)
            continue
        x, y = make_data(spec)
        params = ("multiclass", spec.weight_decay, spec.has_linear, spec.outputs, samples)

        def solve(x=x, y=y, spec=spec):
            if free_part_recedes(x, y, spec.outputs, spec.has_linear):
                return None
            try:
                return multiclass_bounds(
                    x, y, spec.weight_decay, spec.has_linear, spec.outputs, samples=samples
                )
            except (cp.error.SolverError, RuntimeError) as err:
                # no certified number: the cells fall back to the best in the cell
                warnings.warn(f"no multiclass bounds: {err}", stacklevel=4)
                return None

        out.append(PROGRAMS.get(PROGRAMS.key(x, y, *params), solve))
    return out


def separable_upper_bounds(specs, samples: int = 2000) -> list[tuple[float, str, int]]:
    """(J, "convex_separable_upper_bound", width) per RunSpec: an objective a network of
    that width attains (an upper bound on the optimum at every width >= it), beside the
    lower bound ``reference_optima`` gives; (nan, "", 0) where none applies."""
    return [
        (b.upper, MulticlassBounds.UPPER_LABEL, b.width) if b is not None else (float("nan"), "", 0)
        for b in multiclass_references(specs, samples)
    ]
