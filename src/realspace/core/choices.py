"""The choices a run is made of, and the rules that tie a target to the rest of a run.

The lists (optimizers, parametrizations, restricted methods, samplings, targets and their
loss kinds, teacher rows) and the rules between them (``problem_conflicts``,
``target_param_problems``) are stated here once: ``RunSpec`` raises them, and the sweep
config builds its choices from them and reports the rules under the key that breaks them.

The math: docs/science.md#training and #targets-and-losses.
"""

from __future__ import annotations

import numpy as np

from .targets import TARGETS

__all__ = [
    "OPTIMIZERS",
    "PARAMETRIZATIONS",
    "RESTRICTED_METHODS",
    "DEFAULT_RESTRICTED_METHOD",
    "BY_WIDTH",
    "PROJECTION_MAX_WIDTH",
    "method_for_width",
    "SAMPLINGS",
    "CLASSIFICATION_TARGETS",
    "LOSS_KINDS",
    "CLASSIFICATION_PARAMS",
    "TEACHER_TARGETS",
    "TARGET_NAMES",
    "TEACHER_ROWS",
    "DEFAULT_TEACHER_ROWS",
    "problem_conflicts",
    "target_param_problems",
]


OPTIMIZERS = ("gd", "sgd", "adam")
PARAMETRIZATIONS = ("unrestricted", "restricted")
# how a restricted run stays in Omega_N (docs/science.md#training): "intrinsic" trains
# coordinates whose every point is in Omega_N; "projection" steps in (a, b, c, e, w) and
# projects back after every step. The default was chosen by measurement (bench/RESULTS.md).
RESTRICTED_METHODS = ("intrinsic", "projection")
DEFAULT_RESTRICTED_METHOD = "intrinsic"
# a config's "by_width": the projection at widths up to PROJECTION_MAX_WIDTH, intrinsic
# coordinates above. Measured on seeds 0-15 (16 pairs, bench/RESULTS.md): intrinsic runs
# end worse than unrestricted ones (with the linear term) on the width-4 teacher at width
# 4 (median paired gap +2.2e-4, lower bound +2.5e-5) and are marginal at 8 and 16 (upper
# bounds +5.6e-4, +7.3e-5 against the margin 1e-4); projected runs are non-inferior on
# every problem at widths 2-64 (upper bounds <= -2.1e-5 on the teacher at 16) but lose at
# 256 (+9.6e-5 on the teacher, ten times the cost per step); intrinsic runs are
# non-inferior from width 32 on and cost less per step
BY_WIDTH = "by_width"
PROJECTION_MAX_WIDTH = 16


def method_for_width(width: int) -> str:
    """The restricted method ``by_width`` trains at ``width``."""
    return "projection" if width <= PROJECTION_MAX_WIDTH else "intrinsic"


SAMPLINGS = ("grid", "uniform")
# classification targets (docs/science.md#targets-and-losses): labels of a random canonical
# teacher, two (or n_classes) interleaved spirals, a Gaussian mixture. With n_classes = 2
# the labels are y in {-1, +1} under the binary logistic loss (scalar output); with
# n_classes = m >= 3 they are class indices 0..m-1 under the cross-entropy (m outputs).
CLASSIFICATION_TARGETS = ("teacher_labels", "spirals", "mixture")
# target name -> loss kind; a classification target's kind is "logistic" at n_classes = 2
# ("cross_entropy" above: RunSpec.loss)
LOSS_KINDS = {
    **{name: "mse" for name in TARGETS},
    "teacher": "mse",
    "gaussian": "gaussian",
    **{name: "logistic" for name in CLASSIFICATION_TARGETS},
}
# parameters of the classification targets that draw their own points, and their defaults
CLASSIFICATION_PARAMS = {
    "teacher_labels": {},
    # arms of a spiral turn `turns` times; points jittered by N(0, (jitter D)^2)
    "spirals": {"turns": 1.5, "jitter": 0.02},
    # class means equally spaced on the circle of radius D / 2 (d = 2) or at +-D/2 e_k;
    # each class N(mean, (spread D)^2 I)
    "mixture": {"spread": 0.2},
}
# targets whose labels come from a random canonical teacher (teacher_width, teacher_seed)
TEACHER_TARGETS = ("teacher", "teacher_labels")
TARGET_NAMES = tuple(sorted(LOSS_KINDS))
# the rows V (k, d) of the Gaussian teacher (docs/science.md#targets-and-losses): i.i.d.
# N(0, I); k orthonormal rows drawn uniformly (k <= d); the identity I_k (d = k), the
# orthonormal teacher of the literature on spurious minima
TEACHER_ROWS = ("gaussian", "orthogonal", "identity")
DEFAULT_TEACHER_ROWS = "gaussian"


