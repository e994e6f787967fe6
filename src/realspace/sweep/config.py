"""Sweep configuration: a YAML document validated by a pydantic schema.

Every problem is reported before any work starts, with the key's path and the
reason; unknown keys are errors, not silently ignored. The choices (targets,
parametrizations, optimizers, samplings, retraining families) and the rules that tie a
target to the rest of a run come from the science core (``realspace.core.choices``,
``realspace.core.inverse``), and the ranges of a run's parameters from
``realspace.core.constraints``: the schema states them nowhere else. About 410 lines: one
pydantic model per section of the document, each with its own validators, and the
cross-section rules (a target against its runs, a grid's size, the number of runs) after
them; a reader of one key finds its type, default and rules in one place.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..core.choices import (
    BY_WIDTH,
    DEFAULT_RESTRICTED_METHOD,
    DEFAULT_TEACHER_ROWS,
    OPTIMIZERS,
    PARAMETRIZATIONS,
    RESTRICTED_METHODS,
    SAMPLINGS,
    TARGET_NAMES,
    TEACHER_ROWS,
    problem_conflicts,
    target_param_problems,
)
from ..core.constraints import (
    MAX_COUNT,
    MAX_RUNS,
    MAX_SAMPLES,
    RUN_CONSTRAINTS,
)
from ..core.inverse import PERTURBATIONS
from ..core.stability import STABILITY_DELTAS, STABILITY_KINDS

__all__ = ["SweepConfig", "ConfigError", "load_config", "parse_config", "as_config"]

Parametrization = Literal[PARAMETRIZATIONS]
OptimizerKind = Literal[OPTIMIZERS]
Sampling = Literal[SAMPLINGS]
TeacherRows = Literal[TEACHER_ROWS]
Perturbation = Literal[PERTURBATIONS]
StabilityKind = Literal[STABILITY_KINDS]

# The ranges of a run's parameters are RUN_CONSTRAINTS' (realspace.core.constraints), from
# which RunSpec checks itself too: each config field of a run parameter is built from its
# interval (``_run``). The bounds here are the config's own (counts of the analysis, the
# execution), with the same caps.


def _run(name: str):
    """The pydantic type of RunSpec field ``name``: its kind within its interval."""
    interval = RUN_CONSTRAINTS[name]
    return Annotated[interval.kind, Field(**interval.field())]


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Steps = _run("steps")
Width = _run("width")
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Seed = _run("seed")


class ConfigError(ValueError):
    """A sweep configuration that cannot be used; the message lists every problem."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _grid(kind):
    """A value or a non-empty list of values (a grid axis)."""
    return kind | Annotated[list[kind], Field(min_length=1)]


class Target(Strict):
    """A target: a named smooth function, a random canonical teacher, a classification
    target (``teacher_labels``, ``spirals``, ``mixture``: ``n_classes`` classes, the
    logistic loss at 2, cross-entropy above; ``noise`` is then a label-flip probability),
    or the Gaussian teacher-student problem. Axes given here override the sweep-wide ones
    for it (``noise`` overrides ``data.noise``)."""

    name: str
    params: dict[str, float] = {}
    teacher_width: Width = 4
    teacher_seed: _run("teacher_seed") = 0
    teacher_rows: TeacherRows = DEFAULT_TEACHER_ROWS  # the Gaussian teacher's rows
    n_classes: _run("n_classes") = 2  # classification targets only
    noise: _run("noise") | None = None
    input_dim: _run("d") | None = None
    widths: Annotated[list[Width], Field(min_length=1)] | None = None
    parametrizations: Annotated[list[Parametrization], Field(min_length=1)] | None = None
    weight_decay: _grid(_run("weight_decay")) | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, v):
        if v not in TARGET_NAMES:
            raise ValueError(f"unknown target {v!r}; known: {', '.join(TARGET_NAMES)}")
        return v


class Data(Strict):
    n_samples: _run("n_samples") = 256
    sampling: Sampling = "grid"
    noise: _run("noise") = 0.0


