"""What one training run is: a frozen, hashable description of one network.

A run is fully determined by its :class:`RunSpec` (the seed included): data,
initialization and minibatch order come from generators seeded by the spec alone,
never from the shard a run is packed into.

The math: docs/science.md#training.
"""

from __future__ import annotations

import hashlib
import json
import operator
from dataclasses import dataclass, fields

import numpy as np

from .choices import (
    CLASSIFICATION_TARGETS,
    DEFAULT_RESTRICTED_METHOD,
    DEFAULT_TEACHER_ROWS,
    LOSS_KINDS,
    OPTIMIZERS,
    PARAMETRIZATIONS,
    RESTRICTED_METHODS,
    SAMPLINGS,
    TARGET_NAMES,
    TEACHER_TARGETS,
    problem_conflicts,
    target_param_problems,
)
from .constraints import RUN_CONSTRAINTS

__all__ = [
    "RunSpec",
    "target_label",
    "network_label",
    "shares_data",
    "SEED_FREE_DATA",
    "cell_of",
    "seedless",
]

# (field, its interval's test), read once per RunSpec
_RANGE_TESTS = tuple((name, interval.test) for name, interval in RUN_CONSTRAINTS.items())
# what a restricted spec stored before the method was a field was trained with
_LEGACY_RESTRICTED_METHOD = "projection"


