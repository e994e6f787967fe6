"""Benchmark: the trainer's step on each path, operations launched and time, the code of a
git revision beside this tree's, with a check that both train the same end points.

    python bench/step_ops.py [--baseline REV] [--kernels auto graph] [--rounds 3]

Paths (float32, Adam, one torch thread, the kernel ``auto`` picks on a CPU):

  prefix       sin, d = 1, grid samples: prefix sums over sorted samples;
  dense        teacher, d = 2, uniform samples: the dense (M, n, N) objective;
  intrinsic    sin, d = 1, restricted, intrinsic coordinates;
  projection   sin, d = 1, restricted, projected after every step;
  x-entropy    spirals, 3 classes: the multiclass cross-entropy (dense).

For each path a child process (REV's code with kernel auto, this tree's with each of
``--kernels``; in turn, ``--rounds`` times) measures:

- ops/step: the operations launched in ``train_shard`` of 8 networks, 64 steps less 32
  steps, over 32 (set-up cancels): the aten operations ``torch.profiler`` records at the
  top level, and for kernel "graph" each call of the compiled step counted as the kernels
  inductor generated for it (``torch._inductor.metrics``) plus the aten operations it
  calls out to;
- tiny: 4,096 networks of width 4 on 64 samples, 50 steps, CPU seconds of
  ``train_shard`` per step (set-up included, as a worker pays it: the seeds' shared data
  made once, ``_shard_data``) and per step alone (50 steps less 1 step, over 49);
- mid: 256 networks of width 64 on 256 samples, the same two numbers.

The median over rounds prints, side by side, with the first column's over the last. Each
child returns the end points of its first 256 networks of each size: the script says
whether each side trained what the first did (equal, or the largest difference over the
array's largest entry: another order of float32 operations rounds differently, and
training carries the difference on, step by step).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESTRICTED = dict(target="sin", d=1, sampling="grid", parametrization="restricted")
PATHS = {
    "prefix": dict(target="sin", d=1, sampling="grid"),
    "dense": dict(target="teacher", d=2, sampling="uniform"),
    "intrinsic": dict(RESTRICTED, restricted_method="intrinsic"),
    "projection": dict(RESTRICTED, restricted_method="projection"),
    "x-entropy": dict(target="spirals", d=2, n_classes=3),
}
SIZES = {"tiny": (4, 4096, 64), "mid": (64, 256, 256)}  # width, networks, samples


def launched(prof, kernels_per_graph: int) -> int:
    """Operations a profile launched: aten operations at the top level or called out to by
    a compiled graph, and each call of a compiled graph as the kernels it was compiled
    into (one fused loop each on a CPU, one launch each on CUDA)."""
    count = 0
    for e in prof.events():
        if e.cpu_parent is None and e.name.startswith("aten::"):
            count += 1
        elif e.name.startswith("## Call CompiledFxGraph"):
            count += kernels_per_graph
            count += sum(c.name.startswith("aten::") for c in e.cpu_children)
    return count


def child(path: str, kernel: str) -> dict:
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    from realspace.core.spec import RunSpec
    from realspace.train import TrainOptions
    from realspace.train import _shard_data as shard_data
    from realspace.train import train_shard as train

    def train_shard(specs, options):  # as a worker trains: seeds share a data set
        return train(specs, options, data=shard_data(specs))

    torch.set_num_threads(1)
    options = TrainOptions(dtype=torch.float32, kernel=kernel)

    def specs(width, networks, samples, steps):
        kw = dict(PATHS[path], width=width, n_samples=samples, steps=steps, optimizer="adam")
        return [RunSpec(**kw, seed=s) for s in range(networks)]

    kernels = 0
    if kernel == "graph":
        from torch._inductor import metrics

        metrics.reset()
    train_shard(specs(4, 8, 64, 4), options)  # first calls (imports, compilation) not timed
    if kernel == "graph":
        kernels = metrics.generated_kernel_count
    ops = []
    for steps in (32, 64):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            train_shard(specs(4, 8, 64, steps), options)
        ops.append(launched(prof, kernels))
    out = {"ops": (ops[1] - ops[0]) / 32}
    arrays = {}
    for size, (width, networks, samples) in SIZES.items():
        train_shard(specs(width, networks, samples, 2), options)  # compiled for this shape
        cpu = {}
        for steps in (1, 50):
            shard = specs(width, networks, samples, steps)
            start = time.process_time()
            result = train_shard(shard, options)
            cpu[steps] = time.process_time() - start
        out[f"{size}_total"] = cpu[50] / 50
        out[f"{size}_step"] = (cpu[50] - cpu[1]) / 49
        for k in ("a", "b", "c", "e", "w"):
            first = np.asarray(result.params[k][:256], np.float64)  # 256 networks compared
            arrays[f"{size}/{k}"] = first.ravel().tolist()
    out["params"] = arrays
    return out


def run_child(src: str, path: str, kernel: str) -> dict:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, __file__, "--child", path, kernel], env=env,
                         capture_output=True, text=True)  # fmt: skip
    if res.returncode:
        sys.exit(f"{path} ({src}, {kernel}) failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def agreement(before: dict, after: dict) -> str:
    """'equal', or the largest difference of an array over its largest entry."""
    import numpy as np

    worst = 0.0
    for k, a in before.items():
        a, b = np.asarray(a), np.asarray(after[k])
        if a.shape != b.shape:
            return "DIFFERENT SHAPES"
        if not np.array_equal(a, b):
            worst = max(worst, float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30)))
    return "equal" if worst == 0 else f"largest difference {worst:.1e} of the largest entry"


ROWS = [
    ("ops/step", "ops", "{:.1f}"),
    ("tiny: ms/step, set-up included", "tiny_total", "{:.2f}"),
    ("tiny: ms/step, step alone", "tiny_step", "{:.2f}"),
    ("mid: ms/step, set-up included", "mid_total", "{:.2f}"),
    ("mid: ms/step, step alone", "mid_step", "{:.2f}"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--baseline", help="git revision whose code (kernel auto) is 'before'")
    ap.add_argument("--kernels", nargs="+", default=["auto", "graph"],
                    help="this tree's kernels to time (default: auto graph)")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paths", nargs="*", default=list(PATHS), choices=list(PATHS))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        sides = {f"this {k}": (str(ROOT / "src"), k) for k in args.kernels}
        if args.baseline:
            sys.path.insert(0, str(ROOT / "bench"))
            from startup import extract

            sides = {f"{args.baseline} auto": (extract(args.baseline, tmp), "auto"), **sides}
        names = list(sides)
        print(f"step by path: float32, Adam, one thread; median of {args.rounds} rounds")
        print(f"{'':<34}" + "".join(f"{n[:15]:>16}" for n in names) + "   first/last")
        for path in args.paths:
            found = {n: [] for n in names}
            for _ in range(args.rounds):
                for n in names:
                    found[n].append(run_child(*sides[n][:1], path, sides[n][1]))
            print(path)
            for label, key, fmt in ROWS:
                scale = 1 if key == "ops" else 1e3
                med = [statistics.median(r[key] * scale for r in found[n]) for n in names]
                ratio = f"{med[0] / med[-1]:10.2f}x" if len(med) > 1 and med[-1] else ""
                print(f"  {label:<32}" + "".join(f"{fmt.format(m):>16}" for m in med) + ratio)
            for n in names[1:]:
                same = agreement(found[names[0]][0]["params"], found[n][0]["params"])
                print(f"  end points, {n} against {names[0]}: {same}")


if __name__ == "__main__":
    main()
