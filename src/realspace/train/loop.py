"""Train a shard: M networks of one shape, stacked, on one device.

float32 by default (stated in every record), float64 on request. Each network has
its own hyperparameters, step budget, stopping rule and status; a finished or
diverged network stops changing while the others go on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import optim
from .kernels import choose_objective
from .model import gaussian_objective
from ..problem import PARAM_NAMES, STREAM_BATCH, init_params, make_data, rng_for, teacher_rows
from .project import COUNTERS, project_restricted, rebalance, seed_tensor
from ..spec import RunSpec
from .state import RunStatus

__all__ = ["TrainOptions", "ShardResult", "train_shard", "pick_device"]

RUNNING, CONVERGED, PLATEAU, BUDGET, DIVERGED = RunStatus
HISTORY_POINTS = 200


def pick_device(device: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class TrainOptions:
    """Shard-level settings (per-run settings live in RunSpec)."""

    device: str | None = None
    dtype: torch.dtype = torch.float32
    # "auto": the fused Triton kernel on CUDA (d <= 16, Triton installed), else prefix sums in
    # d = 1 and dense elsewhere; "prefix" (d = 1), "dense", "compiled" (torch.compile of
    # dense), "fused": always that one
    kernel: str = "auto"
    checkpoint: str | os.PathLike | None = None  # file; resumed from when it exists
    checkpoint_every: int = 0
    snapshot_every: int = 0  # keep parameter snapshots; a multiple of merge_every
    merge_every: int = 10
    kink_margin: float = 1e-3
    merge_angle: float = 1e-6  # float32 resolves about 1e-7; wide nets have close kinks
    reseed_scale: float = 1e-2


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


def trainable_names(spec: RunSpec) -> tuple[str, ...]:
    names = ["a"]
    if spec.bias:
        names += ["b", "e"]
    if spec.train_output:
        names.append("c")
    if spec.restricted:
        names.append("w")
    return tuple(names)


def _stack(specs, fn, device, dtype):
    return torch.as_tensor(np.stack([fn(s) for s in specs]), dtype=dtype, device=device)


def _check_shard(specs: Sequence[RunSpec]):
    if not specs:
        raise ValueError("a shard needs at least one run")
    keys = {s.shape_key() for s in specs}
    if len(keys) > 1:
        raise ValueError(f"a shard must hold runs of one shape; got {len(keys)} shapes: {keys}")


class _Batches:
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
            perms = [rng_for(s.seed, STREAM_BATCH, epoch).permutation(self.n) for s in self.specs]
            self.perm = torch.as_tensor(np.stack(perms), device=self.device)
            self.epoch = epoch
        # sorted indices keep a d = 1 batch sorted (the loss does not depend on order)
        return torch.sort(self.perm[:, pos * self.size : (pos + 1) * self.size], dim=1).values


def _to_numpy(p: dict, restricted: bool) -> dict:
    """float64 copies; restricted runs are rebalanced again in float64 (an exact
    symmetry), so that |c_i| = ||a_i|| holds to float64 rounding, not float32's."""
    p = {k: v.detach().to("cpu", torch.float64) for k, v in p.items()}
    if restricted:
        p = rebalance(p, torch.ones(p["a"].shape[0], dtype=torch.bool))
    return {k: v.numpy().copy() for k, v in p.items()}


