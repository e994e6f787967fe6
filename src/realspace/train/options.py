"""What a shard is trained with (``TrainOptions``) and what it leaves (``ShardResult``).

Kept apart from the loop so that the loop's helpers (omega, retrain) can name the options
without importing the loop that imports them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.restricted import MERGE_ANGLE
from ..core.spec import RunSpec

__all__ = ["TrainOptions", "ShardResult"]


@dataclass
class TrainOptions:
    """Shard-level settings (per-run settings live in RunSpec)."""

    device: str | None = None
    dtype: torch.dtype = torch.float32
    # "auto": prefix sums in d = 1, the fused Triton kernel on CUDA for 2 <= d <= 16 (Triton
    # installed), else dense (kernels.choose_objective); "prefix" (d = 1), "dense",
    # "compiled" (torch.compile of dense), "fused": always that one
    kernel: str = "auto"
    checkpoint: str | os.PathLike | None = None  # file; resumed from when it exists
    checkpoint_every: int = 0
    snapshot_every: int = 0  # keep parameter snapshots; a multiple of merge_every
    merge_every: int = 10
    kink_margin: float = 1e-3
    merge_angle: float = MERGE_ANGLE  # the census's tolerance too; float32 resolves ~1e-7
    reseed_scale: float = 1e-2
    # intrinsic restricted runs: merge (anti)parallel neurons during training every this
    # many steps; 0: only in recorded states (snapshots, the end), never in the trajectory
    intrinsic_merge_every: int = 0
    # what those merges join: "angle", pairs within merge_angle (moves the realization by
    # a stated bound); "gaps" (d = 1 MSE only), neurons whose kinks share a gap between
    # two samples, one sign: the objective on the data does not move (gap_merges)
    intrinsic_merge: str = "angle"
    # ... and only in this first share of the budget: a recycled neuron starts with fresh
    # optimizer moments, and the run needs quiet steps after the last to settle
    intrinsic_merge_until: float = 1.0


@dataclass
class ShardResult:
    """Raw end state of a shard, on the CPU in float64 (records are built from it)."""

    specs: list[RunSpec]
    params: dict  # name -> (M, ...) float64 arrays
    status: np.ndarray  # (M,) int codes, RunStatus values
    steps: np.ndarray  # optimizer steps taken per network
    diverged_step: np.ndarray  # step at which a network diverged, -1 otherwise
    history_step: np.ndarray  # (M, H) step of each loss sample, -1 unused
    history_loss: np.ndarray  # (M, H)
    counts: dict  # projection counters, (M,) int arrays
    snapshots: list = field(default_factory=list)  # (step, params dict) pairs
    dtype: str = "float32"
    device: str = "cpu"
