"""The vectorized trainer: many shallow networks of one shape trained as stacked tensors.

The math: docs/science.md#training.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.problem import (
    STREAM_DATA,
    init_params,
    make_data,
    network_from_params,
    teacher_net,
    teacher_rows,
)
from ..core.spec import RunSpec, seedless
from ..core.streams import streams
from .certify import certify
from .loop import ShardResult, TrainOptions, pick_device, train_shard
from .polish import PolishInfo, polish
from .record import RunRecord, build_records
from .state import RunStatus

__all__ = [
    "RunSpec",
    "TrainOptions",
    "ShardResult",
    "RunRecord",
    "RunStatus",
    "train_shard",
    "polish",
    "PolishInfo",
    "certify",
    "build_records",
    "train_and_record",
    "pick_device",
    "init_params",
    "make_data",
    "teacher_net",
    "teacher_rows",
    "network_from_params",
]


def train_and_record(
    specs: Sequence[RunSpec],
    options: TrainOptions | None = None,
    init: Sequence[dict] | None = None,
    progress=None,
    certify_tol: float = 1e-6,
) -> list[RunRecord]:
    """Train a shard, polish its end points (where the specs ask: ``spec.polish``),
    certify them and return one record per run: the polished end point is the one
    recorded and certified, its objective before the polish kept beside it."""
    specs = list(specs)
    # certify needs the MSE runs' data again: drawn once here, not once per use
    data = _shard_data(specs) if specs and specs[0].loss != "gaussian" else None
    result = train_shard(specs, options, init=init, progress=progress, data=data)
    result, polished = polish(result, data)
    certificates = certify(result, tol=certify_tol, data=data)
    return build_records(result, certificates, data, polished)


def _shard_data(specs: list[RunSpec]) -> list[tuple]:
    """``make_data`` of each run on data, made once per distinct data set: noiseless data
    on a grid does not depend on the seed, so the seeds of one cell share one (read-only),
    and neither do spirals and mixtures (drawn from teacher_seed, label flips included).
    The shared set is the one ``make_data`` gives any of the seeds: the key only drops
    the seed where the data do not depend on it."""
    made: dict = {}  # cell -> its shared data, or None where each seed draws its own
    out, own = [], []
    for i, s in enumerate(specs):
        cell = seedless(s)
        if cell not in made:
            made[cell] = _read_only(make_data(s)) if s.shares_data else None
        out.append(made[cell])
        if made[cell] is None:
            own.append(i)
    seeds = [specs[i].seed for i in own]
    for i, rng in zip(own, streams(seeds, STREAM_DATA), strict=True):
        out[i] = _read_only(make_data(specs[i], rng))
    return out


def _read_only(data: tuple) -> tuple:
    for v in data:
        v.flags.writeable = False
    return data
