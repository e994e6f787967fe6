"""Benchmark: what the analysis stages of claims 2 and 3 cost per trained network.

Trains the default sweep's d = 1 problems (sin, sin with weight decay 0.01, the width-4
teacher; 256 grid points, Adam 0.01, 2000 steps, float32) at a few widths, both
parametrizations, ``--seeds`` seeds each, then times in this process, per network:

  witness     ``witness.find_witness`` on an unrestricted end point (free neurons, the
              exact d = 1 descent rate, the construction checked at g = 1e-2 .. 1e-6);
  stability   ``stability.stability_rows`` on a restricted end point's canonical form
              (add, scale, shift x 6 sizes: 18 exact d_W and fibre distances);
  new kink    ``stability.free_neuron_rows`` on an unrestricted end point (6 sizes, the
              kink lower bound; networks without a free neuron return at once).

Prints CPU ms per network (median and max over networks) by stage and width, and how many
networks each stage would take in a default sweep (witness: every unrestricted end point;
stability and new kink: widths 8 and 16, 4 seeds, per problem).

    python bench/claims_stages.py                      # widths 8 16 64 256, 4 seeds
    python bench/claims_stages.py --widths 8 16 --seeds 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from realspace.core.canonical import canonical_form
from realspace.core.problem import make_data, network_from_params
from realspace.core.spec import RunSpec
from realspace.core.stability import free_neuron_rows, stability_rows
from realspace.core.witness import find_witness
from realspace.train import TrainOptions, train_shard

PROBLEMS = (
    {"target": "sin"},
    {"target": "sin", "weight_decay": 0.01},
    {"target": "teacher", "teacher_width": 4},
)


def _cpu_ms(fn, *args) -> float:
    t = time.process_time()
    fn(*args)
    return 1e3 * (time.process_time() - t)


def end_points(width: int, parametrization: str, seeds: int):
    specs = [
        RunSpec(**p, width=width, parametrization=parametrization, steps=2000, seed=s)
        for p in PROBLEMS
        for s in range(seeds)
    ]
    out = []
    for p in PROBLEMS:  # one shape per shard
        part = [
            s
            for s in specs
            if s.target == p["target"] and s.weight_decay == p.get("weight_decay", 0.0)
        ]
        result = train_shard(part, TrainOptions())
        for m, spec in enumerate(part):
            params = {k: v[m] for k, v in result.params.items()}
            out.append((spec, network_from_params(params, spec.has_linear)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 64, 256])
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'stage':10s} {'width':>6s} {'networks':>9s} {'median ms':>10s} {'max ms':>8s}")
    for width in args.widths:
        unrestricted = end_points(width, "unrestricted", args.seeds)
        restricted = end_points(width, "restricted", args.seeds)
        times = {"witness": [], "stability": [], "new kink": []}
        for spec, net in unrestricted:
            x, y = make_data(spec)
            call = (net, x, y, spec.loss, spec.weight_decay, spec.D)
            times["witness"].append(_cpu_ms(find_witness, *call))
            times["new kink"].append(_cpu_ms(free_neuron_rows, net, spec.D))
        for spec, net in restricted:
            gamma = canonical_form(net, spec.D)
            times["stability"].append(_cpu_ms(stability_rows, gamma, spec.D))
        for stage, ms in times.items():
            ms = np.array(ms)
            print(f"{stage:10s} {width:6d} {ms.size:9d} {np.median(ms):10.1f} {ms.max():8.1f}")
    print(
        "default sweep: witness on 192 unrestricted end points (3 problems x 8 widths x 8 "
        "seeds); stability and new kink on 24 each (3 problems x widths 8, 16 x 4 seeds)"
    )


if __name__ == "__main__":
    main()
