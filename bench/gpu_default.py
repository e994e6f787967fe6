"""Train the default sweep's networks on the GPU, shard by shard, without the tracking stack.

The sweep's own planner and packer choose the runs and shards; each shard is trained,
certified and recorded by ``train_and_record`` on CUDA with the kernel ``auto`` picks
(realspace/train/kernels.py: prefix sums in d = 1, the whole default sweep; the numbers of
2026-11-27 in bench/RESULTS.md were taken when auto still chose the fused kernel), or with
``--kernel graph`` (the whole update one compiled graph, a CUDA graph on CUDA; its
compilations, seconds per shape, are in the total). Prints
per-shard and total time and the end-point losses' summary, and, when given
``--reference FILE`` (a JSON of run key -> objective written by a CPU run with
``--write FILE``), the largest relative difference to it.

    python bench/gpu_default.py configs/default.yaml [--device cuda] [--kernel graph]
                                                     [--write F | --reference F]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from realspace.sweep.config import load_config
from realspace.sweep.plan import pack_shards, plan_cells, plan_runs
from realspace.train import TrainOptions, train_and_record


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--kernel", default="auto", choices=["auto", "graph"])
    ap.add_argument("--write")
    ap.add_argument("--reference")
    args = ap.parse_args()
    cfg = load_config(args.config)
    runs = plan_runs(cfg)
    shards = pack_shards(plan_cells(cfg).segments(), budget_bytes=2**30)
    print(f"{len(runs)} runs in {len(shards)} shards on {args.device}, kernel {args.kernel}")
    options = TrainOptions(device=args.device, kernel=args.kernel)
    objective, t0 = {}, time.perf_counter()
    for shard in shards:
        t = time.perf_counter()
        records = train_and_record(shard.specs, options)
        for run, rec in zip(shard.runs, records, strict=True):
            objective[run.key] = rec.objective
        print(f"  {shard.id:<40} {len(shard.runs):>4} nets {time.perf_counter() - t:7.2f} s")
    total = time.perf_counter() - t0
    print(f"kernel {args.kernel}: total {total:.1f} s, {len(runs) / total:.1f} networks/s")
    vals = np.array(list(objective.values()))
    print(f"objective: median {np.median(vals):.3g}, max {vals.max():.3g}")
    if args.write:
        with open(args.write, "w") as fh:
            json.dump(objective, fh)
    if args.reference:
        with open(args.reference) as fh:
            ref = json.load(fh)
        rel = [abs(objective[k] - v) / max(abs(v), 1e-12) for k, v in ref.items() if k in objective]
        print(
            f"vs reference: {len(rel)} runs, relative difference median "
            f"{np.median(rel):.2e}, max {max(rel):.2e}"
        )


if __name__ == "__main__":
    main()