@dataclass(frozen=True)
class RunSpec:
    """One network to train.

    Targets: a named smooth function (``"sin"``, ``"abs"``, ...; parameters in
    ``target_params`` as sorted (key, value) pairs), ``"teacher"`` (a random
    canonical teacher of width ``teacher_width`` from ``teacher_seed``), both with
    MSE on ``n_samples`` points of [-D, D]^d (``sampling`` "grid" or "uniform",
    optional Gaussian label ``noise``); a classification target (``CLASSIFICATION_TARGETS``)
    with ``n_classes`` classes: ``"teacher_labels"`` (labels sign(teacher(x)) in {-1, +1},
    sign 0 counting as +1, or argmax of an m-output teacher, on the same points),
    ``"spirals"`` or ``"mixture"`` (d = 2, drawing their own ``n_samples`` points; parameters
    ``CLASSIFICATION_PARAMS``), ``noise`` then being the probability that a label is
    replaced by another class drawn uniformly; or ``"gaussian"``: the bias-free Gaussian
    teacher-student population loss in closed form (teacher rows from ``teacher_seed``
    by the law ``teacher_rows``, one of ``TEACHER_ROWS``; output weights fixed to 1, no
    data).

    Objective: loss (``loss``: "mse", "logistic", "cross_entropy" or "gaussian")
    + weight_decay * (1/2) sum_i (c_i^2 + ||a_i||^2).
    ``batch_size`` 0 means full batch. Stopping: gradient norm <= ``grad_tol``, no
    relative improvement of ``plateau_rel_tol`` over ``plateau_patience`` steps
    (0 disables), or ``steps``.

    ``restricted_method``: how a restricted run stays in Omega_N (``RESTRICTED_METHODS``;
    empty means ``DEFAULT_RESTRICTED_METHOD``). An unrestricted run has none: the field
    reads "" whatever was given, and ``to_dict`` leaves it out, so an unrestricted run's
    key is the one it had before the field existed. Likewise ``teacher_rows`` (only the
    gaussian target takes another than ``DEFAULT_TEACHER_ROWS``) is in ``to_dict`` only
    when it is not the default: i.i.d. Gaussian rows keep the keys they had before it; and
    ``n_classes`` only when it is not 2.

    ``linear_term``: an unrestricted run whose linear part w trains like the restricted
    model's (f = sum c_i rho(<a_i, x> + b_i) + <w, x> + e): at equal width the two realize
    the same functions on the cube, the comparison claim 4 needs. Read False for restricted
    runs. ``polish``: the size of a float64 full-batch polish of the end point on the same
    objective (0: none): up to ``polish`` L-BFGS iterations, ``10 polish`` decaying-step
    iterations, L-BFGS again (``train.polish``). Both are in ``to_dict`` only when set, so the runs
    without them keep their keys.
    """

    target: str = "sin"
    target_params: tuple = ()
    teacher_width: int = 4
    teacher_seed: int = 0
    d: int = 1
    D: float = 1.0
    n_samples: int = 256
    sampling: str = "grid"
    noise: float = 0.0
    parametrization: str = "unrestricted"
    width: int = 16
    bias: bool = True
    train_output: bool = True
    optimizer: str = "adam"
    lr: float = 1e-2
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    steps: int = 1000
    batch_size: int = 0
    grad_tol: float = 0.0
    plateau_patience: int = 0
    plateau_rel_tol: float = 1e-6
    init_scale: float = 1.0
    seed: int = 0
    restricted_method: str = ""
    teacher_rows: str = DEFAULT_TEACHER_ROWS
    n_classes: int = 2
    linear_term: bool = False
    polish: int = 0

    def __post_init__(self):
        def bad(msg):
            raise ValueError(f"RunSpec: {msg}")

        # normalized, not refused: replace(spec, parametrization=...) must keep working
        # read False where it means nothing: a restricted run's affine part is always
        # free, and the Gaussian teacher-student model has no affine part at all
        if self.parametrization == "restricted" or LOSS_KINDS.get(self.target) == "gaussian":
            object.__setattr__(self, "linear_term", False)
        if self.parametrization != "restricted":
            object.__setattr__(self, "restricted_method", "")
        elif not self.restricted_method:
            object.__setattr__(self, "restricted_method", DEFAULT_RESTRICTED_METHOD)
        elif self.restricted_method not in RESTRICTED_METHODS:
            bad(
                f"restricted_method must be one of {RESTRICTED_METHODS}, "
                f"got {self.restricted_method!r}"
            )

        if self.target not in LOSS_KINDS:
            bad(f"unknown target {self.target!r}; known: {', '.join(TARGET_NAMES)}")
        if self.parametrization not in PARAMETRIZATIONS:
            bad(f"parametrization must be one of {PARAMETRIZATIONS}, got {self.parametrization!r}")
        if self.optimizer not in OPTIMIZERS:
            bad(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.sampling not in SAMPLINGS:
            bad(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        for name, test in _RANGE_TESTS:
            if not test(getattr(self, name)):
                interval = RUN_CONSTRAINTS[name]
                bad(f"{name} must be {interval.describe()}, got {getattr(self, name)}")
        for broken in problem_conflicts(
            self.target,
            self.parametrization,
            self.batch_size,
            self.teacher_rows,
            self.d,
            self.teacher_width,
            self.noise,
            self.n_classes,
        ):
            bad(broken)
        if self.loss == "gaussian" and (self.bias or self.train_output):
            bad(
                "the Gaussian teacher-student model has no biases and output weights fixed "
                "to 1: set bias=False, train_output=False"
            )
        for broken in target_param_problems(self.target, dict(self.target_params), self.d, self.D):
            bad(broken)

    @property
    def loss(self) -> str:
        """``"mse"``, ``"logistic"``, ``"cross_entropy"`` or ``"gaussian"``."""
        kind = LOSS_KINDS[self.target]
        return "cross_entropy" if kind == "logistic" and self.n_classes > 2 else kind

    @property
    def classification(self) -> bool:
        """True for the logistic and cross-entropy losses (labels, not values)."""
        return self.target in CLASSIFICATION_TARGETS

    @property
    def outputs(self) -> int:
        """Output components m of the network: n_classes under cross-entropy, else 1."""
        return self.n_classes if self.loss == "cross_entropy" else 1

    @property
    def restricted(self) -> bool:
        return self.parametrization == "restricted"

    @property
    def has_linear(self) -> bool:
        """Whether the linear part w trains: restricted runs, and unrestricted runs with
        ``linear_term`` (the plain unrestricted network has w = 0 fixed)."""
        return self.restricted or self.linear_term

    @property
    def shares_data(self) -> bool:
        """Whether every seed of this run's cell trains on the same data set
        (``shares_data``)."""
        return bool(shares_data(self.target, self.sampling, self.noise))

    def n_points(self) -> int:
        """Number of training points (0 for the Gaussian population loss)."""
        if self.loss == "gaussian":
            return 0
        if self.target in ("spirals", "mixture"):  # they draw their own points
            return self.n_samples
        if self.sampling == "grid":
            return max(2, round(self.n_samples ** (1.0 / self.d))) ** self.d
        return self.n_samples

    def shape_key(self) -> tuple:
        """Runs with equal keys train together in one shard (same tensor shapes and code path)."""
        return (
            self.loss,
            self.d,
            self.width,
            self.n_points(),
            self.teacher_width if self.loss == "gaussian" else 0,
            self.batch_size,
            self.parametrization,
            self.optimizer,
            self.bias,
            self.train_output,
            self.restricted_method,
            self.outputs,
            self.linear_term,
        )

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (target_params as a mapping); ``restricted_method`` only
        for restricted runs and ``teacher_rows`` only when not the default (the dicts, hence
        the keys, of the runs without them predate these fields)."""
        out = {name: getattr(self, name) for name in _FIELD_NAMES}
        out["target_params"] = dict(self.target_params)
        if not self.restricted:
            del out["restricted_method"]
        if self.teacher_rows == DEFAULT_TEACHER_ROWS:
            del out["teacher_rows"]
        if self.n_classes == 2:
            del out["n_classes"]
        if not self.linear_term:
            del out["linear_term"]
        if not self.polish:
            del out["polish"]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> RunSpec:
        """The inverse of ``to_dict``; unknown keys are an error."""
        unknown = set(data) - set(_FIELD_NAMES)
        if unknown:
            raise ValueError(f"RunSpec: unknown fields {sorted(unknown)}")
        data = dict(data)
        method = data.pop("restricted_method", None)
        if isinstance(method, str) and method:  # a table's missing value reads NaN
            data["restricted_method"] = method
        elif data.get("parametrization") == "restricted":
            # stored before the method was a field: those runs were projected
            data["restricted_method"] = _LEGACY_RESTRICTED_METHOD
        rows = data.pop("teacher_rows", None)
        if isinstance(rows, str) and rows:  # a table's missing value reads NaN
            data["teacher_rows"] = rows
        classes = data.pop("n_classes", None)
        if classes is not None and classes == classes:  # NaN: a binary run beside others
            data["n_classes"] = int(classes)
        # a table's missing value (a run stored without the field, beside others) reads NaN
        linear = data.pop("linear_term", None)
        if linear is not None and linear == linear:
            data["linear_term"] = bool(linear)
        polish = data.pop("polish", None)
        if polish is not None and polish == polish:
            data["polish"] = int(polish)
        if isinstance(data.get("target_params"), dict):
            data["target_params"] = tuple(sorted(data["target_params"].items()))
        return cls(**data)

    @classmethod
    def from_row(cls, row) -> RunSpec:
        """The spec of a table row (a mapping or a pandas row holding every spec field and
        any other columns, which are ignored)."""
        return cls.from_dict({k: row[k] for k in _FIELD_NAMES if k in row})

    @classmethod
    def from_flat(cls, flat: dict[str, str]) -> RunSpec:
        """The inverse of ``flat()``: string values typed by the field's default, and
        ``target_params.<name>`` keys gathered (keys that are no spec field are ignored)."""
        data: dict = {"target_params": {}}
        for key, text in flat.items():
            if key.startswith("target_params."):
                data["target_params"][key.split(".", 1)[1]] = float(text)
            elif key in _FIELD_TYPES:
                kind = _FIELD_TYPES[key]
                data[key] = (text == "True") if kind is bool else kind(text)
        return cls.from_dict(data)

    def flat(self) -> dict[str, str]:
        """Every field as a string, ``target_params`` spread as ``target_params.<name>``:
        the form a tracking store keeps as run parameters."""
        out = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                out.update({f"{key}.{k}": str(v) for k, v in value.items()})
            else:
                out[key] = str(value)
        return out


_FIELD_NAMES = tuple(f.name for f in fields(RunSpec))
_SEEDLESS = operator.attrgetter(*(name for name in _FIELD_NAMES if name != "seed"))
_FIELD_TYPES = {f.name: type(f.default) for f in fields(RunSpec) if f.name != "target_params"}


def target_label(spec: RunSpec) -> str:
    """Readable name of a run's problem, e.g. ``sin``, ``sin(freq=2.0)``,
    ``teacher(k=4,s=0,d=1)``, ``teacher_labels(k=4,s=0,d=2)``, ``teacher_labels(k=4,s=0,d=2,m=3)``
    (classes, when not 2), ``spirals(m=3)``,
    ``gaussian(k=6,s=0,d=6,V=identity)`` (teacher rows, when not the default),
    ``sin wd=0.01`` (weight decay, when nonzero)."""
    wd = f" wd={spec.weight_decay:g}" if spec.weight_decay else ""
    # (label noise is no part of the label: a sweep that varies it names it per problem,
    # stats.PROBLEM_AXES, as for noise on values)
    extra = f",m={spec.n_classes}" if spec.n_classes != 2 else ""
    if spec.target in (*TEACHER_TARGETS, "gaussian"):
        rows = "" if spec.teacher_rows == DEFAULT_TEACHER_ROWS else f",V={spec.teacher_rows}"
        return (
            f"{spec.target}(k={spec.teacher_width},s={spec.teacher_seed},d={spec.d}{rows}"
            f"{extra}){wd}"
        )
    if spec.target in ("spirals", "mixture") and spec.teacher_seed:  # their data set's seed
        extra = f",s={spec.teacher_seed}{extra}"
    params = ",".join([f"{k}={v}" for k, v in spec.target_params] + ([extra[1:]] if extra else []))
    return (f"{spec.target}({params})" if params else spec.target) + wd


# targets whose data set does not depend on the run's seed: the population loss has no
# sample, spirals and mixtures draw theirs (label flips included) from teacher_seed
SEED_FREE_DATA = ("gaussian", "spirals", "mixture")


def shares_data(target, sampling, noise):
    """Whether every seed of a cell trains on one data set, so that their objectives
    compare (spurious minima, paired tests): grid points without noise, or a target in
    ``SEED_FREE_DATA``. Uniform points and value or label noise are drawn from the run's
    own seed. Elementwise on arrays (pandas columns) as on scalars."""
    own = np.isin(target, SEED_FREE_DATA)
    return own | ((np.asarray(sampling) == "grid") & (np.asarray(noise, dtype=float) == 0))


def network_label(spec: RunSpec) -> str:
    """A short stable name of one trained network in the analysis stages' rows: its
    problem, width and seed, and a hash of its whole spec (other axes apart)."""
    digest = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()
    return f"{target_label(spec)} w{spec.width} s{spec.seed} {digest[:8]}"


def seedless(spec: RunSpec) -> tuple:
    """Every field of ``spec`` but its seed, as a tuple: equal for the seeds of one
    configuration (what a shard groups by, at a microsecond a spec; ``replace(spec,
    seed=0)`` would check every field again)."""
    return _SEEDLESS(spec)


def cell_of(spec: RunSpec) -> tuple[str, str, int]:
    """The statistics cell of a run: (target, parametrization, width)."""
    return target_label(spec), spec.parametrization, spec.width