def train_shard(
    specs: Sequence[RunSpec],
    options: TrainOptions | None = None,
    init: Sequence[dict] | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    data: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> ShardResult:
    """Train every run of ``specs`` (one shape) together.

    ``init`` optionally gives each run's starting parameters (dicts of arrays as
    returned by ``init_params``); otherwise they come from the run's seed. ``data``
    optionally replaces each MSE run's (X, y) (same shapes; sorted by x when d = 1), for
    fitting targets that are not named functions (the retraining experiment).
    ``progress(step, max_steps, n_active)`` is called every few steps.
    """
    specs = list(specs)
    _check_shard(specs)
    opt = options or TrainOptions()
    if opt.snapshot_every % max(opt.merge_every, 1):
        raise ValueError(
            "snapshot_every must be a multiple of merge_every (snapshots are "
            "taken at fully projected steps)"
        )
    device, dtype = pick_device(opt.device), opt.dtype
    spec0, M = specs[0], len(specs)
    kind, loss_kind, trainable = spec0.optimizer, spec0.loss, trainable_names(spec0)
    mse, _ = choose_objective(opt.kernel, spec0, device)

    start = init or [init_params(s) for s in specs]
    p = {
        k: _stack(start, lambda s, k=k: np.asarray(s[k], float), device, dtype) for k in PARAM_NAMES
    }
    if loss_kind == "mse":
        data = data or [make_data(s) for s in specs]
        X = _stack(data, lambda xy: xy[0], device, dtype)
        Y = _stack(data, lambda xy: xy[1], device, dtype)
        batches = _Batches(specs, X.shape[1], device)
    else:
        V = _stack(specs, teacher_rows, device, dtype)

    # Trainable parameters live in one flat (M, P) tensor (one optimizer update, one
    # masked select per step); the dict p holds views of it plus the frozen ones.
    shapes = {k: p[k].shape[1:] for k in trainable}

    def flat(d):
        return torch.cat([d[k].reshape(M, -1) for k in trainable], dim=1)

    def views(theta, fixed):
        out, i = dict(fixed), 0
        for k in trainable:
            size = int(np.prod(shapes[k]))
            out[k] = theta[:, i : i + size].view(M, *shapes[k])
            i += size
        return out

    def per_run(name):
        return torch.tensor([float(getattr(s, name)) for s in specs], dtype=dtype, device=device)

    hyper = {k: per_run(k)[:, None] for k in ("lr", "momentum", "beta1", "beta2", "eps")}
    lam, D = per_run("weight_decay"), per_run("D")
    grad_tol, rel_tol = per_run("grad_tol"), per_run("plateau_rel_tol")
    budget = torch.tensor([s.steps for s in specs], device=device)
    patience = torch.tensor([s.plateau_patience for s in specs], device=device)
    every = torch.tensor([max(1, -(-s.steps // HISTORY_POINTS)) for s in specs], device=device)
    seeds = seed_tensor([s.seed for s in specs], device)

    theta = flat(p)
    fixed = {k: v for k, v in p.items() if k not in trainable}
    state = optim.init_state(kind, theta)
    status = torch.zeros(M, dtype=torch.int64, device=device)
    steps = torch.zeros(M, dtype=torch.int64, device=device)
    div_step = torch.full((M,), -1, dtype=torch.int64, device=device)
    best = torch.full((M,), float("inf"), dtype=dtype, device=device)
    best_step = torch.zeros(M, dtype=torch.int64, device=device)
    hist_step = torch.full((M, HISTORY_POINTS + 1), -1, dtype=torch.int64, device=device)
    hist_loss = torch.full((M, HISTORY_POINTS + 1), float("nan"), dtype=dtype, device=device)
    counts = {k: torch.zeros(M, dtype=torch.int64, device=device) for k in COUNTERS}
    snapshots, t0 = [], 0
    rows = torch.arange(M, device=device)

    def project(theta, fixed, on, t, merge):
        if not spec0.restricted:
            return theta, fixed
        q, reseeded = project_restricted(
            views(theta, fixed),
            on,
            D,
            counts,
            t,
            seeds,
            kink_margin=opt.kink_margin,
            merge=merge,
            merge_angle=opt.merge_angle,
            reseed_scale=opt.reseed_scale,
        )
        if state:  # reseeded neurons start with fresh optimizer state
            mask = {
                k: reseeded[..., None].expand_as(q["a"])
                if k == "a"
                else (reseeded if k in ("b", "c") else torch.zeros_like(q[k], dtype=torch.bool))
                for k in trainable
            }
            reset = flat(mask)
            for k in state:
                state[k] = state[k].masked_fill(reset, 0.0)
        return flat(q), {k: q[k] for k in fixed}

    ckpt = Path(opt.checkpoint) if opt.checkpoint else None
    fingerprint = [repr(s) for s in specs] + [str(dtype), opt.kernel]
    if ckpt and ckpt.exists():
        saved = torch.load(ckpt, map_location=device, weights_only=True)
        if saved["fingerprint"] != fingerprint:
            raise ValueError(f"checkpoint {ckpt} belongs to a different shard")
        theta, fixed, state, t0 = saved["theta"], saved["fixed"], saved["state"], int(saved["t"])
        status, steps, div_step = saved["status"], saved["steps"], saved["div_step"]
        best, best_step, counts = saved["best"], saved["best_step"], saved["counts"]
        hist_step, hist_loss = saved["hist_step"], saved["hist_loss"]
    else:
        theta, fixed = project(
            theta, fixed, torch.ones(M, dtype=torch.bool, device=device), 0, True
        )

    def save(t):
        tmp = ckpt.with_name(ckpt.name + ".tmp")
        torch.save(
            dict(
                fingerprint=fingerprint,
                theta=theta,
                fixed=fixed,
                state=state,
                t=t,
                status=status,
                steps=steps,
                div_step=div_step,
                best=best,
                best_step=best_step,
                counts=counts,
                hist_step=hist_step,
                hist_loss=hist_loss,
            ),
            tmp,
        )
        os.replace(tmp, ckpt)  # atomic: a crash leaves the previous checkpoint intact

    max_steps = int(budget.max())
    for t in range(t0, max_steps):
        if t % 16 == 0 and progress:
            progress(t, max_steps, int((status == RUNNING).sum()))
        active = status == RUNNING
        if t % 16 == 0 and not bool(active.any()):
            break
        p = views(theta, fixed)
        if loss_kind == "mse":
            idx = batches.indices(t)
            Xb = X if idx is None else torch.gather(X, 1, idx[..., None].expand(-1, -1, X.shape[2]))
            Yb = Y if idx is None else torch.gather(Y, 1, idx)
            objective, _, grads = mse(p, Xb, Yb, lam)
        else:
            objective, _, grads = gaussian_objective(p, V, lam)
        g = flat(grads)
        gnorm = torch.linalg.vector_norm(g, dim=1)

        # loss history, at each run's own stride (no host sync)
        rec = active & (steps % every == 0)
        slot = torch.where(rec, steps // every, HISTORY_POINTS)
        hist_step[rows, slot] = torch.where(rec, steps, hist_step[rows, slot])
        hist_loss[rows, slot] = torch.where(rec, objective, hist_loss[rows, slot])

        finite = torch.isfinite(objective) & torch.isfinite(gnorm)
        converged = active & finite & (gnorm <= grad_tol)
        improved = active & (objective < best * (1 - rel_tol))
        best = torch.where(improved, objective, best)
        best_step = torch.where(improved, steps, best_step)
        stalled = active & finite & (patience > 0) & (steps - best_step >= patience)
        status = torch.where(active & ~finite, DIVERGED, status)
        status = torch.where(converged, CONVERGED, status)
        status = torch.where(stalled & ~converged, PLATEAU, status)
        moving = status == RUNNING

        new_theta, new_state = optim.step(kind, theta, g, state, hyper, steps + 1)
        ok = torch.isfinite(new_theta).all(dim=1)
        status = torch.where(moving & ~ok, DIVERGED, status)
        div_step = torch.where(active & (status == DIVERGED), steps, div_step)
        moving = moving & ok

        mv = moving[:, None]
        theta = torch.where(mv, new_theta, theta)
        state = {k: torch.where(mv, new_state[k], state[k]) for k in state}
        steps = steps + moving
        status = torch.where(moving & (steps >= budget), BUDGET, status)
        theta, fixed = project(theta, fixed, moving, t + 1, (t + 1) % opt.merge_every == 0)

        if opt.snapshot_every and (t + 1) % opt.snapshot_every == 0:
            snap = views(theta, fixed)  # a merge step: fully projected
            snapshots.append((t + 1, _to_numpy(snap, spec0.restricted)))
        if ckpt and opt.checkpoint_every and (t + 1) % opt.checkpoint_every == 0:
            save(t + 1)

    # the end state is a recorded state: project it fully (merges included)
    theta, fixed = project(theta, fixed, status != DIVERGED, max_steps, True)
    p = views(theta, fixed)
    status = torch.where(status == RUNNING, BUDGET, status)
    if ckpt:
        save(max_steps)
    if progress:
        progress(max_steps, max_steps, 0)
    return ShardResult(
        specs=specs,
        params=_to_numpy(p, spec0.restricted),
        status=status.cpu().numpy(),
        steps=steps.cpu().numpy(),
        diverged_step=div_step.cpu().numpy(),
        history_step=hist_step[:, :HISTORY_POINTS].cpu().numpy(),
        history_loss=hist_loss[:, :HISTORY_POINTS].to(torch.float64).cpu().numpy(),
        counts={k: v.cpu().numpy() for k, v in counts.items()},
        snapshots=snapshots,
        dtype=str(dtype).removeprefix("torch."),
        device=str(device),
    )
