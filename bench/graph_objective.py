"""Benchmark: the d = 1 MSE objective alone, compiled as the graph kernel compiles it, in
its three forms side by side, at 2^20 neuron-samples a call for several widths N and
sample counts n (M = 2^20 / (N n) networks): the dense objective with the preactivations
sample-major (M, n, N) as the eager step lays them out, the same neuron-major (M, N, n) as
the graph kernel does, and prefix sums over sorted samples. The rule
``kernels.prefix_pays`` (prefix sums inside a graph where n N > 8 (n + N log2 n)) rests
on these numbers; the script prints what it picks beside them.

    python bench/graph_objective.py [--reps 30] [--device cpu]

One torch thread on a CPU; milliseconds a call, the fastest of three timings of ``reps``
calls each, after three warm-up calls (compilation).
"""

from __future__ import annotations

import argparse
import functools
import time

import torch

from realspace.core.spec import RunSpec
from realspace.train.kernels import prefix_pays
from realspace.train.model import mse_objective, mse_objective_1d

SHAPES = [(4, 64), (8, 64), (16, 64), (4, 256), (16, 256), (32, 256), (64, 256), (16, 1024)]
FORMS = {
    "sample-major": mse_objective,
    "neuron-major": functools.partial(mse_objective, neuron_major=True),
    "prefix sums": mse_objective_1d,
}


def per_call(fn, args, reps: int, device) -> float:
    compiled = torch.compile(fn, dynamic=False)
    for _ in range(3):
        compiled(*args)
    best = float("inf")
    for _ in range(3):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(reps):
            compiled(*args)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / reps)
    return best * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    g = torch.Generator(device=device).manual_seed(0)
    print(f"d = 1 MSE objective, compiled, float32, 2^20 neuron-samples a call, {device}")
    print(f"{'N':>4}{'n':>6}{'M':>6}" + "".join(f"{k:>14}" for k in FORMS) + "   prefix_pays")
    for N, n in SHAPES:
        M = 2**20 // (N * n)

        def rand(*shape):
            return torch.randn(*shape, generator=g, device=device)

        p = {"a": rand(M, N, 1), "b": rand(M, N), "c": rand(M, N), "e": rand(M), "w": rand(M, 1)}
        X = torch.sort(torch.rand(M, n, 1, generator=g, device=device), dim=1).values
        args_ = (p, X, rand(M, n), torch.full((M,), 1e-3, device=device))
        ms = [per_call(f, args_, args.reps, device) for f in FORMS.values()]
        pays = prefix_pays(RunSpec(target="sin", width=N, n_samples=n, sampling="uniform"))
        print(f"{N:>4}{n:>6}{M:>6}" + "".join(f"{v:>14.2f}" for v in ms) + f"{pays!s:>14}")


if __name__ == "__main__":
    main()
