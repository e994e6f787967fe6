"""How a restricted shard stays in Omega_N between the loop's steps (loop.py calls these):
the projection after every step (project.py), the intrinsic method's optional merges and
reseeds (intrinsic.py), fresh optimizer moments for every neuron they change, and the
parameters of a recorded state.

The math: docs/science.md#training.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from . import intrinsic
from .inputs import RunTensors
from .options import TrainOptions
from .project import project_restricted, rebalance
from .state import Layout, LoopState

__all__ = ["project_step", "merge_step", "fresh_moments", "recorded_params", "to_numpy"]


def project_step(
    s: LoopState, on, t: int, merge: bool, layout: Layout, runs: RunTensors, opt: TrainOptions
) -> LoopState:
    """Restricted runs: bring the rows ``on`` back into Omega_N (project.py) after step t."""
    q, reseeded = project_restricted(
        layout.views(s.theta, s.fixed),
        on,
        runs.D,
        s.counts,  # counted in place
        t,
        runs.seeds,
        kink_margin=opt.kink_margin,
        merge=merge,
        merge_angle=opt.merge_angle,
        reseed_scale=opt.reseed_scale,
    )
    # reseeded neurons start with fresh optimizer state
    opt_state = fresh_moments(s.opt_state, reseeded, layout, q)
    fixed = {k: q[k] for k in s.fixed}
    return replace(s, theta=layout.flat(q), fixed=fixed, opt_state=opt_state)


def merge_step(
    s: LoopState,
    on,
    t: int,
    merge: bool,
    layout: Layout,
    runs: RunTensors,
    opt: TrainOptions,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> LoopState:
    """Intrinsic runs: merge (when ``merge``; by sample gaps when ``data``, the sorted
    samples and targets (M, n) of d = 1 runs, is given) and reseed padding (intrinsic.py)
    after step t; neurons whose coordinates changed start with fresh optimizer moments."""
    q, reset = intrinsic.merge_and_reseed(
        layout.views(s.theta, s.fixed),
        on,
        runs.D,
        s.counts,  # counted in place
        t,
        runs.seeds,
        merge=merge,
        merge_angle=opt.merge_angle,
        reseed_scale=opt.reseed_scale,
        data=data,
    )
    return replace(
        s,
        theta=layout.flat(q),
        fixed={k: q[k] for k in s.fixed},
        opt_state=fresh_moments(s.opt_state, reset, layout, q),
    )


PER_NEURON = ("a", "b", "c", "v", "kappa", "r")  # entries with one row per neuron


def fresh_moments(opt_state: dict, reset, layout: Layout, like: dict) -> dict:
    """Optimizer state with the entries of the neurons ``reset`` (M, N) zeroed; the
    per-network entries (e, w) are kept. Every per-neuron entry (M, N, ...) is masked
    whole: a (M, N, d), v, and vector c, r (M, N, m) alike."""
    if not opt_state:
        return opt_state
    mask = {
        k: reset.reshape(*reset.shape, *([1] * (like[k].dim() - 2))).expand_as(like[k])
        if k in PER_NEURON
        else torch.zeros_like(like[k], dtype=torch.bool)
        for k in layout.names
    }
    flat = layout.flat(mask)
    return {k: v.masked_fill(flat, 0.0) for k, v in opt_state.items()}


RECORD_PAIRS = 2**22  # neuron pairs per slice of a recorded state's merges (float64)


def recorded_params(s: LoopState, layout: Layout, runs: RunTensors, chart: bool, opt, counts=None):
    """A recorded state's parameters (a, b, c, e, w) as float64 arrays. Intrinsic runs:
    the network of the coordinates, built in float64, with exact merges of (anti)parallel
    pairs (counted in ``counts`` when given); the trajectory itself is not touched."""
    views = layout.views(s.theta, s.fixed)
    if not chart:
        return to_numpy(views, True)
    q = {k: v.detach().to("cpu", torch.float64) for k, v in views.items()}
    D = runs.D.detach().to("cpu", torch.float64)
    tally = {"merge": torch.zeros(layout.M, dtype=torch.int64)}
    # a merge looks at all (M, N, N) pairs: a few networks at a time bound the memory
    N = q["r"].shape[1]
    rows = max(1, RECORD_PAIRS // (N * N))
    parts = []
    for i in range(0, layout.M, rows):
        part = {k: v[i : i + rows] for k, v in q.items()}
        sub = {"merge": tally["merge"][i : i + rows]}  # a view: counted in place
        parts.append(intrinsic.merged_params(part, D[i : i + rows], opt.merge_angle, sub))
    if counts is not None:
        counts["merge"] += tally["merge"].to(counts["merge"].device)
    return {k: torch.cat([p[k] for p in parts]).numpy().copy() for k in parts[0]}


def to_numpy(p: dict, restricted: bool) -> dict:
    """float64 copies; restricted runs are rebalanced again in float64 (an exact
    symmetry), so that |c_i| = ||a_i|| holds to float64 rounding, not float32's."""
    p = {k: v.detach().to("cpu", torch.float64) for k, v in p.items()}
    if restricted:
        p = rebalance(p, torch.ones(p["a"].shape[0], dtype=torch.bool))
    return {k: v.numpy().copy() for k, v in p.items()}
