"""Retraining from a trained network toward a nearby target (the third inverse-stability
experiment): start at Gamma, fit g with d_W(R(Gamma), g) = delta, measure how far the
parameters travel.

The math: docs/science.md#inverse-stability-experiments.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..inverse import perturb, restricted_start, retrain_distances
from ..nets import ShallowNet
from ..problem import make_data, network_from_params, rng_for
from ..spec import RunSpec
from .loop import TrainOptions, train_shard

__all__ = ["retrain_table", "STREAM_PERTURB"]

STREAM_PERTURB = 5  # the perturbations' random stream (after those of problem.py)


def _params(net: ShallowNet) -> dict:
    return {"a": net.a, "b": net.b, "c": net.c, "e": np.asarray(net.e), "w": net.linear}


def retrain_table(
    spec: RunSpec,
    params: dict,
    parametrization: str,
    kinds,
    deltas,
    steps: int,
    lr: float,
    options: TrainOptions | None = None,
) -> list[dict]:
    """Retrain the end point ``params`` of ``spec`` (an unrestricted d = 1 MSE run) toward
    every (kind, delta) perturbation of its realization, in ``parametrization``.

    The unrestricted runs start at Gamma itself; the restricted ones at its canonical form
    (same realization, in Omega_N, padded to the width). Data: the run's inputs, targets
    g(x); padding neurons are reseeded at scale 1e-6.
    Returns one row per perturbation: delta, the exact d_W(R(Gamma), g), the distance
    travelled (raw d_P, or the fibre distance on Omega_N), its ratios and the fit d_W.
    """
    if spec.d != 1 or spec.loss != "mse":
        raise ValueError("retraining is defined for d = 1 MSE runs")
    gamma = network_from_params(params, restricted=False)
    restricted = parametrization == "restricted"
    start = restricted_start(gamma, spec.D).padded(spec.width) if restricted else gamma
    x, _ = make_data(spec)
    jobs, targets = [], []
    for k, kind in enumerate(kinds):
        for j, delta in enumerate(deltas):
            g, d_w = perturb(
                gamma, kind, float(delta), spec.D, rng_for(spec.seed, STREAM_PERTURB, k, j)
            )
            jobs.append((kind, float(delta), d_w))
            targets.append(g)
    run = replace(
        spec,
        parametrization=parametrization,
        steps=steps,
        lr=lr,
        optimizer="adam",
        batch_size=0,
        plateau_patience=0,
    )
    # padding neurons of the restricted start are reseeded by the projection; keep them
    # tiny so that they add at most 1e-6 to the distance travelled
    options = replace(options or TrainOptions(), reseed_scale=1e-6)
    result = train_shard(
        [run] * len(jobs),
        options,
        init=[_params(start)] * len(jobs),
        data=[(x, g(x)) for g in targets],
    )
    rows = []
    for m, ((kind, delta, d_w), g) in enumerate(zip(jobs, targets, strict=True)):
        end = network_from_params({k: v[m] for k, v in result.params.items()}, restricted)
        dist = retrain_distances(start, end, g, spec.D, restricted)
        rows.append(
            {
                "parametrization": parametrization,
                "kind": kind,
                "delta": delta,
                "d_W": d_w,
                **dist,
                "r_half": dist["d_P"] / np.sqrt(d_w) if d_w > 0 else float("inf"),
                "r_one": dist["d_P"] / d_w if d_w > 0 else float("inf"),
                "width": spec.width,
                "seed": spec.seed,
            }
        )
    return rows
