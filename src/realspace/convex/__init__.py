"""Global-optimum references J* for the near-optimality gap, from convex programs.

Three references, the best that applies to a cell (docs/science.md, "Statistics"):

- realizable teachers without weight decay or label noise: J* = 0 once the student
  width reaches the teacher width;
- with weight decay, the exact optimum over all widths of a scalar network (MSE or
  binary logistic loss) from Pilanci & Ergen's convex reformulation (``binary``), or for
  the multiclass cross-entropy a certified lower bound and an attained upper bound
  (``multiclass``);
- otherwise the best loss observed in the cell (made in ``realspace.stats``).

The modules, each resting on those before it: ``patterns`` (the activation patterns of
the data and their cones), ``solvers`` (the one solver policy), ``networks`` (the
network a solution describes), ``binary`` and ``multiclass`` (the programs),
``references`` (which program certifies each RunSpec, with the one cache of solved
programs). numpy only at import; scipy and cvxpy load where a program is built.

The math: docs/science.md#global-optimum-references.
"""

from .binary import ConvexOptimum, convex_optimum, free_part_separates
from .multiclass import MulticlassBounds, cross_entropy, free_part_recedes, multiclass_bounds
from .patterns import EXACT_2D_MAX_POINTS, activation_patterns
from .references import multiclass_references, reference_optima, separable_upper_bounds
from .solvers import solve_program

__all__ = [
    "EXACT_2D_MAX_POINTS",
    "ConvexOptimum",
    "MulticlassBounds",
    "activation_patterns",
    "convex_optimum",
    "cross_entropy",
    "free_part_recedes",
    "free_part_separates",
    "multiclass_bounds",
    "multiclass_references",
    "reference_optima",
    "separable_upper_bounds",
    "solve_program",
]
