"""Benchmark: the usual one-network-at-a-time loop against the stacked trainer.

Both train the same problem (d = 1, a grid of samples of sin on [-1, 1], Adam,
float32) in one run; the trainer runs with each of its kernels: the d = 1 prefix sums
over sorted samples, the dense stacked objective, torch.compile of it (--compile), the
whole update compiled into one graph, a CUDA graph on CUDA (--graph), and on CUDA the
fused Triton kernel (no activation tensor). The script prints the rates and
their ratios to the loop: network-steps/s (optimizer steps of single networks per
second) and neuron-sample-steps/s (M * samples * W per second); on CUDA also the
measured fp32 rate (a large matrix product, TF32 off) and each path's fraction of the
limit it implies at 15 flops per neuron, sample and step.

It also times a restricted step in each method (``restricted_method``) beside the
unrestricted one, with the default kernel, and prints their ratio (issue 14 asks <= 1.5x).
And it times a classification step beside the MSE one on the same shapes, all with the
dense kernel (the one the classification losses train with): the binary logistic loss
(scalar output, labels of a teacher) and the cross-entropy with 3 classes (3 outputs).

    python bench/trainer.py                       # W=64, M=256, 256 samples, CPU
    python bench/trainer.py --width 256 --networks 1024 --samples 1024 --device cuda --graph

The issue's three GPU sizes: (W, M, samples) = (16, 4096, 1024), (256, 1024, 1024),
(2048, 256, 1024).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from realspace.core.choices import RESTRICTED_METHODS
from realspace.train import RunSpec, TrainOptions, init_params, make_data, train_shard


def timed(device, fn, *args) -> float:
    """Seconds of fn(*args), the device's queued work included."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def usual_loop(specs, steps, device):
    """One torch.nn.Module and one torch.optim.Adam per network, one after another."""
    for spec in specs:
        p = init_params(spec)
        x, y = (torch.tensor(v, dtype=torch.float32, device=device) for v in make_data(spec))
        model = torch.nn.Sequential(
            torch.nn.Linear(spec.d, spec.width), torch.nn.ReLU(), torch.nn.Linear(spec.width, 1)
        ).to(device)
        with torch.no_grad():
            model[0].weight.copy_(torch.tensor(p["a"]))
            model[0].bias.copy_(torch.tensor(p["b"]))
            model[2].weight.copy_(torch.tensor(p["c"])[None])
            model[2].bias.zero_()
        opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
        for _ in range(steps):
            opt.zero_grad()
            loss = ((model(x)[:, 0] - y) ** 2).mean()
            loss.backward()
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--networks", type=int, default=256)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument(
        "--loop-networks",
        type=int,
        default=8,
        help="networks the usual loop trains (its rate is per network-step)",
    )
    ap.add_argument("--device", default=None)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow start)")
    ap.add_argument("--graph", action="store_true", help="also time kernel graph (slow start)")
    args = ap.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    specs = [
        RunSpec(
            target="sin",
            width=args.width,
            n_samples=args.samples,
            steps=args.steps,
            lr=1e-2,
            seed=s,
        )
        for s in range(args.networks)
    ]

    # warm-up both paths (allocator, kernels), then time
    usual_loop(specs[:1], 5, device)
    train_shard(
        [RunSpec(**{**specs[0].to_dict(), "steps": 5, "target_params": ()})],
        TrainOptions(device=str(device)),
    )
    t = time.perf_counter()
    usual_loop(specs[: args.loop_networks], args.steps, device)
    loop_rate = args.loop_networks * args.steps / (time.perf_counter() - t)

    kernels = ["prefix", "dense"] + (["compiled"] if args.compile else [])
    kernels += ["graph"] if args.graph else []
    if device.type == "cuda":
        from realspace.train.fused import fused_available

        if fused_available(device, 1):
            kernels.append("fused")
    rates = {}
    for kernel in kernels:
        opts = TrainOptions(device=str(device), kernel=kernel)
        if kernel in ("compiled", "fused", "graph"):  # compile / JIT outside the timing
            train_shard(specs[:2] if kernel == "fused" else specs, opts)
        rates[kernel] = args.networks * args.steps / timed(device, train_shard, specs, opts)

    per = args.samples * args.width
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
        f"d=1, W={args.width}, M={args.networks}, samples={args.samples}, "
        f"steps={args.steps}, Adam, float32"
    )
    limit = None
    if device.type == "cuda":
        flops = fp32_rate(device)
        limit = flops / 15
        print(
            f"{torch.cuda.get_device_name(device)}: measured fp32 {flops / 1e12:.1f} TFLOP/s "
            f"(TF32 off) -> limit {limit:.3g} neuron-sample-steps/s"
        )
    print(
        f"{'path':<26}{'network-steps/s':>18}{'neuron-sample-steps/s':>24}"
        + (f"{'of limit':>10}" if limit else "")
    )
    rows = [("usual loop (nn + Adam)", loop_rate)]
    names = {
        "prefix": "trainer (d=1 prefix sums)",
        "dense": "trainer (dense stacked)",
        "compiled": "trainer (dense, compiled)",
        "fused": "trainer (fused Triton)",
        "graph": "trainer (graph kernel)",
    }
    rows += [(names[k], r) for k, r in rates.items()]
    for name, rate in rows:
        frac = f"{rate * per / limit:>10.1%}" if limit else ""
        print(f"{name:<26}{rate:>18.4g}{rate * per:>24.4g}{frac}")
    for kernel, rate in rates.items():
        print(f"ratio {names[kernel]} / loop: {rate / loop_rate:.1f}x")
    restricted_cost(specs, device, args.steps)
    loss_cost(specs, device, args.steps)
    print(
        "(neuron-sample-steps/s = M * samples * W per second; the d = 1 path does O(n + W log n)\n"
        " work per network-step, so its figure is the dense-equivalent rate)"
    )


