"""The analysis stages of a sweep, planned like training: units with stable keys.

After training, a sweep runs three inverse-stability stages (docs/science.md):

- ``pathology``: one unit per family P0-P4 (and P1b), n = 2^1 .. 2^max;
- ``seed_pairs``: one unit per d = 1 MSE cell with at least two seeds, over its members;
- ``retrain``: one unit per (trained unrestricted network Gamma, parametrization): every
  perturbation kind x delta, retrained from Gamma (restricted: from its canonical form).

A unit's key hashes its inputs (the member runs' keys included), the science version and
``ANALYSIS_VERSION``, so a rerun skips finished units exactly as it skips finished runs,
and recomputes them, without retraining a network, when the stages' computation changes.

The math: docs/science.md#inverse-stability-experiments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import SCIENCE_VERSION
from ..pathologies import PATHOLOGIES
from ..spec import cell_of
from .config import SweepConfig
from .plan import PlannedRun, _digest

__all__ = ["StageUnit", "plan_analysis", "compute_unit", "STAGES", "ANALYSIS_VERSION"]

STAGES = ("pathology", "seed_pairs", "retrain")
# bumped when the stages' rows change for the same inputs (2: exact fibre distances up to
# 64 live neurons; retraining without weight decay, at width N + 1, with its control)
ANALYSIS_VERSION = "2"
PATHOLOGY_D = 2.0  # the fixtures' domain in docs/science.md


@dataclass(frozen=True)
class StageUnit:
    stage: str
    key: str
    name: str
    inputs: dict  # JSON-ready arguments of the stage's computation
    members: tuple[str, ...] = field(default=())  # run keys it reads (must be finished)


def _unit(stage: str, name: str, inputs: dict, members=()) -> StageUnit:
    key = _digest(
        {
            "science_version": SCIENCE_VERSION,
            "analysis_version": ANALYSIS_VERSION,
            "stage": stage,
            "inputs": inputs,
            "members": members,
        }
    )[:24]
    return StageUnit(stage, key, name, inputs, tuple(members))


def plan_analysis(cfg: SweepConfig, runs: list[PlannedRun]) -> list[StageUnit]:
    """Every analysis unit of the sweep, in a deterministic order."""
    a = cfg.analysis
    units = [
        _unit(
            "pathology",
            f"pathology-{fam}",
            {"family": fam, "max_log2": a.pathology_max_log2, "D": PATHOLOGY_D},
        )
        for fam in PATHOLOGIES
    ]
    cells: dict[tuple, list[PlannedRun]] = {}
    for r in runs:
        s = r.spec
        if s.loss == "mse" and s.d == 1:
            # restricted methods apart: a seed pair compares two runs of one method
            variant = (s.weight_decay, s.optimizer, s.lr, s.steps, s.restricted_method)
            cells.setdefault((*cell_of(s), variant), []).append(r)

    def _method(variant):
        return f"-{variant[4]}" if variant[4] else ""

    def label(target, variant):
        wd = variant[0]
        return f"{target}-wd{wd:g}" if wd else target

    if a.seed_pairs:
        for (target, par, width, variant), members in cells.items():
            if len(members) < 2:
                continue
            units.append(
                _unit(
                    "seed_pairs",
                    f"pairs-{label(target, variant)}-{par[0]}{_method(variant)}-w{width}",
                    {
                        "closest": a.seed_pairs,
                        "D": members[0].spec.D,
                        "restricted": par == "restricted",
                    },
                    [m.key for m in members],
                )
            )
    if a.retrain_seeds:
        for (target, par, width, variant), members in cells.items():
            if par != "unrestricted" or width not in a.retrain_widths:
                continue
            for source in sorted(members, key=lambda m: m.spec.seed)[: a.retrain_seeds]:
                for target_par in ("unrestricted", "restricted"):
                    units.append(
                        _unit(
                            "retrain",
                            f"retrain-{label(target, variant)}-w{width}"
                            f"-s{source.spec.seed}-{target_par[0]}",
                            {
                                "parametrization": target_par,
                                "kinds": list(a.retrain_kinds),
                                "deltas": list(a.retrain_deltas),
                                "steps": a.retrain_steps,
                                "lr": a.retrain_lr,
                                "spec": source.spec.to_dict(),
                            },
                            [source.key],
                        )
                    )
    return units


def compute_unit(stage: str, inputs: dict, params: list[dict], options=None) -> list[dict]:
    """The rows of one analysis unit. ``params``: the raw end points of its member runs
    (in ``members`` order); ``options``: TrainOptions for retraining."""
    from .. import inverse
    from ..problem import network_from_params

    if stage == "pathology":
        return inverse.pathology_table(
            inputs["max_log2"], inputs["D"], families=(inputs["family"],)
        )
    if stage == "seed_pairs":
        nets = [network_from_params(p, inputs["restricted"]) for p in params]
        return inverse.seed_pair_table(nets, inputs["D"], inputs["closest"])
    if stage == "retrain":
        from ..spec import RunSpec
        from ..train.retrain import retrain_table

        return retrain_table(
            RunSpec.from_dict(inputs["spec"]),
            params[0],
            inputs["parametrization"],
            inputs["kinds"],
            inputs["deltas"],
            inputs["steps"],
            inputs["lr"],
            options,
        )
    raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
