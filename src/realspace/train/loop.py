"""Train a shard: M networks of one shape, stacked, on one device.

float32 by default (stated in every record), float64 on request. Each network has
its own hyperparameters, step budget, stopping rule and status; a finished or
diverged network stops changing while the others go on.

The math: docs/science.md#training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils._pytree import tree_map

from ..core.problem import PARAM_NAMES, init_shard
from ..core.spec import RunSpec, seedless
from . import intrinsic, optim
from .inputs import Problem, RunTensors, stack
from .kernels import choose_objective
from .omega import merge_step, project_step, recorded_params, to_numpy
from .options import ShardResult, TrainOptions
from .state import HISTORY_POINTS, Layout, LoopState, RunStatus

__all__ = ["TrainOptions", "ShardResult", "train_shard", "pick_device"]


def pick_device(device: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_shard(specs: Sequence[RunSpec], opt: TrainOptions):
    if not specs:
        raise ValueError("a shard needs at least one run")
    # one key per configuration: a shard's seeds share theirs
    keys = {s.shape_key() for s in {seedless(s): s for s in specs}.values()}
    if len(keys) > 1:
        raise ValueError(f"a shard must hold runs of one shape; got {len(keys)} shapes: {keys}")
    if opt.snapshot_every % max(opt.merge_every, 1):
        raise ValueError(
            "snapshot_every must be a multiple of merge_every (snapshots are "
            "taken at fully projected steps)"
        )


def _update(
    s: LoopState,
    data: tuple,
    objective: Callable,
    runs: RunTensors,
    layout: Layout,
    optimizer: str,
    chart: bool,
) -> tuple:
    """One optimizer update of every running network of ``s``, its stopping rules and
    loss history: tensors in, tensors out, no host synchronization (the step a graph
    kernel compiles). ``data``: what ``objective`` reads besides the parameters.

    ``chart``: the parameters are intrinsic coordinates (intrinsic.py); the objective is
    that of their network and its gradient is pulled back to them. Returns (theta,
    opt_state, status, steps, div_step, best, best_step, moving, record), ``record`` the
    loss history's entries of this step as (column, step, loss) per run, for the caller
    to write: the update mutates none of its inputs, as a CUDA graph must not.
    """
    # plain ints: a graph compiler reads an IntEnum's comparisons as Python booleans
    RUNNING, CONVERGED, PLATEAU, BUDGET, DIVERGED = (
        int(RunStatus[k]) for k in ("RUNNING", "CONVERGED", "PLATEAU", "BUDGET", "DIVERGED")
    )
    active = s.status == RUNNING
    views = layout.views(s.theta, s.fixed)
    net = intrinsic.realize(views, runs.D) if chart else views
    value, _, grads = objective(net, *data, runs.lam)
    g = layout.flat(intrinsic.pullback(views, grads, runs.D) if chart else grads)
    gnorm = torch.linalg.vector_norm(g, dim=1)

    # loss history at each run's own stride, without a host sync: the column each run
    # records into now, the spare last one for runs that record nothing
    rec = active & (s.steps % runs.every == 0)
    record = (torch.where(rec, s.steps // runs.every, HISTORY_POINTS), s.steps, value)

    finite = torch.isfinite(value) & torch.isfinite(gnorm)
    converged = active & finite & (gnorm <= runs.grad_tol)
    improved = active & (value < s.best * (1 - runs.rel_tol))
    best = torch.where(improved, value, s.best)
    best_step = torch.where(improved, s.steps, s.best_step)
    stalled = active & finite & (runs.patience > 0) & (s.steps - best_step >= runs.patience)
    status = torch.where(active & ~finite, DIVERGED, s.status)
    status = torch.where(converged, CONVERGED, status)
    status = torch.where(stalled & ~converged, PLATEAU, status)
    moving = status == RUNNING

    new_theta, new_state = optim.step(optimizer, s.theta, g, s.opt_state, runs.hyper, s.steps + 1)
    ok = torch.isfinite(new_theta).all(dim=1)
    status = torch.where(moving & ~ok, DIVERGED, status)  # the last finite state is kept
    div_step = torch.where(active & (status == DIVERGED), s.steps, s.div_step)
    moving = moving & ok

    mv = moving[:, None]
    steps = s.steps + moving
    theta = torch.where(mv, new_theta, s.theta)
    opt_state = {k: torch.where(mv, new_state[k], v) for k, v in s.opt_state.items()}
    status = torch.where(moving & (steps >= runs.budget), BUDGET, status)
    return theta, opt_state, status, steps, div_step, best, best_step, moving, record


def _step(
    s: LoopState,
    problem: Problem,
    runs: RunTensors,
    layout: Layout,
    optimizer: str,
    restricted: bool,
    opt: TrainOptions,
    chart: bool = False,
    graph: bool = False,
) -> LoopState:
    """Step s.t of every running network: ``_update`` (with ``graph``, its compiled graph),
    then the projection or merges that restricted runs take on their schedule (with
    ``graph``, the projection of the steps without merges compiled too)."""
    update = compiled(_update, s.theta.device) if graph else _update
    out = update(s, problem.data(s.t), problem.objective, runs, layout, optimizer, chart)
    theta, opt_state, status, steps, div_step, best, best_step, moving, record = out
    column, step, loss = record
    s.hist_step[runs.rows, column] = step
    s.hist_loss[runs.rows, column] = loss
    s = replace(
        s,
        theta=theta,
        opt_state=opt_state,
        t=s.t + 1,
        status=status,
        steps=steps,
        div_step=div_step,
        best=best,
        best_step=best_step,
    )
    if chart:
        every = opt.intrinsic_merge_every
        if every and s.t % every == 0 and s.t <= opt.intrinsic_merge_until * runs.horizon:
            s = merge_step(s, moving, s.t, True, layout, runs, opt, problem.gaps)
    elif restricted:
        merge = s.t % opt.merge_every == 0
        if not graph or merge:
            s = project_step(s, moving, s.t, merge, layout, runs, opt)
        else:
            step = torch.tensor(s.t, dtype=torch.int64, device=s.theta.device)
            theta, fixed, opt_state = compiled(_project, s.theta.device)(
                s, moving, step, layout, runs, opt
            )
            s = replace(s, theta=theta, fixed=fixed, opt_state=opt_state)
    return s


def _project(s: LoopState, on, step, layout: Layout, runs: RunTensors, opt: TrainOptions):
    """``project_step`` without merges, as (theta, fixed, opt_state): what the graph
    kernel compiles for the projection's ordinary steps (``step`` a 0-d tensor, so that
    one graph serves every step)."""
    out = project_step(s, on, step, False, layout, runs, opt)
    return out.theta, out.fixed, out.opt_state


_GRAPHS: dict = {}
# graphs of the update one process may hold: one per path (objective, parametrization,
# optimizer) and shape, each shape static once and dynamic after (torch's default, 8, is
# reached by a worker that trains a few paths, and past it the step runs uncompiled)
GRAPH_LIMIT = 64


def compiled(fn: Callable, device: torch.device) -> Callable:
    """``fn`` (``_update`` or ``_project``) compiled by torch.compile for kernel "graph",
    one per process and kind of device, so that a worker compiles each path and shape of
    shard once: on a CPU into a few fused loops, on CUDA the update also replayed as a
    CUDA graph (mode "reduce-overhead"). Shapes are static at first and made dynamic by
    the first shard of another size (a cell's last shard is smaller): a sweep compiles a
    few graphs, not one per shard. Only the update is a CUDA graph: the projection
    consumes its outputs within the step, and a second graph per step would mark a new
    one. A CUDA graph's outputs live in its memory pool, freed or overwritten at its next
    replay, which here takes them as inputs: the loop keeps copies (one copy per output
    tensor a step, against a hundred and more launches of the eager step)."""
    key = (fn.__name__, device.type)
    if key not in _GRAPHS:
        cuda = device.type == "cuda" and fn is _update
        graph = torch.compile(fn, mode="reduce-overhead" if cuda else None)

        def run(*args):
            if cuda:
                torch.compiler.cudagraph_mark_step_begin()
            with torch._dynamo.config.patch(recompile_limit=GRAPH_LIMIT):
                out = graph(*args)
            return tree_map(torch.clone, out) if cuda else out

        _GRAPHS[key] = run
    return _GRAPHS[key]


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
    specs, opt = list(specs), options or TrainOptions()
    _check_shard(specs, opt)
    device, dtype = pick_device(opt.device), opt.dtype
    spec0, restricted = specs[0], specs[0].restricted
    chart = restricted and spec0.restricted_method == "intrinsic"
    objective, kernel = choose_objective(opt.kernel, spec0, device)

    if init:
        p = {
            k: stack(init, lambda s, k=k: np.asarray(s[k], float), device, dtype)
            for k in PARAM_NAMES
        }
    else:  # each run's own draws, the arithmetic once for the shard
        p = {
            k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in init_shard(specs).items()
        }
    problem = Problem(specs, objective, data, device, dtype)
    if chart and opt.intrinsic_merge == "gaps":
        if spec0.d != 1 or spec0.loss != "mse":
            raise ValueError("intrinsic_merge='gaps' needs d = 1 and an MSE loss")
        xs, order = torch.sort(problem.X[..., 0], dim=1)
        problem.gaps = (xs, problem.Y.gather(1, order))
    runs = RunTensors.of(specs, device, dtype)
    layout = Layout.of(spec0, p)

    ckpt = Path(opt.checkpoint) if opt.checkpoint else None
    # what a checkpoint must match (the specs' text: 6 us a network, made only when kept)
    fingerprint = [repr(s) for s in specs] + [str(dtype), opt.kernel] if ckpt else []
    if chart:
        coordinates = intrinsic.coordinate_names(spec0.bias, spec0.train_output)
        chart_layout = Layout.of(spec0, intrinsic.to_coordinates(p, runs.D), coordinates)
    if ckpt and ckpt.exists():
        state = LoopState.load(ckpt, fingerprint, device)
        layout = chart_layout if chart else layout
    else:
        state = LoopState.start(layout, p, spec0.optimizer)
        if restricted:
            # both methods start from the same network: projected into Omega_N (kinks
            # kept off the boundary, padding reseeded), then, for intrinsic runs, read
            # in coordinates
            on = torch.ones(len(specs), dtype=torch.bool, device=device)
            state = project_step(state, on, 0, True, layout, runs, opt)
        if chart:
            q = intrinsic.to_coordinates(layout.views(state.theta, state.fixed), runs.D)
            layout = chart_layout
            start = LoopState.start(layout, q, spec0.optimizer)
            state = replace(start, counts=state.counts)

    snapshots = []
    max_steps = int(runs.budget.max())
    for t in range(state.t, max_steps):
        if t % 16 == 0:  # a host sync: not every step
            if progress:
                progress(t, max_steps, int((state.status == RunStatus.RUNNING).sum()))
            if not bool((state.status == RunStatus.RUNNING).any()):
                break
        state = _step(
            state, problem, runs, layout, spec0.optimizer, restricted, opt, chart, kernel == "graph"
        )
        if opt.snapshot_every and state.t % opt.snapshot_every == 0:
            if chart:
                snapshots.append((state.t, recorded_params(state, layout, runs, True, opt)))
            else:
                snap = layout.views(state.theta, state.fixed)  # a merge step: fully projected
                snapshots.append((state.t, to_numpy(snap, restricted)))
        if ckpt and opt.checkpoint_every and state.t % opt.checkpoint_every == 0:
            state.save(ckpt, fingerprint)

    # the end state is a recorded state: project it fully (merges included)
    state = replace(state, t=max_steps)
    if restricted and not chart:
        state = project_step(
            state, state.status != RunStatus.DIVERGED, max_steps, True, layout, runs, opt
        )
    running = state.status == RunStatus.RUNNING
    state = replace(state, status=torch.where(running, RunStatus.BUDGET, state.status))
    if ckpt:
        state.save(ckpt, fingerprint)
    if progress:
        progress(max_steps, max_steps, 0)
    if chart:
        params = recorded_params(state, layout, runs, True, opt, state.counts)
    else:
        params = to_numpy(layout.views(state.theta, state.fixed), restricted)
    return _result(specs, state, params, snapshots, dtype, device)


def _result(specs, s: LoopState, params, snapshots, dtype, device) -> ShardResult:
    return ShardResult(
        specs=specs,
        params=params,
        status=s.status.cpu().numpy(),
        steps=s.steps.cpu().numpy(),
        diverged_step=s.div_step.cpu().numpy(),
        history_step=s.hist_step[:, :HISTORY_POINTS].cpu().numpy(),
        history_loss=s.hist_loss[:, :HISTORY_POINTS].to(torch.float64).cpu().numpy(),
        counts={k: v.cpu().numpy() for k, v in s.counts.items()},
        snapshots=snapshots,
        dtype=str(dtype).removeprefix("torch."),
        device=str(device),
    )
