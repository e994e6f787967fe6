"""Benchmark: the usual one-network-at-a-time loop against the stacked trainer.

Both train the same problem (d = 1, a grid of samples of sin on [-1, 1], Adam,
float32) in one run; the trainer runs twice, with its default d = 1 kernel (prefix
sums over sorted samples) and with the dense stacked kernel every d uses. The
script prints the rates and their ratios to the loop:
network-steps/s (optimizer steps of single networks per second) and
neuron-sample-steps/s (M * samples * W per second).

    python bench/trainer.py                       # W=64, M=256, 256 samples, CPU
    python bench/trainer.py --width 256 --networks 1024 --samples 1024 --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch

from realspace.train import RunSpec, TrainOptions, init_params, make_data, train_shard


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

    rates = {}
    for kernel in ("auto", "dense"):
        t = time.perf_counter()
        train_shard(specs, TrainOptions(device=str(device), kernel=kernel))
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates[kernel] = args.networks * args.steps / (time.perf_counter() - t)

    per = args.samples * args.width
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
        f"d=1, W={args.width}, M={args.networks}, samples={args.samples}, "
        f"steps={args.steps}, Adam, float32"
    )
    print(f"{'path':<26}{'network-steps/s':>18}{'neuron-sample-steps/s':>24}")
    print(f"{'usual loop (nn + Adam)':<26}{loop_rate:>18.4g}{loop_rate * per:>24.4g}")
    names = {"auto": "trainer (d=1 prefix sums)", "dense": "trainer (dense stacked)"}
    for kernel, rate in rates.items():
        print(f"{names[kernel]:<26}{rate:>18.4g}{rate * per:>24.4g}")
    for kernel, rate in rates.items():
        print(f"ratio {names[kernel]} / loop: {rate / loop_rate:.1f}x")
    print(
        "(neuron-sample-steps/s = M * samples * W per second; the d = 1 path does O(n + W log n)\n"
        " work per network-step, so its figure is the dense-equivalent rate)"
    )


if __name__ == "__main__":
    main()
