"""Statistics of a sweep's end points (pandas in, pandas out; no tracking store here).

The input is a frame with one row per network, as ``realspace.tracking.load_runs`` returns it:
RunSpec columns (``target_label``, ``parametrization``, ``width``, ``seed``,
``weight_decay``, ...) and the end-point metrics (``loss``, ``objective``,
``certified``, ``census_*``).

A *problem* is everything but the parametrization, width and seed (target, weight
decay and any other axis the sweep varies); a *cell* is problem x parametrization x
width. Per cell (docs/science.md, "Statistics"):

- near-optimality: gap = J(end point) - J* (J the objective that was trained: the loss,
  plus the weight-decay penalty when lam > 0), J* from ``reference_optima``; median,
  90th percentile, max, share within ``eps``; per problem and parametrization a fitted
  exponent p of median gap ~ width^p;
- minima: certified local minima, each judged against what a network of its width
  attains (``minimum_verdicts``): spurious, optimal or undecided;
- the degeneracy census (means over seeds);
- claim 4: restricted vs unrestricted best and median objective at equal width.

The modules: ``frames`` (problems, cells and what each run trained), ``gaps`` (gaps to the
references and the verdicts on certified minima), ``cells`` (per-cell tables and decay
exponents), ``claim4`` (restricted against unrestricted), ``teacher_student`` (spurious
minima of the Gaussian teacher-student problem), ``classification``, and ``quantiles``
(distribution-free bounds on quantiles, claim 4's test).

The math: docs/science.md#statistics.
"""

from .cells import cell_stats, census_table, decay_rates
from .claim4 import EXPRESSIVITY_RTOL, at_least_as_good, claim4_table, expressivity_table
from .classification import classification_table
from .frames import (
    CELL,
    CENSUS,
    PROBLEM_AXES,
    best_in_cell,
    diverged_runs,
    restricted_methods,
    shared_data,
    spec_groups,
    specs_of,
    trained_objective,
    with_methods,
    with_problems,
)
from .gaps import EXACT_AT_WIDTH, LOWER_BOUNDS, gap_values, minimum_verdicts, reference_frame
from .teacher_student import relative_losses, spurious_table, teacher_kinds

__all__ = [
    "PROBLEM_AXES",
    "CELL",
    "CENSUS",
    "with_problems",
    "restricted_methods",
    "with_methods",
    "trained_objective",
    "best_in_cell",
    "diverged_runs",
    "shared_data",
    "spec_groups",
    "specs_of",
    "EXACT_AT_WIDTH",
    "LOWER_BOUNDS",
    "gap_values",
    "minimum_verdicts",
    "reference_frame",
    "cell_stats",
    "census_table",
    "decay_rates",
    "EXPRESSIVITY_RTOL",
    "at_least_as_good",
    "claim4_table",
    "expressivity_table",
    "relative_losses",
    "spurious_table",
    "teacher_kinds",
    "classification_table",
]
