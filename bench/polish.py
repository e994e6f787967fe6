"""The float64 polish of end points: its cost per network and what it buys.

Trains shards through the public API (``train_shard``, float32 Adam as the sweeps do),
polishes every end point (``realspace.train.polish``) in two variants, ``lbfgs`` (L-BFGS
alone: the decaying step switched off) and ``lbfgs+decay`` (the polish as shipped), and
prints, per (problem, parametrization, width, variant), side by side:

- the polish's CPU time per network (ms) and its L-BFGS iterations (median);
- the gap J - J* to the exact convex optimum before and after the polish (median, the
  largest after, and the share within eps);
- the float64 gradient norm of the objective in the trainable parameters before and
  after (median), the share of polished end points with gradient norm <= 1e-6 (the
  report's "converged"), and the share with a sample within 1e-9 of a kink (where the
  objective is not differentiable and the gradient norm does not vanish at a minimum).

Problems: the default sweep's weight-decay problem (sin, lam 0.01, 256 grid points,
d = 1, Adam 0.01, 2000 steps; widths 8 32 128 256) and the binary logistic problems of
configs/classification.yaml (teacher labels lam 0.01 and two spirals lam 0.001, 24 points
in the plane, Adam 0.01, 4000 steps) at their widest width, 128.

    python bench/polish.py [--seeds 8] [--iterations 200] [--only default|logistic]

Timings share the machine with whatever else runs on it: compare them within one run.
"""

from __future__ import annotations

import argparse
import importlib
import time
from dataclasses import replace

import numpy as np
import torch

from realspace.convex import reference_optima
from realspace.core.problem import make_data
from realspace.core.spec import RunSpec
from realspace.train import TrainOptions, polish, train_shard
from realspace.train.certify import KINK_DISTANCE
from realspace.train.model import logistic_objective, mse_objective
from realspace.train.state import trainable_names

# the module (realspace.train.polish, the attribute, is the function)
polish_module = importlib.import_module("realspace.train.polish")
CONVERGED_GRAD = 1e-6  # the report's converged end point (report/verdict_tables.py)

DEFAULT = dict(target="sin", weight_decay=0.01, n_samples=256, lr=0.01, steps=2000)
LOGISTIC = {
    "teacher k=4 wd 1e-2": dict(
        target="teacher_labels",
        teacher_width=4,
        teacher_seed=2,
        weight_decay=0.01,
        d=2,
        n_samples=24,
        lr=0.01,
        steps=4000,
    ),
    "spirals wd 1e-3": dict(
        target="spirals", weight_decay=0.001, d=2, n_samples=24, lr=0.01, steps=4000
    ),
}


def grad_and_kink(spec: RunSpec, params: dict) -> tuple[float, float]:
    """(gradient norm in the trainable parameters, least sample-to-kink distance) of one
    network's float64 objective."""
    x, y = make_data(spec)
    p = {k: torch.tensor(np.asarray(v, float))[None] for k, v in params.items()}
    lam = torch.tensor([spec.weight_decay], dtype=torch.float64)
    fn = logistic_objective if spec.loss == "logistic" else mse_objective
    g = fn(p, torch.tensor(x)[None], torch.tensor(y)[None], lam)[2]
    gnorm = float(torch.cat([g[k].reshape(-1) for k in trainable_names(spec)]).norm())
    a, b = np.asarray(params["a"]), np.asarray(params["b"])
    live = np.linalg.norm(a, axis=1) > 0  # padding (a = 0) has no kink
    z = np.abs(x @ a[live].T + b[live]) / np.linalg.norm(a[live], axis=1)
    return gnorm, float(z.min(initial=np.inf))


VARIANTS = {  # name -> DECAY_STEPS_PER_ITERATION (0: no decaying step, L-BFGS only)
    "lbfgs": 0,
    "lbfgs+decay": None,  # the module's setting
}


