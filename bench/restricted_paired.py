"""Restricted training against unrestricted training, paired by seed: claim 4's statistic
per width, for choosing a restricted method (``by_width``'s ``PROJECTION_MAX_WIDTH``).

For each width, trains the unrestricted model with the restricted model's free linear
term (``linear_term``: both realize the same functions at equal width) and each
restricted method on the same seeds, and prints the median paired difference of the end
points' objectives (full batch, float64, no polish: claim 4 compares trained objectives)
with the sign test's one-sided 95 % bounds (``median_bounds``). On the teacher (optimum 0)
and with weight decay at widths where the convex optimum is exact, a difference of
objectives is a difference of gaps: non-inferior when the upper bound is <= eps = 1e-4.

    python bench/restricted_paired.py --target teacher --widths 2 4 8 16 32 64 256

Choose on some seeds (the default 0-15) and decide on others (configs/claims.yaml).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from realspace.core.choices import RESTRICTED_METHODS
from realspace.core.problem import make_data, network_from_params
from realspace.core.spec import RunSpec
from realspace.stats.quantiles import median_bounds
from realspace.train import TrainOptions, train_shard


def end_objectives(specs: list[RunSpec]) -> tuple[np.ndarray, float]:
    """(J of each run's end point (M,), seconds to train the shard)."""
    t0 = time.perf_counter()
    result = train_shard(specs, TrainOptions(device="cpu"))
    seconds = time.perf_counter() - t0
    J = []
    for m, spec in enumerate(specs):
        params = {k: v[m] for k, v in result.params.items()}
        x, y = make_data(spec)
        loss = float(np.mean((network_from_params(params, spec.has_linear)(x) - y) ** 2))
        pen = 0.5 * spec.weight_decay * float((params["c"] ** 2).sum() + (params["a"] ** 2).sum())
        J.append(loss + pen)
    return np.array(J), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="teacher", help="an MSE target (teacher: width 4, seed 0)")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--widths", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(16)))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--methods", nargs="+", default=list(RESTRICTED_METHODS))
    args = ap.parse_args()
    base = RunSpec(target=args.target, weight_decay=args.weight_decay, steps=args.steps)
    print(
        f"target {args.target}, weight decay {args.weight_decay:g}, {args.steps} Adam steps, "
        f"seeds {args.seeds[0]}-{args.seeds[-1]} ({len(args.seeds)} pairs); "
        "J_restricted - J_unrestricted: median [lower, upper]"
    )
    for width in args.widths:
        runs = [replace(base, width=width, seed=s) for s in args.seeds]
        U, tu = end_objectives([replace(r, linear_term=True) for r in runs])
        print(f"width {width}: unrestricted (linear term) median J {np.median(U):.3g}  {tu:.1f} s")
        for method in args.methods:
            R, tr = end_objectives(
                [replace(r, parametrization="restricted", restricted_method=method) for r in runs]
            )
            diff = R - U
            lo, hi = median_bounds(diff)
            print(
                f"  {method:<11} median J {np.median(R):.3g}  difference {np.median(diff):+.2e} "
                f"[{lo:+.2e}, {hi:+.2e}]  {tr:.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