def problem_conflicts(
    target: str,
    parametrization: str,
    batch_size: int,
    teacher_rows: str = DEFAULT_TEACHER_ROWS,
    d: int = 1,
    teacher_width: int = 1,
    noise: float = 0.0,
    n_classes: int = 2,
) -> list[str]:
    """What a target forbids of the rest of a run, one sentence per broken rule (empty when
    none). The single statement of these rules: RunSpec raises them, the sweep config
    reports them under the target's key before any work starts."""
    if teacher_rows not in TEACHER_ROWS:
        return [f"teacher_rows must be one of {TEACHER_ROWS}, got {teacher_rows!r}"]
    if target in CLASSIFICATION_TARGETS:
        broken = []
        if teacher_rows != DEFAULT_TEACHER_ROWS:
            broken.append(f"teacher_rows {teacher_rows!r} applies to the gaussian target only")
        if not 0 <= noise < 1:
            # a classification target's noise is a label-flip probability
            broken.append(f"label noise of {target!r} is a flip probability in [0, 1), got {noise}")
        if target in ("spirals", "mixture") and d != 2:
            broken.append(f"the {target!r} target lives in the plane: input_dim must be 2, got {d}")
        return broken
    if int(n_classes) != 2:
        return [f"n_classes applies to classification targets {CLASSIFICATION_TARGETS} only"]
    if LOSS_KINDS.get(target) != "gaussian":
        if teacher_rows != DEFAULT_TEACHER_ROWS:
            return [f"teacher_rows {teacher_rows!r} applies to the gaussian target only"]
        return []
    broken = []
    if teacher_rows == "orthogonal" and teacher_width > d:
        broken.append(
            f"orthogonal teacher rows need teacher_width <= input_dim (k orthonormal rows in "
            f"R^d), got teacher_width={teacher_width}, input_dim={d}"
        )
    if teacher_rows == "identity" and teacher_width != d:
        broken.append(
            f"identity teacher rows (V = I_k) need input_dim = teacher_width, got "
            f"teacher_width={teacher_width}, input_dim={d}"
        )
    if parametrization != "unrestricted":
        broken.append(
            "the Gaussian teacher-student model has no biases and no affine part, so it has "
            "no restricted parametrization"
        )
    if batch_size:
        broken.append("the Gaussian population loss is exact; batch_size must be 0")
    return broken


def target_param_problems(target: str, params: dict, d: int = 1, D: float = 1.0) -> list[str]:
    """What is wrong with a target's ``params`` (empty when nothing): a named function
    must accept them (called once on one point), a classification target takes only its
    ``CLASSIFICATION_PARAMS``, each >= 0. The single statement of the rule: RunSpec raises
    it, the sweep config reports it under the target's key before any work starts."""
    if target in TARGETS and params:
        try:  # fail now, not on a worker: are the parameters accepted?
            TARGETS[target](np.zeros((1, d)), D, **params)
        except TypeError as err:
            return [f"target {target!r} parameters {params}: {err}"]
    if target in CLASSIFICATION_PARAMS:
        known = CLASSIFICATION_PARAMS[target]
        unknown = sorted(set(params) - set(known))
        if unknown:
            return [f"target {target!r} takes parameters {sorted(known) or 'none'}, got {unknown}"]
        return [
            f"target {target!r} parameter {key} must be >= 0, got {value}"
            for key, value in params.items()
            if not float(value) >= 0
        ]
    return []