def cell(label: str, specs: list[RunSpec], eps: float, variants: dict) -> list[dict]:
    """Train ``specs`` once (float32 Adam), then polish the end points with each variant."""
    result = train_shard(specs, TrainOptions(dtype=torch.float32))
    ref = reference_optima(specs[:1])[0]

    def grads(params):
        return [grad_and_kink(s, {k: v[m] for k, v in params.items()}) for m, s in enumerate(specs)]

    g0 = np.array([g for g, _ in grads(result.params)])
    default = polish_module.DECAY_STEPS_PER_ITERATION
    rows = []
    for name, decay in variants.items():
        polish_module.DECAY_STEPS_PER_ITERATION = default if decay is None else decay
        start = time.process_time()
        polished, info = polish(result)
        cpu = (time.process_time() - start) / len(specs)
        polish_module.DECAY_STEPS_PER_ITERATION = default
        after = grads(polished.params)
        g1 = np.array([g for g, _ in after])
        kink = np.array([z for _, z in after]) <= KINK_DISTANCE
        gap0, gap1 = info.objective_before - ref[0], info.objective_after - ref[0]
        rows.append(
            {
                "cell": f"{label} {name}",
                "ref": ref[1] or "none",
                "cpu_ms": 1e3 * cpu,
                "iters": float(np.median(info.iterations)),
                "gap0": float(np.median(gap0)),
                "gap1": float(np.median(gap1)),
                "worst": float(np.max(gap1)),
                "best": float(np.min(gap1)),
                "in0": float(np.mean(gap0 <= eps)),
                "in1": float(np.mean(gap1 <= eps)),
                "g0": float(np.median(g0)),
                "g1": float(np.median(g1)),
                "conv": float(np.mean(g1 <= CONVERGED_GRAD)),
                "kink": float(np.mean(kink)),
            }
        )
    return rows


def show(rows: list[dict], eps: float) -> None:
    print(
        f"{'cell':40} {'reference':14} {'cpu ms':>6} {'iters':>5} {'gap before':>10} "
        f"{'gap after':>9} {'min after':>9} {'max after':>9} {'<=eps':>11} {'|g| before':>10} "
        f"{'|g| after':>9} {'|g|<=1e-6':>9} {'at kink':>7}"
    )
    for r in rows:
        print(
            f"{r['cell']:40} {r['ref'][:14]:14} {r['cpu_ms']:6.0f} {r['iters']:5.0f} "
            f"{r['gap0']:10.2e} {r['gap1']:9.2e} {r['best']:9.2e} {r['worst']:9.2e} "
            f"{r['in0']:5.0%}->{r['in1']:4.0%} {r['g0']:10.2e} {r['g1']:9.2e} {r['conv']:9.0%} "
            f"{r['kink']:7.0%}"
        )
    print(
        "(gaps J - J*: medians over seeds, min / max after the least / largest; <=eps: "
        f"share within eps {eps:g} before -> after; |g|: float64 gradient norm, median; "
        "|g|<=1e-6: share of polished end points the report counts converged; at kink: "
        "share with a sample within 1e-9 of a kink; cpu ms: process CPU time of the polish "
        "per network; iters: L-BFGS)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 32, 128, 256])
    ap.add_argument("--only", choices=["default", "logistic"], default=None)
    ap.add_argument("--decay", type=int, default=None, help="DECAY_STEPS_PER_ITERATION")
    ap.add_argument("--decay-lr", type=float, nargs=2, default=None, help="DECAY_LR")
    args = ap.parse_args()
    if args.decay is not None:
        polish_module.DECAY_STEPS_PER_ITERATION = args.decay
    if args.decay_lr is not None:
        polish_module.DECAY_LR = tuple(args.decay_lr)
    steps = polish_module.DECAY_STEPS_PER_ITERATION * args.iterations
    lo, hi = polish_module.DECAY_LR
    print(
        f"torch {torch.__version__}, CPU, float32 training, the polish on one thread; "
        f"lbfgs: {args.iterations} + {args.iterations} L-BFGS iterations; lbfgs+decay: "
        f"{args.iterations} L-BFGS iterations, {steps} decaying Adam steps ({lo:g} -> {hi:g}), "
        f"{args.iterations} L-BFGS iterations"
    )
    if args.only != "logistic":
        rows = []
        for width in args.widths:
            for par in ("unrestricted", "restricted"):
                base = RunSpec(**DEFAULT, width=width, parametrization=par, polish=args.iterations)
                specs = [replace(base, seed=s) for s in range(args.seeds)]
                rows += cell(f"sin W={width} {par[:5]}", specs, 1e-4, VARIANTS)
        print("\ndefault sweep's weight-decay problem (sin, lam 1e-2, d = 1, 256 points)")
        show(rows, 1e-4)
    if args.only != "default":
        rows = []
        for label, kw in LOGISTIC.items():
            for par in ("unrestricted", "restricted"):
                base = RunSpec(**kw, width=128, parametrization=par, polish=args.iterations)
                specs = [replace(base, seed=s) for s in range(min(args.seeds, 4))]
                rows += cell(f"{label} W=128 {par[:5]}", specs, 1e-3, VARIANTS)
        print("\nconfigs/classification.yaml, binary logistic problems at width 128")
        show(rows, 1e-3)


if __name__ == "__main__":
    main()
