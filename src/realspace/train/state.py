"""The trainer's loop state: everything a shard carries from one step to the next.

The state is also the checkpoint: ``LoopState.save`` writes its fields and
``LoopState.load`` reads them back, so a field added here is checkpointed without a
second list to keep in step. Trainable parameters live in one flat (M, P) tensor (one
optimizer update, one masked select per step); ``Layout`` says where each named
parameter sits in it.

The math: docs/science.md#training.
"""

from __future__ import annotations

import enum
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from ..core.spec import RunSpec
from ..files import atomic_write
from . import optim
from .project import COUNTERS

__all__ = ["RunStatus", "Layout", "LoopState", "trainable_names", "HISTORY_POINTS"]

HISTORY_POINTS = 200


class RunStatus(enum.IntEnum):
    """Where a run stands; an int so that a shard keeps its runs' codes in one tensor."""

    RUNNING = 0
    CONVERGED = 1
    PLATEAU = 2
    BUDGET = 3
    DIVERGED = 4

    @property
    def label(self) -> str:
        """The record's status string: "converged", "plateau", ..."""
        return self.name.lower()


def trainable_names(spec: RunSpec) -> tuple[str, ...]:
    """The trained entries of a run's parameters, in their flat order: a; b, e (with
    biases); c (trained output weights); w (a linear part: restricted runs and unrestricted
    ones with ``linear_term``, ``spec.has_linear``)."""
    names = ["a"]
    if spec.bias:
        names += ["b", "e"]
    if spec.train_output:
        names.append("c")
    if spec.has_linear:
        names.append("w")
    return tuple(names)


@dataclass(frozen=True, eq=False)
class Layout:
    """The trainable parameters' order and per-run shapes inside the flat (M, P) tensor."""

    names: tuple[str, ...]
    shapes: dict  # name -> per-run shape
    M: int

    @classmethod
    def of(cls, spec: RunSpec, p: dict, names: tuple[str, ...] | None = None) -> Layout:
        """``names``: the trained entries of ``p`` (default: ``trainable_names(spec)``)."""
        names = names or trainable_names(spec)
        M = next(iter(p.values())).shape[0]
        return cls(names, {k: p[k].shape[1:] for k in names}, M)

    def flat(self, d: dict) -> torch.Tensor:
        """The trainable entries of ``d`` (name -> (M, ...)) as one (M, P) tensor."""
        return torch.cat([d[k].reshape(self.M, -1) for k in self.names], dim=1)

    def views(self, theta: torch.Tensor, fixed: dict) -> dict:
        """All parameters by name: views into ``theta`` plus the frozen ``fixed`` ones."""
        out, i = dict(fixed), 0
        for k in self.names:
            size = math.prod(self.shapes[k])
            out[k] = theta[:, i : i + size].view(self.M, *self.shapes[k])
            i += size
        return out


@dataclass
class LoopState:
    """A shard between two steps; tensors of M rows on the shard's device.

    ``t`` is the next step to take. ``status`` holds RunStatus codes; ``steps`` counts
    each run's own optimizer steps (a stopped run stops counting); ``best`` and
    ``best_step`` drive the plateau rule; ``hist_*`` have one spare column that
    absorbs the writes of steps that record nothing.
    """

    theta: torch.Tensor  # (M, P) trainable parameters, in Layout order
    fixed: dict  # name -> (M, ...) frozen parameters
    opt_state: dict  # optimizer state, each (M, P)
    t: int
    status: torch.Tensor
    steps: torch.Tensor
    div_step: torch.Tensor  # step at which a run diverged, -1 otherwise
    best: torch.Tensor
    best_step: torch.Tensor
    counts: dict  # projection counters (restricted runs), each (M,)
    hist_step: torch.Tensor  # (M, HISTORY_POINTS + 1), -1 unused
    hist_loss: torch.Tensor  # (M, HISTORY_POINTS + 1), nan unused

    @classmethod
    def start(cls, layout: Layout, p: dict, optimizer: str) -> LoopState:
        """Step 0 from the parameters ``p`` (name -> (M, ...))."""
        theta = layout.flat(p)
        M, device, dtype = layout.M, theta.device, theta.dtype

        def ints(fill, *shape):
            return torch.full((M, *shape), fill, dtype=torch.int64, device=device)

        return cls(
            theta=theta,
            fixed={k: v for k, v in p.items() if k not in layout.names},
            opt_state=optim.init_state(optimizer, theta),
            t=0,
            status=ints(RunStatus.RUNNING),
            steps=ints(0),
            div_step=ints(-1),
            best=torch.full((M,), float("inf"), dtype=dtype, device=device),
            best_step=ints(0),
            counts={k: ints(0) for k in COUNTERS},
            hist_step=ints(-1, HISTORY_POINTS + 1),
            hist_loss=torch.full((M, HISTORY_POINTS + 1), float("nan"), dtype=dtype, device=device),
        )

    def save(self, path: str | os.PathLike, fingerprint: list) -> None:
        """Write the state to ``path``, tagged with the shard's ``fingerprint``, through
        ``files.atomic_write``: a crash leaves the previous checkpoint intact, and two
        drivers of a shard (in the window of a lease taken over) each rename a whole
        checkpoint into place."""
        state = {"fingerprint": fingerprint, **_fields(self)}
        atomic_write(Path(path), lambda fh: torch.save(state, fh))

    @classmethod
    def load(cls, path: str | os.PathLike, fingerprint: list, device) -> LoopState:
        """The state saved at ``path``, which must carry ``fingerprint``.

        Checkpoints written before the state had this form (the trainer's loop state
        as a named structure) do not load: they are refused as written by another
        version; delete them to start the shard again.
        """
        saved = torch.load(path, map_location=device, weights_only=True)
        if saved.pop("fingerprint", None) != fingerprint:
            raise ValueError(f"checkpoint {path} belongs to a different shard")
        names = {f.name for f in fields(cls)}
        if set(saved) != names:
            raise ValueError(
                f"checkpoint {path} was written by another version of the trainer "
                f"(fields {sorted(saved)}, expected {sorted(names)})"
            )
        saved["t"] = int(saved["t"])
        return cls(**saved)


def _fields(state: LoopState) -> dict:
    # not dataclasses.asdict: that deep-copies every tensor
    return {f.name: getattr(state, f.name) for f in fields(state)}
