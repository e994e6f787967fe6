"""Per-run records: everything a trained network leaves behind, ready to log.

The math: docs/science.md#training.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from functools import lru_cache

import numpy as np

from ..core.canonical import canonical_form
from ..core.census import degeneracy_census
from ..core.nets import ShallowNet
from ..core.problem import eval_grid, make_data, network_from_params, target_on
from ..core.restricted import in_restricted_set, restricted_set_margins
from ..core.spec import RunSpec
from ..core.stacked import (
    canonical_forms,
    stacked_census,
    stacked_live,
    stacked_margins,
    stacked_mse_objective,
)
from ..core.targets import classification_scores, cross_entropy_loss
from .loop import ShardResult
from .polish import PolishInfo
from .state import RunStatus

__all__ = ["RunRecord", "build_records"]


_DEFERRED = object()  # an eval-grid field not given to the constructor: computed when read


class _OnGrid:
    """A RunRecord field on the evaluation grid, computed (with its siblings) on first read.

    Building a shard's records on a worker does not pay for the 1001-point (d = 1) or
    101^2-point (d = 2) realization; whoever reads it (artifact writing) does, once per
    record. Given to the constructor, the value is stored as it is. An unread field is
    absent from the instance's __dict__, so a pickled record carries no placeholder.
    """

    def __set_name__(self, owner, name):
        self.key = "_" + name

    def __get__(self, record, owner=None):
        if record is None:
            return _DEFERRED  # the dataclass default
        try:
            return record.__dict__[self.key]
        except KeyError:
            record._realize()
            return record.__dict__[self.key]

    def __set__(self, record, value):
        if value is _DEFERRED:
            record.__dict__.pop(self.key, None)
        else:
            record.__dict__[self.key] = value


@lru_cache(maxsize=16)
def _grid(d: int, D: float) -> np.ndarray | None:
    """eval_grid(d, D), read-only: records of one grid share the array."""
    x = eval_grid(d, D)
    if x is not None:
        x.setflags(write=False)
    return x


_TARGETS: dict = {}  # (target, params, teacher, d, D) -> the target on that grid
_TARGETS_MAX = 64


def _target(spec: RunSpec, x: np.ndarray) -> np.ndarray:
    """target_on(spec, x); on the shared grid, shared (read-only) by runs of one target."""
    if x is not _grid(spec.d, spec.D):
        return target_on(spec, x)
    key = (
        spec.target,
        spec.target_params,
        spec.teacher_width,
        spec.teacher_seed,
        spec.d,
        spec.D,
        spec.n_classes,
    )  # an m-output teacher labels the grid otherwise
    y = _TARGETS.get(key)
    if y is None:
        if len(_TARGETS) >= _TARGETS_MAX:
            _TARGETS.clear()
        y = target_on(spec, x)
        y.setflags(write=False)
        _TARGETS[key] = y
    return y


_NUMBERS = (float, int, bool)
_BOOLS = (bool, np.bool_)


@dataclass
class RunRecord:
    """The end point of one run (float64 numbers; ``dtype`` says what it trained in)."""

    spec: RunSpec
    status: str  # RunStatus label: converged | plateau | budget | diverged
    steps: int
    diverged_step: int  # -1 unless diverged
    loss: float  # full-batch data loss (MSE, logistic, cross-entropy or population)
    objective: float  # loss + weight-decay penalty
    grad_norm: float
    min_eig: float
    eig_method: str
    certified: bool  # grad_norm <= tol and min_eig >= -tol
    near_kink: bool
    min_kink_distance: float
    params: dict  # raw final parameters
    canonical: ShallowNet
    margins: dict  # restricted_set_margins of the raw final parameters
    history_step: np.ndarray
    history_loss: np.ndarray
    projections: dict  # folded / kink / merge / reseed counts (restricted runs)
    # keyword-only from here: the eval-grid fields have a default (computed when read)
    _: KW_ONLY
    eval_x: np.ndarray | None = _OnGrid()  # eval_grid(d, D), None without one (or no data)
    eval_f: np.ndarray | None = _OnGrid()  # the realization f(eval_x) (n,)
    eval_grad: np.ndarray | None = _OnGrid()  # its gradient (n, d)
    # the noiseless target (or labels) on the grid; None for spirals and mixtures
    eval_target: np.ndarray | None = _OnGrid()
    census: dict  # degeneracy census of the raw end point
    dtype: str
    device: str
    # claim 4's expressivity: the canonical form (a restricted network with the same
    # realization) scored on the run's own objective, and whether it lies in Omega_N
    canonical_objective: float = float("nan")  # NaN for the Gaussian population loss
    canonical_member: bool = False
    # classification (logistic or cross-entropy loss) on the training data, NaN for other
    # losses (targets.classification_scores): the fraction with y f(x) > 0 (m >= 3: whose
    # label is the unique argmax of f(x)) and min_k y_k f(x_k) / path_norm (m >= 3: the
    # least gap f_{y_k} - max_{j != y_k} f_j over path_norm)
    accuracy: float = float("nan")
    normalized_margin: float = float("nan")
    # the float64 polish of the end point (train.polish): the objective of the trained end
    # point before it (NaN where the run was not polished) and its L-BFGS iterations; the
    # recorded and certified end point is the polished one where that lowered J
    objective_before_polish: float = float("nan")
    polish_iterations: int = 0

    @property
    def network(self) -> ShallowNet:
        return network_from_params(self.params, self.spec.has_linear)

    def _realize(self) -> None:
        """Fill the eval-grid fields not given to the constructor.

        The grid and the target are shared, read-only, by every record of one grid and
        target (``_grid``, ``_target``); f and its gradient are this network's own.
        """
        spec, have = self.spec, self.__dict__
        if "_eval_x" not in have:
            have["_eval_x"] = _grid(spec.d, spec.D) if spec.loss != "gaussian" else None
        x = have["_eval_x"]
        net = None if x is None else self.network
        if "_eval_f" not in have:
            have["_eval_f"] = None if x is None else net(x)
        if "_eval_grad" not in have:
            have["_eval_grad"] = None if x is None else net.gradient(x)
        if "_eval_target" not in have:
            # spirals and mixtures are defined on their own points only: no grid target
            own = spec.target in ("spirals", "mixture")
            have["_eval_target"] = None if x is None or own else _target(spec, x)

    def summary(self) -> dict:
        """Scalars of the record (JSON-ready)."""
        # np.ndim of a Python number is an array conversion: they are scalars, plainly
        m = {k: v for k, v in self.margins.items() if type(v) in _NUMBERS or np.ndim(v) == 0}
        return {
            "status": self.status,
            "steps": self.steps,
            "diverged_step": self.diverged_step,
            "loss": self.loss,
            "objective": self.objective,
            "grad_norm": self.grad_norm,
            "min_eig": self.min_eig,
            "eig_method": self.eig_method,
            "certified": self.certified,
            "near_kink": self.near_kink,
            "min_kink_distance": self.min_kink_distance,
            "dtype": self.dtype,
            "device": self.device,
            "canonical_objective": self.canonical_objective,
            "canonical_member": self.canonical_member,
            "accuracy": self.accuracy,
            "normalized_margin": self.normalized_margin,
            "objective_before_polish": self.objective_before_polish,
            "polish_iterations": self.polish_iterations,
            **{f"proj_{k}": int(v) for k, v in self.projections.items()},
            **{f"census_{k}": v for k, v in self.census.items()},
            **{
                f"margin_{k}": (bool(v) if isinstance(v, _BOOLS) else float(v))
                for k, v in m.items()
            },
        }


def canonical_objective(canonical: ShallowNet, spec: RunSpec, xy) -> float:
    """The run's objective (MSE, logistic or cross-entropy loss on its data ``xy`` = (X, y)
    plus the weight-decay penalty) at its canonical form: claim 4's expressivity, as the
    canonical form is a restricted network with the run's realization (balanced, so its penalty is
    at most the run's). NaN for the Gaussian population loss."""
    if spec.loss == "gaussian":
        return float("nan")
    x, y = xy if xy is not None else make_data(spec)
    f = canonical(x)
    if spec.loss == "logistic":
        loss = float(np.mean(np.logaddexp(0.0, -y * f)))
    elif spec.loss == "cross_entropy":
        loss = cross_entropy_loss(canonical, x, y)
    else:
        loss = float(np.mean((f - y) ** 2))
    a, c = canonical.a, canonical.c
    return loss + 0.5 * spec.weight_decay * float((c * c).sum() + (a * a).sum())


