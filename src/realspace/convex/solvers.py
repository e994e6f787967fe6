"""The solver policy of every convex program here: Clarabel, then SCS, never an
inaccurate value.

``solve_program`` is the one policy; its ``ladder`` is the sequence of interior-point
settings tried before SCS (``DIRECT``: Clarabel's defaults once, the binary programs;
``LADDER``: shorter steps as well, the multiclass ones). ``PRUNE_LEVELS`` is the shared
schedule by which both programs' networks drop the solver's tiny neurons.
"""

from __future__ import annotations

import warnings

__all__ = [
    "DIRECT",
    "LADDER",
    "PRUNE_LEVELS",
    "SCS_EPS",
    "SCS_SECONDS",
    "SCS_SECONDS_MULTICLASS",
    "solve_program",
]

# the pruning's cuts on c^2, relative to the largest: tried from the sparsest on
PRUNE_LEVELS = (1e-3, 1e-4, 1e-5, 1e-6)

# Clarabel's default settings, once: the binary programs
DIRECT = ({},)

# Interior-point settings tried in turn: on these programs (thousands of small cones
# beside n exponential cones) the default full steps sometimes stall at the start;
# shorter steps get through, and on the larger ones (n = 64) only a solver that keeps
# going through short steps does
LADDER = (
    {},
    {"max_step_fraction": 0.8},
    {"max_step_fraction": 0.5},
    {"min_switch_step_length": 1e-3, "min_terminate_step_length": 1e-9},
)


# SCS's residual tolerance where it stands in for the interior-point solver: the value is
# then accurate to about 1e-6 relative, two orders below the default gap eps 1e-4
SCS_EPS = 1e-7
# ... and its time limit: a program it cannot finish in this time gives no reference
SCS_SECONDS = 300.0
# SCS's time limit per multiclass solve: on a teacher's separable 3-class labels it ran
# past 2.5 minutes for 24 points (measured), and a sweep's report waits for its references
SCS_SECONDS_MULTICLASS = 60.0


def solve_program(
    problem, solver: str | None = None, seconds: float = SCS_SECONDS, ladder=DIRECT
) -> None:
    """Solve a cvxpy ``problem`` in place to an accurate optimum, or raise RuntimeError.

    With ``solver`` given: that solver, and "optimal" or "optimal_inaccurate" is accepted
    (the caller chose). By default: Clarabel (interior point) with the settings of
    ``ladder`` in turn (the next rung only where one fails outright), accepted only when it
    reports "optimal"; otherwise SCS (first order, residuals ``SCS_EPS``), accepted only
    when optimal within ``seconds``. An inaccurate interior-point value is never taken:
    on separable labels with small weight decay the logistic program's optimum has large
    weights and Clarabel can stop short. Measured on 36 points in d = 2 with a cone row per
    point: its inaccurate values were 1.2e-5 (a teacher's labels, lam = 1e-2) and 9.3e-4
    (two spirals, lam = 1e-3) above SCS's, more than trained networks then beat them by
    (with the hull's rows, ``patterns.cone_matrix``, it solves both; a teacher at
    lam = 1e-3 still fails), and a lower bound must not sit above the optimum.
    """
    from cvxpy.error import SolverError

    if solver is not None:
        problem.solve(solver=solver)
        ok = ("optimal", "optimal_inaccurate")
    else:
        ok = ("optimal",)
        for opts in ladder:  # the rungs get past failures; an inaccurate end goes to SCS
            try:
                solve_clarabel(problem, **opts)
            except SolverError:
                continue
            if problem.status in ok:
                return
            break
        solve_scs(problem, seconds)
    if problem.status not in ok:
        raise RuntimeError(f"convex program ended with status {problem.status}")


def solve_clarabel(problem, **opts) -> None:
    """Clarabel (interior point) with ``opts``, whose "optimal_inaccurate" the callers
    refuse and hand to SCS: cvxpy's warning about it would only mislead, so it is hidden."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Solution may be inaccurate")
        problem.solve(solver="CLARABEL", **opts)


def solve_scs(problem, seconds: float) -> None:
    """SCS at residuals ``SCS_EPS`` within ``seconds``: the fallback of every program here."""
    problem.solve(
        solver="SCS",
        eps_abs=SCS_EPS,
        eps_rel=SCS_EPS,
        max_iters=10_000_000,
        time_limit_secs=seconds,
    )
