"""A float64 full-batch polish of trained end points: L-BFGS around a decaying step.

Adam at a constant step ends a little above the minimum it found (its step noise: about
1e-4 to 1e-3 in the objective on the classification problems, more than claim 1's eps).
For every network of a shard whose spec asks for it (``spec.polish`` > 0, a loss on data),
this takes its end point and minimizes, in float64 on the CPU and on all its data at
once, the same objective as training,

    J = loss(f) + (lam / 2) (sum_i ||c_i||^2 + ||a_i||^2)

(MSE, logistic or cross-entropy loss; biases and the affine part unpenalized) over the
same trainable parameters (``state.trainable_names``), in three phases:

1. up to ``spec.polish`` iterations of torch's L-BFGS (strong Wolfe line search; rounds
   restarted without history while they still lower J), one network at a time: fast
   local convergence where J is smooth (d = 1 MSE: median gaps to the exact optimum from
   3e-7 to 5e-5 after Adam down to 1e-11 to 4e-9);
2. ``DECAY_STEPS_PER_ITERATION * spec.polish`` steps of full-batch Adam whose step falls
   geometrically from ``DECAY_LR[0]`` to ``DECAY_LR[1]``, keeping the best point visited.
   Why: at a minimum of these objectives samples often sit on kinks (a hyperplane
   through a data point), where J is not differentiable; there L-BFGS's line search
   fails within a few iterations while a small decaying step keeps descending (measured:
   two spirals in the plane, width 128, from Adam's 1e-3 L-BFGS alone reaches gaps of
   7e-5, with this phase 2e-6 to 8e-6);
3. L-BFGS again, from the best point of phase 2.

Every phase keeps or lowers J (L-BFGS's line search asks for a decrease; phase 2 returns
its best point, its start included), so phase 3 ends at most where phase 1 did; the
guard below makes "never raises J" a rule, not a property of the optimizers.

Networks are independent problems: L-BFGS runs one network at a time and phase 2 updates
each row of a stacked tensor with its own gradient (in slices of rows); nothing sums
networks' objectives, so a network's polish depends on its spec, end point and data only
(to the rounding of stacked reductions).

Restricted runs are polished in the raw parameters (a, b, c, e, w) and mapped back into
Omega_N by their canonical form (the same realization on the cube, balanced: its penalty
is at most the raw one's, so J does not rise), padded to the width.

The polish never raises J: the polished point replaces the end point only when its
objective (the canonical form's, for restricted runs) is at most the end point's;
otherwise the end point is kept as it was. The end point's objective is kept beside it
(``PolishInfo.objective_before``, the records' ``objective_before_polish``). Diverged
networks and the Gaussian population loss are not polished. The polish runs on one CPU
thread (set for its duration, then restored): its tensors are small, and with two
threads on two cores that other jobs shared one objective evaluation (256 samples) took
20 to 33 times as long at widths 128 and 256 (measured; bench/RESULTS.md, 2026-12-06).

The math: docs/science.md#training.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..core.canonical import canonical_form
from ..core.nets import ShallowNet
from ..core.problem import make_data
from ..core.spec import RunSpec
from . import optim
from .loop import ShardResult
from .model import cross_entropy_objective, logistic_objective, mse_objective, mse_objective_1d
from .state import Layout, RunStatus, trainable_names

__all__ = ["PolishInfo", "polish", "objective_of"]

OBJECTIVES = {
    "mse": mse_objective,
    "logistic": logistic_objective,
    "cross_entropy": cross_entropy_objective,
}
# phase 2: Adam steps per L-BFGS iteration of spec.polish, its step from .. to
DECAY_STEPS_PER_ITERATION = 10
DECAY_LR = (1e-3, 1e-7)
# phases 1 and 3, L-BFGS: a gradient this small (max entry) or a step or change of J this
# small ends a round; 20 curvature pairs; objective evaluations allowed per iteration
TOLERANCE_GRAD = 1e-12
TOLERANCE_CHANGE = 1e-15
HISTORY_SIZE = 20
EVALUATIONS_PER_ITERATION = 2
RESTART_GAIN = 1e-13  # a round of L-BFGS that lowers J by less (relative) ends the phase
SLICE = 2**18  # phase 2: rows per slice hold at most this many activations (n x N each)


def objective_of(spec: RunSpec):
    """The stacked float64 objective the polish minimizes for ``spec``: the prefix-sum one
    for d = 1 MSE (the same J, O(n + N log n); its data sorted by x), else the dense one."""
    if spec.loss == "mse" and spec.d == 1:
        return mse_objective_1d
    return OBJECTIVES[spec.loss]


def _sorted(spec: RunSpec, X: np.ndarray, y: np.ndarray):
    """(X, y) as float64 copies (X may be read-only), sorted by x for d = 1 (the prefix-sum
    objective needs it; J does not depend on the order)."""
    X, y = np.array(X, dtype=np.float64), np.array(y, dtype=np.float64)
    if spec.d == 1:
        order = np.argsort(X[:, 0], kind="stable")
        X, y = X[order], y[order]
    return X, y


@contextlib.contextmanager
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class PolishInfo:
    """Per network of a shard (M,): what the polish did.

    objective_before: J at the trained end point (float64, the objective the certificate
    computes), NaN where the network was not polished (spec.polish = 0, diverged, Gaussian
    loss); objective_after: J at the recorded end point (the polished one where kept, else
    the end point's; NaN where not polished); objective_decayed: J after phase 2 (the
    decaying step, raw parameters); iterations: L-BFGS iterations taken (phases 1 and 3);
    evaluations: their objective evaluations; seconds: wall time of the network's polish
    (with its share of phase 2's); kept: whether the polished point replaced the end
    point.
    """

    objective_before: np.ndarray
    objective_after: np.ndarray
    objective_decayed: np.ndarray
    iterations: np.ndarray
    evaluations: np.ndarray
    seconds: np.ndarray
    kept: np.ndarray

    def fields(self, m: int) -> dict:
        """Network m's RunRecord fields: objective_before_polish, polish_iterations."""
        return {
            "objective_before_polish": float(self.objective_before[m]),
            "polish_iterations": int(self.iterations[m]),
        }

    @classmethod
    def empty(cls, M: int) -> PolishInfo:
        def nan():
            return np.full(M, np.nan)

        def zeros():
            return np.zeros(M, dtype=np.int64)

        return cls(nan(), nan(), nan(), zeros(), zeros(), np.zeros(M), np.zeros(M, dtype=bool))


def _tensors(params: dict) -> dict:
    """One network's parameters as (1, ...) float64 CPU tensors (a fresh copy)."""
    return {
        k: torch.tensor(np.asarray(v, dtype=np.float64), dtype=torch.float64)[None]
        for k, v in params.items()
    }


def _canonical_params(q: dict, spec: RunSpec) -> dict:
    """Restricted runs: the canonical form (in Omega_N, padded to the width) of the raw
    parameters q (numpy, one network), as a parameter dict of the same shapes."""
    e = q["e"]
    net = ShallowNet(q["a"], q["b"], q["c"], e if np.ndim(e) else float(e), q["w"])
    canon = canonical_form(net, spec.D, width=net.width)
    return {
        "a": np.array(canon.a),
        "b": np.array(canon.b),
        "c": np.array(canon.c),
        "e": np.array(canon.e, dtype=np.float64).reshape(np.shape(e)),
        "w": np.array(canon.w).reshape(np.shape(q["w"])),
    }


def _decay(specs: list[RunSpec], p: dict, X, Y, steps: np.ndarray) -> tuple[dict, np.ndarray]:
    """Phase 2 for a slice of networks (one shape): ``steps[m]`` full-batch Adam steps of
    network m, its step falling geometrically over them from DECAY_LR[0] to DECAY_LR[1].
    p: name -> (M, ...) float64 tensors, X (M, n, d), Y (M, n). Returns the best point
    each network visited (its start included: J never rises) and its objective (M,)."""
    objective, M = objective_of(specs[0]), len(specs)
    lam = torch.tensor([float(s.weight_decay) for s in specs], dtype=torch.float64)
    layout = Layout.of(specs[0], p)
    theta, fixed = layout.flat(p), {k: v for k, v in p.items() if k not in layout.names}
    budget = torch.as_tensor(steps, dtype=torch.int64)
    lo, hi = DECAY_LR
    # step t of network m: lo (hi / lo)^(t / (steps_m - 1))
    rate = torch.log(torch.tensor(hi / lo, dtype=torch.float64)) / (budget - 1).clamp_min(1)
    hyper = {
        "beta1": torch.full((M, 1), 0.9, dtype=torch.float64),
        "beta2": torch.full((M, 1), 0.999, dtype=torch.float64),
        "eps": torch.full((M, 1), 1e-8, dtype=torch.float64),
    }
    state = optim.init_state("adam", theta)
    best, best_J = theta.clone(), torch.full((M,), torch.inf, dtype=torch.float64)
    for t in range(int(budget.max()) + 1):
        J, _, g = objective(layout.views(theta, fixed), X, Y, lam)
        better = torch.isfinite(J) & (J < best_J)
        best_J = torch.where(better, J, best_J)
        best = torch.where(better[:, None], theta, best)
        moving = t < budget
        if not bool(moving.any()):
            break
        hyper["lr"] = (lo * torch.exp(rate * t))[:, None]
        step = torch.full((M,), t + 1, dtype=torch.int64)
        new, new_state = optim.step("adam", theta, layout.flat(g), state, hyper, step)
        ok = (moving & torch.isfinite(new).all(dim=1))[:, None]
        theta = torch.where(ok, new, theta)
        state = {k: torch.where(ok, new_state[k], v) for k, v in state.items()}
    return {k: v.clone() for k, v in layout.views(best, fixed).items()}, best_J.numpy()


def _lbfgs(spec: RunSpec, p: dict, X, Y) -> tuple[dict, int, int]:
    """Up to ``spec.polish`` L-BFGS iterations for one network from p (name -> (1, ...)
    float64 tensors), in rounds. Returns (the parameters, iterations, evaluations)."""
    iterations = spec.polish
    objective, names = objective_of(spec), trainable_names(spec)
    lam = torch.tensor([float(spec.weight_decay)], dtype=torch.float64)
    shapes = {k: p[k].shape for k in names}
    theta = torch.cat([p[k].reshape(-1) for k in names])
    fixed = {k: v for k, v in p.items() if k not in names}

    def unpack(th: torch.Tensor) -> dict:
        q, i = dict(fixed), 0
        for k in names:
            size = int(np.prod(shapes[k]))
            q[k] = th[i : i + size].view(shapes[k])
            i += size
        return q

    def closure():
        J, _, g = objective(unpack(theta), X, Y, lam)
        theta.grad = torch.cat([g[k].reshape(-1) for k in names])
        return J[0]

    # a round that stops early (its line search failed, as at a kink) is followed by a
    # fresh one, without curvature history, while rounds still lower J
    used = evaluations = 0
    J_round = float(objective(p, X, Y, lam)[0][0])
    while used < iterations:
        opt = torch.optim.LBFGS(
            [theta],
            lr=1.0,
            max_iter=iterations - used,
            max_eval=EVALUATIONS_PER_ITERATION * (iterations - used),
            tolerance_grad=TOLERANCE_GRAD,
            tolerance_change=TOLERANCE_CHANGE,
            history_size=HISTORY_SIZE,
            line_search_fn="strong_wolfe",
        )
        with torch.no_grad():
            opt.step(closure)
            J = float(objective(unpack(theta), X, Y, lam)[0][0])
        state = opt.state[theta]
        used += max(int(state.get("n_iter", 0)), 1)
        evaluations += int(state.get("func_evals", 0))
        if not J < J_round - RESTART_GAIN * abs(J_round):  # NaN included
            break
        J_round = J
    return unpack(theta.detach()), used, evaluations


def _finish(spec: RunSpec, start: dict, p: dict, X, Y) -> tuple[dict, float, float, bool]:
    """The recorded point of one network: p (the polished raw parameters, (1, ...)
    tensors; for restricted runs their canonical form) where its J is at most that of the
    end point ``start`` (numpy), else ``start``. Returns (parameters as numpy, J of the
    end point, J of the recorded point, whether p was kept)."""
    objective = objective_of(spec)
    lam = torch.tensor([float(spec.weight_decay)], dtype=torch.float64)
    J0 = float(objective(_tensors(start), X, Y, lam)[0][0])
    after = {k: np.array(v[0].numpy()) for k, v in p.items()}
    J1 = np.inf
    if all(np.isfinite(v).all() for v in after.values()):
        try:
            if spec.restricted:
                after = _canonical_params(after, spec)
            J1 = float(objective(_tensors(after), X, Y, lam)[0][0])
        except ValueError:  # a canonical form that cannot be built: keep the end point
            pass
    if J1 <= J0:
        return after, J0, J1, True
    return {k: np.array(v, dtype=np.float64) for k, v in start.items()}, J0, J0, False


def _polish_slice(specs_all, part: list[int], params: dict, xy: dict, info: PolishInfo) -> None:
    """Polish the networks ``part`` of a shard (rows of ``params``, replaced in place;
    ``info`` filled in): L-BFGS, the decaying step (stacked), L-BFGS again, the guard."""
    specs = [specs_all[m] for m in part]
    X = torch.stack([xy[m][0] for m in part])
    Y = torch.stack([xy[m][1] for m in part])
    seconds = np.zeros(len(part))
    used, evals = np.zeros(len(part), np.int64), np.zeros(len(part), np.int64)

    def descend(j: int, q: dict) -> dict:
        start = time.perf_counter()
        q, n_iter, n_eval = _lbfgs(specs[j], q, X[j : j + 1], Y[j : j + 1])
        used[j] += n_iter
        evals[j] += n_eval
        seconds[j] += time.perf_counter() - start
        return q

    # phase 1: L-BFGS from each end point
    first = [
        descend(j, {k: torch.tensor(params[k][m : m + 1]) for k in params})
        for j, m in enumerate(part)
    ]
    # phase 2: the decaying step, the slice's rows stacked
    start = time.perf_counter()
    p = {k: torch.cat([q[k] for q in first]) for k in params}
    steps = np.array([DECAY_STEPS_PER_ITERATION * s.polish for s in specs])
    decayed, J_decayed = _decay(specs, p, X, Y, steps)
    seconds += (time.perf_counter() - start) / len(part)
    for j, m in enumerate(part):
        # phase 3: L-BFGS again; then the end point's guard
        q = descend(j, {k: v[j : j + 1] for k, v in decayed.items()})
        end_point = {k: v[m] for k, v in params.items()}
        p_m, J0, J1, kept = _finish(specs[j], end_point, q, X[j : j + 1], Y[j : j + 1])
        for k in params:
            params[k][m] = p_m[k]
        info.objective_before[m], info.objective_after[m] = J0, J1
        info.objective_decayed[m] = J_decayed[j]
        info.iterations[m], info.evaluations[m] = used[j], evals[j]
        info.seconds[m], info.kept[m] = seconds[j], kept


def polish(
    result: ShardResult, data: Sequence[tuple[np.ndarray, np.ndarray]] | None = None
) -> tuple[ShardResult, PolishInfo]:
    """The shard ``result`` with every network whose spec asks for it (``spec.polish`` >
    0, a loss on data, not diverged) polished, and what the polish did per network.
    ``data``: each run's (X, y) as the trainer took them (else drawn again with
    ``make_data``). The result's parameter arrays are new where anything changed;
    ``result`` itself is not modified. Without a network to polish ``result`` is
    returned as it is.
    """
    M = len(result.specs)
    info = PolishInfo.empty(M)
    if data is not None and len(data) != M:
        raise ValueError(f"polish: {len(data)} data sets for {M} runs")
    todo = [
        m
        for m, s in enumerate(result.specs)
        if s.polish > 0 and s.loss in OBJECTIVES and result.status[m] != RunStatus.DIVERGED
    ]
    if not todo:
        return result, info
    params = {k: np.array(v, dtype=np.float64) for k, v in result.params.items()}
    with _one_thread():
        xy = {}
        for m in todo:
            spec = result.specs[m]
            X, y = _sorted(spec, *(make_data(spec) if data is None else data[m]))
            xy[m] = (torch.tensor(X), torch.tensor(y))
        n, N = xy[todo[0]][0].shape[0], params["a"].shape[1]
        rows = max(1, SLICE // (n * N))
        for lo in range(0, len(todo), rows):
            _polish_slice(result.specs, todo[lo : lo + rows], params, xy, info)
    return replace(result, params=params), info
