"""What a shard trains on: each run's settings as tensors over the shard, its minibatches,
and its objective at a given step.

The math: docs/science.md#training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter

import numpy as np
import torch

from ..core.problem import STREAM_BATCH, make_data, teacher_rows
from ..core.spec import RunSpec
from ..core.streams import streams
from .project import seed_tensor
from .state import HISTORY_POINTS

__all__ = ["RunTensors", "Batches", "Problem", "stack"]


def stack(items, fn, device, dtype):
    return torch.as_tensor(np.stack([fn(s) for s in items]), dtype=dtype, device=device)


@dataclass(frozen=True, eq=False)
class RunTensors:
    """Each run's own settings as tensors over the shard, built once."""

    hyper: dict  # (M, 1) lr, momentum, beta1, beta2, eps, as optim.step takes them
    lam: torch.Tensor  # weight decay
    D: torch.Tensor  # half-width of the cube Q (restricted runs)
    grad_tol: torch.Tensor
    rel_tol: torch.Tensor  # plateau: the relative improvement that counts
    budget: torch.Tensor  # steps
    patience: torch.Tensor  # plateau: steps without improvement, 0 for never
    every: torch.Tensor  # stride of the loss history
    seeds: torch.Tensor  # mixed seeds of the reseeding draws
    rows: torch.Tensor  # 0 .. M-1
    horizon: int  # the longest budget, in steps

    @classmethod
    def of(cls, specs: Sequence[RunSpec], device, dtype) -> RunTensors:
        # each setting read in one pass over the specs (a shard may hold 100,000)
        floats = ("lr", "momentum", "beta1", "beta2", "eps", "weight_decay", "D", "grad_tol",
                  "plateau_rel_tol")  # fmt: skip
        f = torch.tensor(list(map(attrgetter(*floats), specs)), dtype=dtype, device=device)
        # a tensor each (a compiled graph copies an input that does not start aligned)
        f = {k: f[:, i].contiguous() for i, k in enumerate(floats)}
        ints = attrgetter("steps", "plateau_patience", "seed")
        steps, patience, seeds = (list(c) for c in zip(*map(ints, specs), strict=True))
        budget = torch.tensor(steps, device=device)
        return cls(
            hyper={k: f[k][:, None] for k in ("lr", "momentum", "beta1", "beta2", "eps")},
            lam=f["weight_decay"],
            D=f["D"],
            grad_tol=f["grad_tol"],
            rel_tol=f["plateau_rel_tol"],
            budget=budget,
            patience=torch.tensor(patience, device=device),
            every=torch.clamp(-(-budget // HISTORY_POINTS), min=1),
            seeds=seed_tensor(seeds, device),
            rows=torch.arange(len(specs), device=device),
            horizon=max(steps),
        )


class Batches:
    """Per-run minibatch order: a permutation per epoch from the run's own stream."""

    def __init__(self, specs, n, device):
        self.specs, self.n, self.device = specs, n, device
        self.size = specs[0].batch_size
        self.per_epoch = max(1, n // self.size) if self.size else 1
        self.epoch, self.perm = -1, None

    def indices(self, t: int) -> torch.Tensor | None:
        if not self.size or self.size >= self.n:
            return None
        epoch, pos = divmod(t, self.per_epoch)
        if epoch != self.epoch:
            seeds = [s.seed for s in self.specs]
            perms = [rng.permutation(self.n) for rng in streams(seeds, STREAM_BATCH, epoch)]
            self.perm = torch.as_tensor(np.stack(perms), device=self.device)
            self.epoch = epoch
        # sorted indices keep a d = 1 batch sorted (the loss does not depend on order)
        return torch.sort(self.perm[:, pos * self.size : (pos + 1) * self.size], dim=1).values


class Problem:
    """Each run's objective at step t: on its minibatch of (X, y), or on its teacher rows."""

    def __init__(self, specs, objective: Callable, data, device, dtype):
        self.objective = objective
        self.gaps = None  # d = 1 intrinsic runs with gap merges: sorted (samples, targets)
        if specs[0].loss != "gaussian":  # a loss on data: MSE or logistic
            data = data or [make_data(s) for s in specs]
            self.X = stack(data, lambda xy: xy[0], device, dtype)
            self.Y = stack(data, lambda xy: xy[1], device, dtype)
            self.batches = Batches(specs, self.X.shape[1], device)
        else:
            self.V = stack(specs, teacher_rows, device, dtype)
            self.batches = None

    def data(self, t: int) -> tuple:
        """What the objective reads at step t besides the parameters and lam: (X, Y) of
        each run's minibatch, or (V,) its teacher rows."""
        if self.batches is None:
            return (self.V,)
        X, Y, idx = self.X, self.Y, self.batches.indices(t)
        if idx is not None:
            X = torch.gather(X, 1, idx[..., None].expand(-1, -1, X.shape[2]))
            Y = torch.gather(Y, 1, idx)
        return X, Y

    def __call__(self, p: dict, lam: torch.Tensor, t: int):
        return self.objective(p, *self.data(t), lam)
