"""The analysis stages of a sweep, planned like training: units with stable keys.

After training, a sweep runs these stages (docs/science.md):

- ``pathology``: one unit per family P0-P4 (and P1b), n = 2^1 .. 2^max (checks of the
  distances);
- ``seed_pairs``: one unit per d = 1 MSE cell with at least two seeds, over its members;
- ``retrain``: one unit per (trained unrestricted network Gamma, parametrization): every
  perturbation kind x delta, retrained from Gamma (restricted: from its canonical form);
- ``witness`` (claim 2): one unit per unrestricted problem, over all its end points: free
  neurons, the realization-space descent rate and the witness verified by construction;
- ``stability`` (claim 3): one unit per d = 1 problem and parametrization, over the end
  points of ``stability_widths`` and the lowest ``stability_seeds`` seeds: restricted ones
  perturbed by every kind and size (exact d_W, fibre distance), unrestricted ones with a
  free neuron given a new kink (the lower bound on their distance to g's parametrizations).

A unit's key hashes its inputs (the member runs' keys included), the science version and
``ANALYSIS_VERSION``, so a rerun skips finished units exactly as it skips finished runs,
and recomputes them, without retraining a network, when the stages' computation changes.

The math: docs/science.md#inverse-stability-experiments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import SCIENCE_VERSION
from ..core.pathologies import PATHOLOGIES
from ..core.spec import cell_of, target_label
from .config import SweepConfig
from .plan import PlannedRun, _digest

__all__ = ["StageUnit", "plan_analysis", "compute_unit", "STAGES", "ANALYSIS_VERSION"]

STAGES = ("pathology", "seed_pairs", "retrain", "witness", "stability")
# bumped when the stages' rows change for the same inputs (2: exact fibre distances up to
# 64 live neurons; retraining without weight decay, at width N + 1, with its control;
# 3: retraining rows carry the exact d_W the realization travelled, d_W_travel)
ANALYSIS_VERSION = "3"
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
            # restricted methods apart: a seed pair compares two runs of one method (and
            # of one model: with or without a trained linear term)
            variant = (
                s.weight_decay,
                s.optimizer,
                s.lr,
                s.steps,
                s.restricted_method,
                s.linear_term,
            )
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
                        # unrestricted runs with a trained w: only then, so other keys stay
                        **({"linear": True} if members[0].spec.linear_term else {}),
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
    if a.witnesses:
        units += _witness_units(runs)
    if a.stability_seeds:
        units += _stability_units(cfg, runs)
    return units


def _problems(runs: list[PlannedRun], keep) -> dict[str, list[PlannedRun]]:
    """The runs that ``keep`` accepts, by problem and parametrization: their specs but
    for width and seed (a digest of those, so that every axis keeps problems apart)."""
    groups: dict[str, list[PlannedRun]] = {}
    for r in runs:
        if keep(r.spec):
            rest = {k: v for k, v in r.spec.to_dict().items() if k not in ("width", "seed")}
            groups.setdefault(_digest(rest)[:8], []).append(r)
    return groups


def _members_unit(stage: str, prefix: str, members: list[PlannedRun], inputs: dict) -> StageUnit:
    members = sorted(members, key=lambda m: (m.spec.width, m.spec.seed))
    s = members[0].spec
    name = f"{prefix}-{target_label(s).replace(' ', '')}-{s.parametrization[0]}"
    return _unit(
        stage,
        name + (f"-{s.restricted_method}" if s.restricted_method else ""),
        {
            **inputs,
            "specs": [m.spec.to_dict() for m in members],
            "keys": [m.key for m in members],
        },
        [m.key for m in members],
    )


def _witness_units(runs: list[PlannedRun]) -> list[StageUnit]:
    """Claim 2: every unrestricted end point, one unit per problem."""
    groups = _problems(runs, lambda s: s.parametrization == "unrestricted")
    return [_members_unit("witness", "witness", g, {}) for _, g in sorted(groups.items())]


def _stability_units(cfg: SweepConfig, runs: list[PlannedRun]) -> list[StageUnit]:
    """Claim 3 on trained networks: d = 1 scalar end points of ``stability_widths``, the
    lowest ``stability_seeds`` seeds of each width, one unit per problem and
    parametrization."""
    a = cfg.analysis

    def keep(s):
        return (
            s.d == 1 and s.outputs == 1 and s.loss != "gaussian" and s.width in a.stability_widths
        )

    units = []
    for _, group in sorted(_problems(runs, keep).items()):
        by_width: dict[int, list[PlannedRun]] = {}
        for r in group:
            by_width.setdefault(r.spec.width, []).append(r)
        members = [
            m
            for w in sorted(by_width)
            for m in sorted(by_width[w], key=lambda m: m.spec.seed)[: a.stability_seeds]
        ]
        inputs = {"kinds": list(a.stability_kinds), "deltas": list(a.stability_deltas)}
        units.append(_members_unit("stability", "stability", members, inputs))
    return units


def compute_unit(stage: str, inputs: dict, params: list[dict], options=None) -> list[dict]:
    """The rows of one analysis unit. ``params``: the raw end points of its member runs
    (in ``members`` order); ``options``: TrainOptions for retraining."""
    from ..core import inverse
    from ..core.problem import network_from_params

    if stage == "pathology":
        return inverse.pathology_table(
            inputs["max_log2"], inputs["D"], families=(inputs["family"],)
        )
    if stage == "seed_pairs":
        linear = inputs["restricted"] or inputs.get("linear", False)
        nets = [network_from_params(p, linear) for p in params]
        return inverse.seed_pair_table(nets, inputs["D"], inputs["closest"])
    if stage == "retrain":
        from ..core.spec import RunSpec
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
    if stage == "witness":
        return _witness_rows(inputs, params)
    if stage == "stability":
        return _stability_rows(inputs, params)
    raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")


def _members(inputs: dict, params: list[dict]):
    """(run key, RunSpec, end point) of each member of a unit, in ``members`` order."""
    from ..core.spec import RunSpec

    specs = [RunSpec.from_dict(s) for s in inputs["specs"]]
    return zip(inputs["keys"], specs, params, strict=True)


def _witness_rows(inputs: dict, params: list[dict]) -> list[dict]:
    from ..core.problem import make_data, network_from_params, teacher_rows
    from ..core.witness import find_gaussian_witness, find_witness

    rows = []
    for key, spec, p in _members(inputs, params):
        net = network_from_params(p, spec.has_linear)  # linear_term runs carry w
        if spec.loss == "gaussian":
            found = find_gaussian_witness(net.a, teacher_rows(spec), seed=spec.seed)
        else:
            x, y = make_data(spec)
            found = find_witness(net, x, y, spec.loss, spec.weight_decay, spec.D, seed=spec.seed)
        rows.append({"run_key": key, "width": spec.width, "seed": spec.seed, **found.to_row()})
    return rows


def _stability_rows(inputs: dict, params: list[dict]) -> list[dict]:
    from ..core.canonical import canonical_form
    from ..core.problem import network_from_params
    from ..core.spec import network_label
    from ..core.stability import free_neuron_rows, stability_rows

    rows = []
    for key, spec, p in _members(inputs, params):
        net = network_from_params(p, spec.has_linear)
        if spec.restricted:
            found = stability_rows(
                canonical_form(net, spec.D), spec.D, inputs["kinds"], inputs["deltas"], spec.seed
            )
        else:
            found = free_neuron_rows(net, spec.D, inputs["deltas"], spec.seed)
        head = {
            "run_key": key,
            "network": network_label(spec),
            "parametrization": spec.parametrization,
            "seed": spec.seed,
        }
        rows += [{**head, **r, "width": spec.width} for r in found]
    return rows
