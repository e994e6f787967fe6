"""From a validated config to runs (one network each, with a stable key) and shards.

A run key is the SHA-256 of the run's resolved spec (sorted JSON) and the science
version: the same config gives the same keys in any process, on any machine, and
a change of code that alters results changes every key.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .. import SCIENCE_VERSION
from ..core.choices import BY_WIDTH, DEFAULT_TEACHER_ROWS, LOSS_KINDS, method_for_width
from ..core.spec import RunSpec
from .config import SweepConfig
from .memory import default_budget, networks_per_shard

__all__ = [
    "Plan",
    "PlannedCell",
    "PlannedRun",
    "Segment",
    "Shard",
    "cell_key",
    "plan_cells",
    "plan_runs",
    "check_plan_size",
    "PlanTooLarge",
    "pack_shards",
    "network_work",
    "run_key",
    "sweep_key",
]


def _digest(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def run_key(spec: RunSpec) -> str:
    """Stable identity of one run: hash of its resolved spec and the science version."""
    return _digest({"science_version": SCIENCE_VERSION, "run": spec.to_dict()})[:24]


def cell_key(spec: RunSpec) -> str:
    """Identity of a run's tracking cell: the networks of a sweep that differ only by seed
    (target, parametrization, width and grid point: one MLflow run holds them)."""
    return _cell_key(_with_seed(spec, 0))


@functools.lru_cache(maxsize=4096)
def _cell_key(spec: RunSpec) -> str:  # computed once per cell, not once per seed
    science = {k: v for k, v in spec.to_dict().items() if k != "seed"}
    return _digest({"science_version": SCIENCE_VERSION, "cell": science})[:16]


_SEED = "\x00seed\x00"  # a placeholder no spec field can hold


def _seeded_keys(base: RunSpec, seeds: list[int]):
    """(seed, run_key) of ``base`` with each seed: the spec's JSON is built once with a
    placeholder for the seed, then filled in (the same text, hence the same key, as
    ``run_key`` of each spec; a sweep of 100k seeds plans in a second, not a minute)."""
    doc = {"science_version": SCIENCE_VERSION, "run": {**base.to_dict(), "seed": _SEED}}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    hole = json.dumps(_SEED)
    assert text.count(hole) == 1
    head, tail = text.split(hole)
    for seed in seeds:
        digest = hashlib.sha256(f"{head}{json.dumps(int(seed))}{tail}".encode()).hexdigest()
        yield seed, digest[:24]


def _with_seed(base: RunSpec, seed: int) -> RunSpec:
    """``base`` with another seed. A seed never makes a valid spec invalid, so the
    checks of ``RunSpec.__post_init__`` are not run again for each of thousands."""
    spec = copy.copy(base)
    object.__setattr__(spec, "seed", int(seed))
    return spec


def sweep_key(cfg: SweepConfig) -> str:
    """Identity of a sweep: its science axes (execution and tracking settings excluded)."""
    science = cfg.model_dump(mode="json", exclude={"execution", "tracking", "analysis"})
    for target in science["targets"]:  # the default rows: the key a sweep had before them
        if target["teacher_rows"] == DEFAULT_TEACHER_ROWS:
            del target["teacher_rows"]
        for field, default in (("n_classes", 2), ("noise", None)):  # fields added later
            if target[field] == default:
                del target[field]
    # fields added later, at their defaults: the key a sweep had before them
    if not science["linear_term"]:
        del science["linear_term"]
    if science["optimizer"]["polish"] == "auto":
        del science["optimizer"]["polish"]
    if not any("restricted" in (t.parametrizations or cfg.parametrizations) for t in cfg.targets):
        del science["restricted_methods"]  # an axis of restricted runs only
    return _digest({"science_version": SCIENCE_VERSION, "sweep": science})[:24]


@dataclass(frozen=True)
class PlannedRun:
    key: str
    spec: RunSpec


@dataclass(frozen=True)
class PlannedCell:
    """The networks of a sweep that differ only by seed: ``spec`` (seed 0) with each of
    ``seeds`` (a range, or a tuple). Run keys and per-seed specs are built when asked for,
    a cell at a time: a plan holds cells, never a list of its networks."""

    key: str  # cell_key(spec)
    spec: RunSpec
    seeds: Sequence[int]

    @classmethod
    def of(cls, spec: RunSpec, seeds: Sequence[int]) -> PlannedCell:
        base = _with_seed(spec, 0)
        return cls(cell_key(base), base, seeds)

    def __len__(self) -> int:
        return len(self.seeds)

    def keys(self, seeds: Sequence[int] | None = None) -> list[str]:
        """The run keys of ``seeds`` (default: the cell's), in their order."""
        return [k for _, k in _seeded_keys(self.spec, self.seeds if seeds is None else seeds)]

    def found(self, stored) -> np.ndarray:
        """Which of the cell's seeds are among ``stored`` (seeds found in its tables), a
        bool per seed. A cell's run key is its spec's and its seed's: a stored seed is a
        stored key, with no key hashed."""
        if stored is None or not len(stored):
            return np.zeros(len(self.seeds), bool)
        return np.isin(np.asarray(self.seeds, dtype=np.int64), np.asarray(stored, np.int64))

    def runs(self, seeds: Sequence[int] | None = None) -> Iterator[PlannedRun]:
        """The PlannedRuns of ``seeds`` (default: the cell's), built one by one."""
        seeds = self.seeds if seeds is None else seeds
        for seed, key in _seeded_keys(self.spec, seeds):
            yield PlannedRun(key, _with_seed(self.spec, seed))


@dataclass(frozen=True)
class Plan:
    """A sweep's cells, in plan order. Iterating it builds its PlannedRuns one by one
    (cell by cell, seeds in order): what a small sweep's callers need, at no memory."""

    cells: tuple[PlannedCell, ...]

    def __len__(self) -> int:
        return sum(len(c) for c in self.cells)

    def __iter__(self) -> Iterator[PlannedRun]:
        for cell in self.cells:
            yield from cell.runs()

    def segments(self) -> list[Segment]:
        """Every cell whole, as the segments ``pack_shards`` takes."""
        return [Segment(c, c.seeds) for c in self.cells]


@dataclass(frozen=True)
class Segment:
    """Some seeds of one cell: the unit shards are cut from."""

    cell: PlannedCell
    seeds: Sequence[int]

    def __len__(self) -> int:
        return len(self.seeds)


@dataclass(frozen=True)
class Shard:
    """Runs of one shape trained together on one device: seeds of one or more cells."""

    id: str
    segments: tuple[Segment, ...]

    def __len__(self) -> int:
        return sum(len(s) for s in self.segments)

    @property
    def runs(self) -> list[PlannedRun]:
        """Its PlannedRuns (keys hashed here: a shard at a time, not a sweep)."""
        return [r for s in self.segments for r in s.cell.runs(s.seeds)]

    @property
    def specs(self) -> list[RunSpec]:
        return [r.spec for r in self.runs]


# driver memory per planned run when a plan is expanded into PlannedRuns (``plan_runs``):
# a RunSpec, its key and PlannedRun, 1.85 kB measured with tracemalloc on 100,000 runs
PLAN_BYTES_PER_RUN = 1900


class PlanTooLarge(ValueError):
    """A sweep whose plan would not fit in the memory available to the driver."""


def check_plan_size(cfg: SweepConfig, available: int | None = None) -> None:
    """Raise PlanTooLarge, before anything is planned, when the sweep's runs
    (``SweepConfig.run_count``, from the axes alone) would take more than ``available``
    bytes (default: half the memory available here) to expand into PlannedRuns."""
    runs = cfg.run_count()
    need = runs * PLAN_BYTES_PER_RUN
    available = default_budget("cpu") if available is None else available
    if need > available:
        raise PlanTooLarge(
            f"the sweep's {runs:,} networks would need about {need / 2**30:.1f} "
            f"GiB of memory to plan, more than the {available / 2**30:.1f} GiB at hand "
            "here; split it into several sweeps (fewer seeds or widths)"
        )


def plan_runs(cfg: SweepConfig) -> list[PlannedRun]:
    """Every run of the sweep as a PlannedRun, in plan order, keys unique: ``plan_cells``
    expanded, for a caller that wants the networks one by one in memory (tests, small
    sweeps). Raises PlanTooLarge first when they would not fit (``check_plan_size``)."""
    check_plan_size(cfg)
    return list(plan_cells(cfg))


def plan_cells(cfg: SweepConfig) -> Plan:
    """The sweep's cells, in a deterministic order, each once. Cells, not networks: a
    sweep of 10^7 networks plans in milliseconds, in the memory of its few cells."""
    opt, data, stop = cfg.optimizer, cfg.data, cfg.stopping
    seeds = range(cfg.seeds) if isinstance(cfg.seeds, int) else tuple(cfg.seeds)

    def axis(v):
        return v if isinstance(v, list) else [v]

    cells: dict[str, PlannedCell] = {}
    for t in cfg.targets:
        gaussian = t.name == "gaussian"
        common = dict(
            target=t.name,
            target_params=tuple(sorted(t.params.items())),
            teacher_width=t.teacher_width,
            teacher_seed=t.teacher_seed,
            teacher_rows=t.teacher_rows,
            d=t.input_dim or cfg.input_dim,
            D=cfg.domain,
            n_samples=data.n_samples,
            sampling=data.sampling,
            noise=data.noise if t.noise is None else t.noise,
            n_classes=t.n_classes,
            bias=not gaussian,
            train_output=not gaussian,
            momentum=opt.momentum,
            beta1=opt.beta1,
            beta2=opt.beta2,
            batch_size=opt.batch_size,
            init_scale=opt.init_scale,
            grad_tol=stop.grad_tol,
            plateau_patience=stop.plateau_patience,
            plateau_rel_tol=stop.plateau_rel_tol,
        )
        grid = itertools.product(
            t.parametrizations or cfg.parametrizations,
            t.widths or cfg.widths,
            axis(opt.kind),
            axis(opt.lr),
            axis(opt.steps),
            axis(cfg.weight_decay if t.weight_decay is None else t.weight_decay),
        )
        loss = LOSS_KINDS[t.name]  # the polish's rule tells only the population loss apart
        for par, width, kind, lr, steps, wd in grid:
            polish = opt.polish_steps(wd, loss)
            for method in cfg.restricted_methods if par == "restricted" else [""]:
                cell = PlannedCell.of(
                    RunSpec(
                        **common,
                        parametrization=par,
                        restricted_method=method_for_width(width) if method == BY_WIDTH else method,
                        width=width,
                        optimizer=kind,
                        lr=lr,
                        steps=steps,
                        weight_decay=wd,
                        linear_term=cfg.linear_term,  # read False for restricted runs
                        polish=polish,
                    ),
                    seeds,
                )
                # two points of the axes may resolve to the same spec, hence the same
                # cell: the same runs, seed for seed (every cell has the sweep's seeds)
                cells.setdefault(cell.key, cell)
    return Plan(tuple(cells.values()))


def network_work(spec: RunSpec) -> float:
    """Relative cost of training one network of ``spec``, for balancing shards (a model,
    not a timing): per step, the objective over its batch (``B (d + 1) N`` for the dense
    kernel, ``B + N log2 B`` for d = 1's prefix sums) and the update of its P parameters;
    a restricted run adds its method's work: the map to (a, b, c) and back in intrinsic
    coordinates (O(P)), or the projection (O(N) every step and a pairwise check of its
    neurons every tenth, ``N^2 (d + 1) / 10``). bench/RESULTS.md has the measured ratios."""
    N, d = spec.width, spec.d
    n = spec.n_points()
    B = spec.batch_size if spec.batch_size and spec.batch_size < n else n
    P = N * (d + 2) + d + 1
    objective = B + N * max(1.0, math.log2(B)) if d == 1 else B * (d + 1) * N
    step = objective + 4 * P
    if spec.restricted and spec.restricted_method == "projection":
        step += 8 * N + N * N * (d + 1) / 10
    elif spec.restricted:
        step += 2 * P
    return spec.steps * step


# A shape is split for balance only into parts of at least this much work (about a second
# and a half of training on one CPU core here): each shard costs a task, 0.3-0.8 s of
# Prefect's bookkeeping on a worker, which a smaller part would not repay.
MIN_SPLIT = 1e7


def pack_shards(
    segments,
    budget_bytes: int,
    max_size: int = 4096,
    dtype="float32",
    *,
    workers: int = 1,
    per_worker: int = 4,
) -> list[Shard]:
    """Group ``segments`` (a Plan's ``segments()``, or the seeds of each cell still to
    train) by shape; split each group into shards that fit ``budget_bytes`` and, where a
    group is more work than its share, into about equal parts: the sweep's work
    (``network_work``) over ``per_worker * workers`` shards at least, so that no shard
    holds the workers up at the end (a group under that share stays one shard: each shard
    costs a task and a Python loop of its own). Shards come largest first, the order in
    which they should be started (longest processing time first); ``per_worker`` 0 keeps
    each group whole up to the limits. Works on seed counts: no run key is hashed here."""
    groups: dict[tuple, list[Segment]] = defaultdict(list)
    for s in segments:
        if len(s):
            groups[s.cell.spec.shape_key()].append(s)
    work = {
        shape: sum(network_work(s.cell.spec) * len(s) for s in members)
        for shape, members in groups.items()
    }
    share = sum(work.values()) / (per_worker * workers) if per_worker else math.inf
    shards = []
    for shape, members in groups.items():
        total = sum(len(s) for s in members)
        first = members[0].cell.spec
        size = min(max_size, networks_per_shard(first, budget_bytes, dtype))
        balance = min(total, round(work[shape] / share), int(work[shape] // MIN_SPLIT))
        parts = max(math.ceil(total / size), balance, 1)
        loss, d, width = shape[0], shape[1], shape[2]
        label = f"{loss}-d{d}-w{width}-{first.parametrization[0]}{first.restricted_method[:1]}"
        for i in range(parts):  # sizes differ by one at most
            part = _cut(members, i * total // parts, (i + 1) * total // parts)
            tag = _digest([[s.cell.key, _seed_text(s.seeds)] for s in part])[:8]
            shard = Shard(f"{label}-{i:04d}-{tag}", part)
            shards.append((len(shard) * work[shape] / total, shard))
    shards.sort(key=lambda ws: -ws[0])  # stable: equal work keeps the plan's order
    return [s for _, s in shards]


def _cut(segments: list[Segment], lo: int, hi: int) -> tuple[Segment, ...]:
    """Seeds ``lo`` to ``hi`` of the concatenated ``segments``, as segments."""
    out, start = [], 0
    for s in segments:
        end = start + len(s)
        a, b = max(lo, start), min(hi, end)
        if a < b:
            out.append(Segment(s.cell, s.seeds[a - start : b - start]))
        start = end
    return tuple(out)


def _seed_text(seeds: Sequence[int]):
    """Seeds as JSON-able text, a range in three numbers."""
    if isinstance(seeds, range):
        return [seeds.start, seeds.stop, seeds.step]
    return list(seeds)
