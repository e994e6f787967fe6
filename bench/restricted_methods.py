"""Restricted training methods side by side: the end points' objective per width.

Trains one target through the public API (``train_shard``, ``TrainOptions``) in each
method and prints, per (method, width), the best and median objective of the end points
(full batch, float64, at the recorded parameters) and the milliseconds per step of the
shard. Methods:

- ``unrestricted``: the unrestricted network (the reference);
- ``projection``: the restricted projection as shipped (kink_margin 1e-3, merges every
  10 steps);
- ``projection-lazy``: the projection with merges only at recorded states
  (merge_every huge) and kink_margin 0;
- ``intrinsic``: intrinsic coordinates of Omega_N, merges only at recorded states;
- ``intrinsic-merge10``: the same with merges (and reseeds) every 10 steps.

    python bench/restricted_methods.py --widths 16 64 256 1024 --seeds 8

With weight decay the columns are gaps J - J* to the convex optimum of each
parametrization (``reference_optima``; exact in d = 1 once the width reaches its neuron
count), the number issue 14 bounds by 1e-4.

Timings share the machine with whatever else runs on it: compare them within one run.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from realspace.convex import reference_optima
from realspace.core.problem import make_data, network_from_params
from realspace.core.spec import RunSpec
from realspace.train import TrainOptions, train_shard

BIG = 10**9  # merge_every that never comes during a run

METHODS = {
    "unrestricted": ("unrestricted", "", {}),
    "projection": ("restricted", "projection", {}),
    "projection-lazy": ("restricted", "projection", {"merge_every": BIG, "kink_margin": 0.0}),
    "intrinsic": ("restricted", "intrinsic", {}),
    "intrinsic-merge10": ("restricted", "intrinsic", {"intrinsic_merge_every": 10}),
    "intrinsic-gaps": (
        "restricted",
        "intrinsic",
        {"intrinsic_merge_every": 10, "intrinsic_merge": "gaps"},
    ),
    "intrinsic-gaps-1e-3": (
        "restricted",
        "intrinsic",
        {"intrinsic_merge_every": 10, "intrinsic_merge": "gaps", "reseed_scale": 1e-3},
    ),
}


def end_objective(spec: RunSpec, params: dict) -> float:
    """J of the recorded end point: MSE on the run's data plus the weight-decay penalty."""
    net = network_from_params(params, spec.restricted)
    x, y = make_data(spec)
    loss = float(np.mean((net(x) - y) ** 2))
    pen = 0.5 * spec.weight_decay * float((params["c"] ** 2).sum() + (params["a"] ** 2).sum())
    return loss + pen


def run(method: str, base: RunSpec, width: int, seeds: int) -> tuple[np.ndarray, float]:
    """(objectives (seeds,), ms per step) of one method at one width."""
    par, how, knobs = METHODS[method]
    spec = replace(base, parametrization=par, restricted_method=how, width=width)
    specs = [replace(spec, seed=s) for s in range(seeds)]
    options = TrainOptions(device="cpu", **knobs)
    t0 = time.perf_counter()
    result = train_shard(specs, options)
    ms = 1e3 * (time.perf_counter() - t0) / spec.steps
    J = [end_objective(s, {k: v[m] for k, v in result.params.items()}) for m, s in enumerate(specs)]
    return np.array(J), ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="sin")
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--n-samples", type=int, default=256)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = ap.parse_args()
    base = RunSpec(
        target=args.target,
        n_samples=args.n_samples,
        steps=args.steps,
        weight_decay=args.weight_decay,
    )
    print(
        f"target {args.target}, d = 1, {args.n_samples} samples, adam lr 1e-2, "
        f"{args.steps} steps, {args.seeds} seeds, weight decay {args.weight_decay:g}"
    )
    gap = args.weight_decay > 0
    what = "gap to J*" if gap else "objective"
    print(f"{'method':<18} {'width':>6} {'best ' + what:>14} {'median':>10} {'ms/step':>8}")
    for width in args.widths:
        for method in args.methods:
            J, ms = run(method, base, width, args.seeds)
            if gap:
                par, how, _ = METHODS[method]
                spec = replace(base, parametrization=par, restricted_method=how, width=width)
                j_star, label = reference_optima([spec])[0]
                J = J - j_star
                tag = f"  ({label}, J* = {j_star:.6g})"
            else:
                tag = ""
            print(
                f"{method:<18} {width:>6} {J.min():>14.3g} {np.median(J):>10.3g} {ms:>8.2f}{tag}",
                flush=True,
            )


if __name__ == "__main__":
    main()