def restricted_cost(specs, device, steps: int, reps: int = 3) -> None:
    """Time per step of the same shard unrestricted and restricted (each method), default
    kernel; the variants take turns ``reps`` times and each keeps its fastest (a shared
    machine's noise only ever adds time). Prints each and its ratio to the unrestricted."""
    opts = TrainOptions(device=str(device))
    variants = [("unrestricted", "unrestricted", "")] + [
        (f"restricted ({m})", "restricted", m) for m in RESTRICTED_METHODS
    ]
    shards = {
        name: [replace(s, parametrization=par, restricted_method=method) for s in specs]
        for name, par, method in variants
    }
    side_by_side(shards, opts, device, steps, reps, "step, default kernel", "unrestricted")


def loss_cost(specs, device, steps: int, reps: int = 3) -> None:
    """Time per step of the same shapes under MSE, the logistic loss and the 3-class
    cross-entropy (teacher labels), dense kernel; turns and fastest-of as in
    ``restricted_cost``. Prints each and its ratio to MSE."""
    opts = TrainOptions(device=str(device), kernel="dense")
    labels = dict(target="teacher_labels", target_params=(), teacher_width=4)
    variants = {
        "mse (dense)": {},
        "logistic (m=2)": labels,
        "cross-entropy (m=3)": {**labels, "n_classes": 3},
    }
    shards = {name: [replace(s, **kw) for s in specs] for name, kw in variants.items()}
    side_by_side(shards, opts, device, steps, reps, "step, dense kernel", "mse (dense)")


def side_by_side(shards: dict, opts, device, steps: int, reps: int, heading: str, base: str):
    """Time per step of each named shard, in turns (so that a noisy machine slows all of
    them alike) and fastest of ``reps``; print each with its ratio to the ``base`` one."""
    for shard in shards.values():
        train_shard([replace(shard[0], steps=5)], opts)  # warm-up
    times = {name: float("inf") for name in shards}
    for _ in range(reps):
        for name, shard in shards.items():
            times[name] = min(times[name], timed(device, train_shard, shard, opts) / steps)
    print(f"{heading:<26}{'ms/step':>18}{'/ ' + base:>24}  (best of {reps})")
    for name, t in times.items():
        print(f"{name:<26}{1e3 * t:>18.3f}{t / times[base]:>23.2f}x")


def fp32_rate(device, size: int = 8192, reps: int = 10) -> float:
    """Measured fp32 FLOP/s of a large matrix product with TF32 off."""
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * size**3 * reps / (time.perf_counter() - t)


if __name__ == "__main__":
    main()