class Optimizer(Strict):
    kind: _grid(OptimizerKind) = "adam"
    lr: _grid(_run("lr")) = 1e-2
    momentum: _run("momentum") = 0.9
    beta1: _run("beta1") = 0.9
    beta2: _run("beta2") = 0.999
    steps: _grid(Steps) = 2000
    batch_size: _run("batch_size") = 0
    init_scale: _run("init_scale") = 1.0
    # a float64 full-batch L-BFGS polish of each end point, this many iterations; "auto":
    # POLISH_AUTO for weight-decay runs on data (where claim 1 is decided), else none
    polish: _run("polish") | Literal["auto"] = "auto"

    def polish_steps(self, weight_decay: float, loss: str) -> int:
        """The polish iterations of a run with this weight decay and loss."""
        if self.polish != "auto":
            return int(self.polish)
        return POLISH_AUTO if weight_decay > 0 and loss != "gaussian" else 0


POLISH_AUTO = 200  # L-BFGS iterations of the automatic polish


class Stopping(Strict):
    grad_tol: _run("grad_tol") = 0.0
    plateau_patience: _run("plateau_patience") = 0
    plateau_rel_tol: _run("plateau_rel_tol") = 1e-6


class Execution(Strict):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    # "graph": each shard's update compiled into one graph (torch.compile; a CUDA graph
    # on CUDA), compiled once per shape in each worker: worth it for long or many shards
    # of a shape. Like dtype and device, it changes results at the rounding level only.
    kernel: Literal["auto", "graph"] = "auto"
    memory_budget_mb: PositiveFloat | None = None  # per shard; default: from the device
    max_shard_size: Annotated[int, Field(gt=0, le=MAX_RUNS)] = 4096
    # balance: a shape with more than its share of the work is split so that the sweep
    # is at least this many shards per worker (0: one shard per shape, up to the limits)
    shards_per_worker: Count = 4
    ray_address: str | None = None  # HOST:PORT of a running cluster; None: a local Ray
    cpus_per_worker: PositiveFloat = 1.0
    gpus_per_worker: NonNegFloat | None = None  # None: 1 when CUDA is present, else 0
    num_workers: Annotated[int, Field(gt=0, le=MAX_COUNT)] | None = None  # local Ray only
    max_runs: Annotated[int, Field(gt=0, le=MAX_RUNS)] | None = None  # over it: --yes


class Analysis(Strict):
    """What the sweep computes after training (none of it enters the sweep's key, so
    changing it never retrains a network)."""

    gap_eps: PositiveFloat = 1e-4  # a run is near-optimal when J - J* <= gap_eps
    pathology_max_log2: Annotated[int, Field(ge=1, le=20)] = 12  # n = 2^1 .. 2^this
    seed_pairs: Count = 4  # closest seed pairs per cell (0: off)
    retrain_widths: list[Width] = [8, 32]  # widths whose end points are retrained
    retrain_seeds: Count = 1  # trained networks per width (0: off)
    retrain_kinds: Annotated[list[Perturbation], Field(min_length=1)] = list(PERTURBATIONS)
    retrain_deltas: Annotated[list[PositiveFloat], Field(min_length=1)] = [
        1e-4,
        1e-3,
        1e-2,
        1e-1,
    ]
    retrain_steps: Steps = 1000
    retrain_lr: PositiveFloat = 1e-3
    convex_samples: Annotated[int, Field(gt=0, le=MAX_COUNT)] = 2000  # sampled patterns
    # claim 2: witnesses (free neuron, realization-space descent) of unrestricted end points
    witnesses: bool = True
    # claim 3 on trained networks (d = 1): end points of these widths, this many seeds per
    # cell, perturbed by each kind at each size (exact d_W and fibre distances)
    stability_widths: list[Width] = [8, 16]
    stability_seeds: Count = 4  # 0: off
    stability_kinds: Annotated[list[StabilityKind], Field(min_length=1)] = list(STABILITY_KINDS)
    stability_deltas: Annotated[list[PositiveFloat], Field(min_length=2)] = list(STABILITY_DELTAS)
    report: bool = True  # write the report when the sweep ends