def _network_fields(spec: RunSpec, params: dict, xy) -> dict:
    """The fields of one network's record that are computed from its end point, network by
    network (the reference of ``_shard_fields``): ``params`` its parameter dict, ``xy`` its
    (X, y) or None (drawn again where needed)."""
    net = network_from_params(params, spec.has_linear)
    canonical = canonical_form(net, spec.D)
    scores = (float("nan"), float("nan"))
    if spec.loss in ("logistic", "cross_entropy"):
        scores = classification_scores(net, *(make_data(spec) if xy is None else xy))
    return {
        "canonical": canonical,
        "margins": restricted_set_margins(net, spec.D),
        "census": degeneracy_census(net, spec.D, canonical=canonical),
        "canonical_objective": canonical_objective(canonical, spec, xy),
        "canonical_member": in_restricted_set(canonical, spec.D),
        "accuracy": scores[0],
        "normalized_margin": scores[1],
    }


# networks per stacked call: its (networks x N x N x (d + 1)) pairwise arrays and
# (networks x samples x N) realization stay near this many entries
_STACK_ENTRIES = 1 << 19


def _shard_fields(specs: list[RunSpec], params: dict, data: list | None) -> list[dict]:
    """``_network_fields`` of every network of a shard of scalar-output networks, equal to
    it field by field (core.stacked): the canonical forms, margins, census and MSE
    objectives computed for the networks of one domain D at once, a chunk at a time.
    Classification scores, and the objectives of the other losses, stay per network."""
    M, N, d = params["a"].shape
    n = specs[0].n_points()
    chunk = max(1, _STACK_ENTRIES // (N * N * (d + 1) + n * N))
    by_domain: dict[float, list[int]] = {}
    for m, spec in enumerate(specs):
        by_domain.setdefault(spec.D, []).append(m)
    out: list = [None] * M
    for D, members in by_domain.items():
        for lo in range(0, len(members), chunk):
            idx = members[lo : lo + chunk]
            part = [specs[m] for m in idx]
            xy = None if data is None else [data[m] for m in idx]
            for m, fields in zip(idx, _stacked_fields(part, params, idx, D, xy), strict=True):
                out[m] = fields
    return out


def _stacked_fields(specs: list[RunSpec], params: dict, idx: list[int], D: float, xy) -> list:
    """``_shard_fields`` of the networks ``idx`` of the shard's ``params`` (one domain D);
    ``specs`` and ``xy`` are theirs."""
    spec = specs[0]
    a, b, c, e = (np.asarray(params[k][idx], dtype=np.float64) for k in ("a", "b", "c", "e"))
    if spec.has_linear:
        w = np.asarray(params["w"][idx], dtype=np.float64)
    else:
        w = np.zeros((len(idx), a.shape[2]))
    canonical = canonical_forms(a, b, c, e, w, D)
    nets = ShallowNet.unstack(*canonical)
    margins = stacked_margins(a, b, c, D)
    census = stacked_census(a, b, c, D, stacked_live(*canonical[:3]))
    if spec.loss != "gaussian" and xy is None:
        xy = [make_data(s) for s in specs]
    if spec.loss == "mse":
        shared = all(x is xy[0][0] for x, _ in xy)  # one array when the runs share one
        x = xy[0][0] if shared else np.stack([x for x, _ in xy])
        y = np.stack([y for _, y in xy])
        lam = np.array([s.weight_decay for s in specs], dtype=np.float64)
        objective = stacked_mse_objective(*canonical, x, y, lam).tolist()
    else:
        objective = [
            canonical_objective(net, s, None if xy is None else xy[k])
            for k, (net, s) in enumerate(zip(nets, specs, strict=True))
        ]
    nan = float("nan")
    scores = [(nan, nan)] * len(idx)
    if spec.loss in ("logistic", "cross_entropy"):
        scores = [
            classification_scores(
                network_from_params({k: v[m] for k, v in params.items()}, s.has_linear), *xy[k]
            )
            for k, (m, s) in enumerate(zip(idx, specs, strict=True))
        ]
    margins = {k: v if k == "kink_margins" else v.tolist() for k, v in margins.items()}
    columns = {
        "canonical": nets,
        "margins": _rows(margins),
        "census": _rows({k: v.tolist() for k, v in census.items()}),
        "canonical_objective": objective,
        "canonical_member": stacked_margins(*canonical[:3], D)["member"].tolist(),
        "accuracy": [s[0] for s in scores],
        "normalized_margin": [s[1] for s in scores],
    }
    return _rows(columns)


def _rows(columns: dict[str, list]) -> list[dict]:
    """Columns of equal length -> one dict per row, its keys in the columns' order."""
    keys = list(columns)
    return [dict(zip(keys, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def build_records(
    result: ShardResult,
    certificates: list[dict],
    data: list | None = None,
    polish: PolishInfo | None = None,
) -> list[RunRecord]:
    """One record per network of ``result``; ``certificates`` from ``certify(result)``;
    ``data``: each run's (X, y) (MSE or logistic) when the caller has them (else drawn
    again); ``polish``: what ``polish(result)`` did (``result`` then holds the polished
    end points), for each record's objective_before_polish and polish_iterations.

    The fields computed from the end points (canonical form, margins, census, canonical
    objective and membership) are computed for the whole shard at once where the networks
    have scalar outputs (``_shard_fields``, equal to ``_network_fields`` network by
    network), else network by network. The canonical form is computed once and handed to
    the census; the eval-grid fields are left to be computed when first read (see
    ``_OnGrid``).
    """
    specs = result.specs
    if specs and result.params["c"].ndim == 2:
        fields = _shard_fields(specs, result.params, data)
    else:
        fields = [
            _network_fields(
                spec, {k: v[m] for k, v in result.params.items()}, None if data is None else data[m]
            )
            for m, spec in enumerate(specs)
        ]
    labels = {code: RunStatus(code).label for code in set(result.status.tolist())}
    status, steps = result.status.tolist(), result.steps.tolist()
    diverged = result.diverged_step.tolist()
    counts = {k: v.tolist() for k, v in result.counts.items()}
    if polish is None:
        polished = [{}] * len(specs)
    else:
        polished = [
            {"objective_before_polish": before, "polish_iterations": iterations}
            for before, iterations in zip(
                polish.objective_before.tolist(), polish.iterations.tolist(), strict=True
            )
        ]
    records = []
    for m, spec in enumerate(specs):
        cert = certificates[m]
        keep = result.history_step[m] >= 0
        records.append(
            RunRecord(
                spec=spec,
                status=labels[status[m]],
                steps=steps[m],
                diverged_step=diverged[m],
                loss=cert["loss"],
                objective=cert["objective"],
                grad_norm=cert["grad_norm"],
                min_eig=cert["min_eig"],
                eig_method=cert["eig_method"],
                certified=cert["certified"],
                near_kink=cert["near_kink"],
                min_kink_distance=cert["min_kink_distance"],
                params={k: v[m] for k, v in result.params.items()},
                history_step=result.history_step[m][keep],
                history_loss=result.history_loss[m][keep],
                projections={k: v[m] for k, v in counts.items()},
                dtype=result.dtype,
                device=result.device,
                **fields[m],
                **polished[m],
            )
        )
    return records
