"""Sweep configuration: a YAML document validated by a pydantic schema.

Every problem is reported before any work starts, with the key's path and the
reason; unknown keys are errors, not silently ignored. The choices (targets,
parametrizations, optimizers, samplings, retraining families) and the rules that tie a
target to the rest of a run come from the science core (``realspace.spec``,
``realspace.inverse``): the schema states them nowhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..inverse import PERTURBATIONS
from ..spec import (
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
)
from ..stability import STABILITY_DELTAS, STABILITY_KINDS

__all__ = ["SweepConfig", "ConfigError", "load_config", "parse_config", "as_config"]

Parametrization = Literal[PARAMETRIZATIONS]
OptimizerKind = Literal[OPTIMIZERS]
Sampling = Literal[SAMPLINGS]
TeacherRows = Literal[TEACHER_ROWS]
Perturbation = Literal[PERTURBATIONS]
StabilityKind = Literal[STABILITY_KINDS]

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]


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
    teacher_width: PositiveInt = 4
    teacher_seed: Annotated[int, Field(ge=0)] = 0
    teacher_rows: TeacherRows = DEFAULT_TEACHER_ROWS  # the Gaussian teacher's rows
    n_classes: Annotated[int, Field(ge=2)] = 2  # classification targets only
    noise: NonNegFloat | None = None
    input_dim: PositiveInt | None = None
    widths: Annotated[list[PositiveInt], Field(min_length=1)] | None = None
    parametrizations: Annotated[list[Parametrization], Field(min_length=1)] | None = None
    weight_decay: NonNegFloat | Annotated[list[NonNegFloat], Field(min_length=1)] | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, v):
        if v not in TARGET_NAMES:
            raise ValueError(f"unknown target {v!r}; known: {', '.join(TARGET_NAMES)}")
        return v


class Data(Strict):
    n_samples: PositiveInt = 256
    sampling: Sampling = "grid"
    noise: NonNegFloat = 0.0


class Optimizer(Strict):
    kind: _grid(OptimizerKind) = "adam"
    lr: _grid(PositiveFloat) = 1e-2
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    beta1: Annotated[float, Field(ge=0, lt=1)] = 0.9
    beta2: Annotated[float, Field(ge=0, lt=1)] = 0.999
    steps: _grid(PositiveInt) = 2000
    batch_size: Annotated[int, Field(ge=0)] = 0
    init_scale: PositiveFloat = 1.0
    # a float64 full-batch L-BFGS polish of each end point, this many iterations; "auto":
    # POLISH_AUTO for weight-decay runs on data (where claim 1 is decided), else none
    polish: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"

    def polish_steps(self, weight_decay: float, loss: str) -> int:
        """The polish iterations of a run with this weight decay and loss."""
        if self.polish != "auto":
            return int(self.polish)
        return POLISH_AUTO if weight_decay > 0 and loss != "gaussian" else 0


POLISH_AUTO = 200  # L-BFGS iterations of the automatic polish


class Stopping(Strict):
    grad_tol: NonNegFloat = 0.0
    plateau_patience: Annotated[int, Field(ge=0)] = 0
    plateau_rel_tol: NonNegFloat = 1e-6


class Execution(Strict):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    memory_budget_mb: PositiveFloat | None = None  # per shard; default: from the device
    max_shard_size: PositiveInt = 4096
    # balance: a shape with more than its share of the work is split so that the sweep
    # is at least this many shards per worker (0: one shard per shape, up to the limits)
    shards_per_worker: Annotated[int, Field(ge=0)] = 4
    ray_address: str | None = None  # HOST:PORT of a running cluster; None: a local Ray
    cpus_per_worker: PositiveFloat = 1.0
    gpus_per_worker: NonNegFloat | None = None  # None: 1 when CUDA is present, else 0
    num_workers: PositiveInt | None = None  # local Ray only; default: the CPU count
    max_runs: PositiveInt | None = None  # a stated budget: larger sweeps need --yes


class Analysis(Strict):
    """What the sweep computes after training (none of it enters the sweep's key, so
    changing it never retrains a network)."""

    gap_eps: PositiveFloat = 1e-4  # a run is near-optimal when J - J* <= gap_eps
    pathology_max_log2: Annotated[int, Field(ge=1, le=20)] = 12  # n = 2^1 .. 2^this
    seed_pairs: Annotated[int, Field(ge=0)] = 4  # closest seed pairs per cell (0: off)
    retrain_widths: list[PositiveInt] = [8, 32]  # widths whose end points are retrained
    retrain_seeds: Annotated[int, Field(ge=0)] = 1  # trained networks per width (0: off)
    retrain_kinds: Annotated[list[Perturbation], Field(min_length=1)] = list(PERTURBATIONS)
    retrain_deltas: Annotated[list[PositiveFloat], Field(min_length=1)] = [
        1e-4,
        1e-3,
        1e-2,
        1e-1,
    ]
    retrain_steps: PositiveInt = 1000
    retrain_lr: PositiveFloat = 1e-3
    convex_samples: PositiveInt = 2000  # sampled activation patterns where not exact
    # claim 2: witnesses (free neuron, realization-space descent) of unrestricted end points
    witnesses: bool = True
    # claim 3 on trained networks (d = 1): end points of these widths, this many seeds per
    # cell, perturbed by each kind at each size (exact d_W and fibre distances)
    stability_widths: list[PositiveInt] = [8, 16]
    stability_seeds: Annotated[int, Field(ge=0)] = 4  # 0: off
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
    widths: Annotated[list[PositiveInt], Field(min_length=1)]
    seeds: PositiveInt | Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] = 8
    input_dim: PositiveInt = 1
    domain: PositiveFloat = 1.0
    data: Data = Data()
    optimizer: Optimizer = Optimizer()
    weight_decay: _grid(NonNegFloat) = 0.0
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
            if broken:
                hint = (
                    "; give this target `parametrizations: [unrestricted]`"
                    if "restricted" in (t.parametrizations or self.parametrizations)
                    else ""
                ) + ("; set optimizer.batch_size: 0" if self.optimizer.batch_size else "")
                raise ValueError(f"targets[{i}] ({t.name}): " + "; ".join(sorted(broken)) + hint)
        return self

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in e["loc"])
        loc = loc.replace(".[", "[")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {loc or '(top level)'}: {msg}")
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