NETWORK_RUNS_AUTO = 64  # tracking.network_runs "auto": a run per network up to this many


class Tracking(Strict):
    uri: str | None = None  # default: sqlite:///<cwd>/mlruns.db, or MLFLOW_TRACKING_URI
    experiment: str | None = None  # default: the sweep's name
    # an MLflow run per network beside the cell runs' tables: true, false, or "auto" (for
    # sweeps of at most 64 networks: each is a run of its own, at ~60 ms and ~50 kB each)
    network_runs: bool | Literal["auto"] = "auto"

    def wants_network_runs(self, networks: int) -> bool:
        """Whether a sweep of ``networks`` networks logs a run per network."""
        auto = self.network_runs == "auto"
        return networks <= NETWORK_RUNS_AUTO if auto else bool(self.network_runs)


class SweepConfig(Strict):
    """One sweep: the product of all axes, one network per point."""

    # the name becomes a folder (reports/<name>): letters, digits, _ . -, not starting with
    # a dot or a dash, so never "..", a hidden file or an option
    name: Annotated[
        str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    ]
    targets: Annotated[list[Target], Field(min_length=1)]
    parametrizations: Annotated[list[Parametrization], Field(min_length=1)] = list(PARAMETRIZATIONS)
    # how restricted runs stay in Omega_N: an axis of the restricted runs only (each
    # restricted point of the grid is trained once per method; unrestricted ones once)
    restricted_methods: Annotated[list[str], Field(min_length=1)] = [DEFAULT_RESTRICTED_METHOD]
    widths: Annotated[list[Width], Field(min_length=1)]
    # a count (seeds 0 .. seeds - 1) or the seeds themselves
    seeds: Annotated[int, Field(gt=0, le=MAX_RUNS)] | Annotated[list[Seed], Field(min_length=1)] = 8
    input_dim: _run("d") = 1
    domain: _run("D") = 1.0
    data: Data = Data()
    optimizer: Optimizer = Optimizer()
    weight_decay: _grid(_run("weight_decay")) = 0.0
    # unrestricted runs with the restricted model's free linear term w (claim 4 compares
    # equal function classes); false: the plain unrestricted network (w = 0)
    linear_term: bool = False
    stopping: Stopping = Stopping()
    execution: Execution = Execution()
    tracking: Tracking = Tracking()
    analysis: Analysis = Analysis()

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v):
        if isinstance(v, list) and len(set(v)) != len(v):
            dup = sorted({s for s in v if v.count(s) > 1})
            raise ValueError(f"duplicate seeds {dup}")
        return v

    @field_validator("restricted_methods")
    @classmethod
    def _known_methods(cls, v):
        known = (*RESTRICTED_METHODS, BY_WIDTH)
        unknown = [m for m in v if m not in known]
        if unknown:
            raise ValueError(f"unknown restricted method {unknown[0]!r}; known: {', '.join(known)}")
        if len(set(v)) != len(v):
            raise ValueError("duplicate restricted methods")
        return v

    @field_validator("widths")
    @classmethod
    def _distinct_widths(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("duplicate widths")
        return v

    @model_validator(mode="after")
    def _targets_agree_with_their_runs(self):
        for i, t in enumerate(self.targets):
            broken = {
                b
                for par in t.parametrizations or self.parametrizations
                for b in problem_conflicts(
                    t.name,
                    par,
                    self.optimizer.batch_size,
                    t.teacher_rows,
                    t.input_dim or self.input_dim,
                    t.teacher_width,
                    self.data.noise if t.noise is None else t.noise,
                    t.n_classes,
                )
            }
            broken |= set(
                target_param_problems(t.name, t.params, t.input_dim or self.input_dim, self.domain)
            )
            if broken:
                hint = (
                    "; give this target `parametrizations: [unrestricted]`"
                    if "restricted" in (t.parametrizations or self.parametrizations)
                    else ""
                ) + ("; set optimizer.batch_size: 0" if self.optimizer.batch_size else "")
                raise ValueError(f"targets[{i}] ({t.name}): " + "; ".join(sorted(broken)) + hint)
        return self

    @model_validator(mode="after")
    def _grids_have_few_enough_points(self):
        for i, t in enumerate(self.targets):
            d = t.input_dim or self.input_dim
            if self.data.sampling != "grid" or t.name in ("spirals", "mixture", "gaussian"):
                continue
            side = max(2, round(self.data.n_samples ** (1.0 / d)))
            if d * math.log2(side) > math.log2(MAX_SAMPLES):
                where = f"targets[{i}].input_dim" if t.input_dim else "input_dim"
                raise ValueError(
                    f"{where} = {d} with data.sampling: grid makes a grid of {side}^{d} "
                    f"points, more than {MAX_SAMPLES}; use data.sampling: uniform"
                )
        return self

    @model_validator(mode="after")
    def _few_enough_runs(self):
        n = self.run_count()
        if n > MAX_RUNS:
            raise ValueError(
                f"the axes make {n:.3g} networks (seeds x widths x parametrizations x the "
                f"optimizer's and weight decay's grids, per target), more than the {MAX_RUNS:.0e} "
                "a sweep may plan; split it into several sweeps"
            )
        return self

    def run_count(self) -> int:
        """Networks the sweep trains, from its axes alone (nothing is planned): the
        number ``plan.plan_runs`` returns, or more where two points of the axes resolve
        to the same runs (two equal targets; by_width beside the method it picks): a
        plan holds each run once."""
        opt = self.optimizer

        def n(v):
            return len(v) if isinstance(v, list) else 1

        grid = n(opt.kind) * n(opt.lr) * n(opt.steps)
        seeds = self.seeds if isinstance(self.seeds, int) else len(self.seeds)
        total = 0
        for t in self.targets:
            wd = n(self.weight_decay if t.weight_decay is None else t.weight_decay)
            methods = sum(
                len(self.restricted_methods) if p == "restricted" else 1
                for p in t.parametrizations or self.parametrizations
            )
            total += methods * len(t.widths or self.widths) * grid * wd
        return total * seeds

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


# where pydantic tried each member of a union (``int | list[int]``), it tags the key's
# path with the member ("constrained-int", "list[constrained-int]", "literal['auto']")
_UNION_TAG = re.compile(
    r"^(constrained-\w+|(list|literal|function-\w+)\[.*\])$|^(int|float|str|bool)$"
)
# what a union member says when the value is not even of its type: noise where another
# member took the value and found something else wrong with it
_TYPE_ERRORS = {"int_type", "int_parsing", "float_type", "float_parsing", "list_type"}
_TYPE_ERRORS |= {"string_type", "bool_type", "literal_error"}


def _format(err: ValidationError) -> str:
    """One line per problem, ``key.path[i]: reason``, union members' tags left out."""
    found = []
    for e in err.errors():
        tags = [i for i, p in enumerate(e["loc"]) if isinstance(p, str) and _UNION_TAG.match(p)]
        union = e["loc"][: tags[0]] if tags else None
        loc = [p for i, p in enumerate(e["loc"]) if i not in tags]
        found.append((union, loc, e))
    # a union whose value one member accepted as its type keeps that member's problems
    typed = {tuple(u) for u, _, e in found if u is not None and e["type"] not in _TYPE_ERRORS}
    lines = []
    for union, loc, e in found:
        if union is not None and tuple(union) in typed and e["type"] in _TYPE_ERRORS:
            continue
        path = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc)
        path = path.replace(".[", "[")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {path or '(top level)'}: {msg}")
    return "\n".join(sorted(set(lines)))


def parse_config(data, source: str = "config") -> SweepConfig:
    """Validate a parsed document; raise ConfigError listing every problem."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: invalid sweep configuration\n{_format(err)}") from None


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a YAML sweep file (safe loader)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(
            f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}"
        ) from None
    return parse_config(data, str(path))


def as_config(config) -> SweepConfig:
    """A SweepConfig from a SweepConfig, a parsed document (dict) or a YAML path; raises
    ConfigError for anything invalid."""
    if isinstance(config, SweepConfig):
        return config
    return parse_config(config) if isinstance(config, dict) else load_config(config)
