"""Retraining from a trained network toward a nearby target (the third inverse-stability
experiment): start at Gamma, fit g with d_W(R(Gamma), g) = delta, measure how far the
parameters travel, beside a control that measures how far they travel for nothing.

A controlled experiment (docs/science.md#inverse-stability-experiments):

- *Targets it can fit.* Retraining minimizes the plain MSE toward g(x), without the run's
  weight decay: with it, the end point is the regularized solution for g, which can lie
  far from every parametrization of g, and the distance travelled measures the penalty,
  not inverse stability. The network gets one neuron of headroom (width N + 1, the extra
  neuron of size 1e-6), so that an added neuron (``add``) is realizable. How well the end
  point fits is recorded (``fit_d_inf``): a row whose fit error is not well below d_W did
  not reach g, and the statistics leave it out.
- *The control.* Retraining toward R(Gamma) itself (delta = 0) from the same start, with
  the same trainer: every parameter movement it makes is optimizer noise. Its distance
  is the floor of every row of that network (``floor``).
  Adam divides each gradient by its own running size, so near a fitted network it takes
  steps of about ``lr`` whatever the gradient's size: the floor is of that order.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..core.inverse import perturb, restricted_start, retrain_distances
from ..core.nets import ShallowNet
from ..core.problem import make_data, network_from_params, rng_for
from ..core.restricted import DEFAULT_TOL
from ..core.spec import RunSpec, network_label
from .loop import TrainOptions, train_shard

__all__ = ["retrain_table", "retrain_start", "STREAM_PERTURB", "HEADROOM_SCALE"]

STREAM_PERTURB = 5  # the perturbations' random stream (after those of problem.py)
HEADROOM_SCALE = 1e-6  # |c| = ||a|| of the extra neuron: it moves f by at most 2 D 1e-12


def _params(net: ShallowNet) -> dict:
    return {"a": net.a, "b": net.b, "c": net.c, "e": np.asarray(net.e), "w": net.linear}


def retrain_start(gamma: ShallowNet, spec: RunSpec, restricted: bool) -> ShallowNet:
    """Where retraining starts, at width N + 1: Gamma (unrestricted) or its canonical form
    (restricted, a point of Omega_N), padded with one neuron of size ``HEADROOM_SCALE``
    whose kink passes through a uniform point of Q (stream ``STREAM_PERTURB``, extra 0);
    the restricted trainer reseeds the canonical form's other padding at that size too."""
    base = restricted_start(gamma, spec.D) if restricted else gamma
    base = base.padded(spec.width)
    rng = rng_for(spec.seed, STREAM_PERTURB, 0)
    sign = rng.choice([-1.0, 1.0])
    p = rng.uniform(-spec.D, spec.D)
    a, c = sign * HEADROOM_SCALE, rng.choice([-1.0, 1.0]) * HEADROOM_SCALE
    return replace(
        base,
        a=np.vstack([base.a, [[a]]]),
        b=np.append(base.b, -a * p),
        c=np.append(base.c, c),
    )


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
    every (kind, delta) perturbation g of its realization, and toward R(Gamma) itself (the
    control), in ``parametrization``, without weight decay. A source run with
    ``linear_term`` keeps its trained w in Gamma, and retrains unrestricted with w trained.

    Returns one row per perturbation: ``network`` (``network_label``), ``kind``,
    ``delta``, ``d_W`` (exact d_W(R(Gamma), g)), ``d_P`` (distance travelled: raw d_P, or
    the fibre distance on Omega_N), ``d_P_bound``, ``fit_d_inf`` (sup |R(end) - g|),
    ``floor`` (the control's d_P), ``floor_bound``, ``floor_fit_d_inf``, ``r_half``,
    ``r_one``, ``width``, ``seed``, ``weight_decay`` (the source run's; retraining uses
    none), ``d_W_travel`` (exact d_W(R(start), R(end)): how far the realization moved).
    """
    if spec.d != 1 or spec.loss != "mse":
        raise ValueError("retraining is defined for d = 1 MSE runs")
    gamma = network_from_params(params, spec.has_linear)  # w: a linear_term run's own
    restricted = parametrization == "restricted"
    start = retrain_start(gamma, spec, restricted)
    x, _ = make_data(spec)
    jobs, targets = [("control", 0.0, 0.0)], [gamma]
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
        width=spec.width + 1,
        weight_decay=0.0,
        steps=steps,
        lr=lr,
        optimizer="adam",
        batch_size=0,
        plateau_patience=0,
    )
    # reseeded padding of the restricted start stays tiny; a canonical form's kinks lie
    # inside (1 - DEFAULT_TOL) D ||a||_1, so a kink margin of DEFAULT_TOL never moves one
    options = replace(
        options or TrainOptions(),
        reseed_scale=HEADROOM_SCALE,
        kink_margin=DEFAULT_TOL,
    )
    result = train_shard(
        [run] * len(jobs),
        options,
        init=[_params(start)] * len(jobs),
        data=[(x, g(x)) for g in targets],
    )
    ends = [
        network_from_params({k: v[m] for k, v in result.params.items()}, run.has_linear)
        for m in range(len(jobs))
    ]
    control = retrain_distances(start, ends[0], gamma, spec.D, restricted)
    rows = []
    for (kind, delta, d_w), g, end in zip(jobs[1:], targets[1:], ends[1:], strict=True):
        dist = retrain_distances(start, end, g, spec.D, restricted)
        rows.append(
            {
                "network": network_label(spec),
                "parametrization": parametrization,
                "kind": kind,
                "delta": delta,
                "d_W": d_w,
                **dist,
                "floor": control["d_P"],
                "floor_bound": control["d_P_bound"],
                "floor_fit_d_inf": control["fit_d_inf"],
                "r_half": dist["d_P"] / np.sqrt(d_w) if d_w > 0 else float("inf"),
                "r_one": dist["d_P"] / d_w if d_w > 0 else float("inf"),
                "width": spec.width,
                "seed": spec.seed,
                "weight_decay": spec.weight_decay,
            }
        )
    return rows
