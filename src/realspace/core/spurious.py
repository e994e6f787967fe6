"""Spurious minima of the Gaussian teacher-student problem: the rule and its shares.

A run of the ``gaussian`` target without weight decay ends at a *spurious minimum* when its
end point is a certified local minimum (``train/certify.py``: gradient norm and negative
curvature within 1e-6, not diverged) whose population loss is not near zero, judged
relative to the loss of the zero student,

    L(0) = (1/2) E[f_V(x)^2] = (1/2) sum_{j,l} K(v_j, v_l)     (K: the arc-cosine kernel),

so that the relative loss L(W) / L(0) is the share of the teacher's second moment the
student leaves unexplained, comparable across k:

    spurious  <=>  certified  and  L(W) > SPURIOUS_REL_LOSS * L(0).

Why 1e-6: near a global minimum (L = 0) with smallest Hessian eigenvalue mu,
L ~ (1/2) g^T H^-1 g <= ||g||^2 / (2 mu); a certificate has ||g|| <= 1e-6 and mu is about
0.09 at the orthonormal teacher (k = 6 .. 12), so certified global minima sit below 1e-11
L(0); measured at k = n = 6 .. 12, they sit below 3e-14 L(0) and the spurious minima above
2.6e-4 L(0) (1.2e-3 for the orthonormal teachers). The table states the largest certified
relative loss below the threshold and the smallest above it, so a reader sees the gap the
threshold falls in.

The shares per problem and student width, with their standard errors:
``stats.spurious_table``.

The math: docs/science.md#spurious-minima-of-the-gaussian-teacher-student-problem.
"""

from __future__ import annotations

import functools

from .problem import teacher_rows
from .spec import RunSpec
from .targets import arccos_kernel

__all__ = ["SPURIOUS_REL_LOSS", "zero_student_loss", "teacher_zero_loss"]

SPURIOUS_REL_LOSS = 1e-6


def zero_student_loss(spec: RunSpec) -> float:
    """L(0) = (1/2) sum_{j,l} K(v_j, v_l) of the run's teacher V (k, d)."""
    return teacher_zero_loss(spec.teacher_rows, spec.teacher_width, spec.d, spec.teacher_seed)


@functools.lru_cache(maxsize=1024)  # one teacher serves every seed and width
def teacher_zero_loss(rows: str, k: int, d: int, teacher_seed: int) -> float:
    """``zero_student_loss`` of the teacher with these rows, width k, input dimension d
    and seed (a table's columns, without a whole spec)."""
    spec = RunSpec(
        target="gaussian",
        teacher_rows=rows,
        teacher_width=k,
        d=d,
        teacher_seed=teacher_seed,
        width=k,
        bias=False,
        train_output=False,
    )
    V = teacher_rows(spec)
    return float(0.5 * arccos_kernel(V, V).sum())
