"""Intrinsic coordinates of the restricted set: every point is in Omega_N by construction.

Per neuron a direction ``v`` (d,), a kink coordinate ``kappa`` and a signed amplitude
``r``; the affine part (w, e) is free. With a^ = v / ||v||_2 and tau = kappa /
sqrt(1 + kappa^2) in (-1, 1):

    a_i = |r_i| a^_i,   b_i = -|r_i| tau_i D ||a^_i||_1,   c_i = r_i,

so c_i rho(<a_i, x> + b_i) = r_i |r_i| rho(<a^_i, x> - tau_i D ||a^_i||_1). Every such
neuron is balanced (R1: |c_i| = ||a_i||_2) and, unless r_i = 0 (padding), has its kink
strictly inside Q (R2: |b_i| = |tau_i| D ||a_i||_1 < D ||a_i||_1). R3/R4 (no exactly
(anti)parallel pair) fail only on a set of measure zero; exact merges handle it at
recorded states (``merged_params``). No step needs a clamp or a rebalance.

The gradients are pulled back from those of (a, b, c) in closed form (``pullback``):
the kernels of model.py compute dJ/d(a, b, c, e, w) as for any network.

The math: docs/science.md#training (intrinsic coordinates).
"""

from __future__ import annotations

import torch

from .project import merge_close, rebalance, reseed_draws

__all__ = [
    "COORDS",
    "coordinate_names",
    "kink_position",
    "realize",
    "pullback",
    "to_coordinates",
    "merged_params",
    "merge_and_reseed",
]

COORDS = ("v", "kappa", "r", "e", "w")


def coordinate_names(bias: bool, train_output: bool) -> tuple[str, ...]:
    """The trained coordinates, in flat-layout order: v always, kappa and e with a bias,
    r when the output weights train, w (the affine part of a restricted run)."""
    names = ["v"]
    if bias:
        names += ["kappa", "e"]
    if train_output:
        names.append("r")
    return (*names, "w")


def kink_position(kappa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """tau = kappa / sqrt(1 + kappa^2) in (-1, 1) and dtau/dkappa = (1 + kappa^2)^(-3/2).

    Algebraic rather than tanh: tanh rounds to 1 at kappa ~ 9 in float32 (a kink on the
    cube's boundary, outside R2) and its derivative decays like exp(-2|kappa|); this map
    stays below 1 in float32 up to |kappa| ~ 4e3, which Adam (steps ~ lr) does not reach
    in a run's budget, and its derivative decays only like |kappa|^-3.
    """
    s = 1.0 / torch.sqrt(1.0 + kappa * kappa)
    return kappa * s, s * s * s


def _direction(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a^ = v / ||v||_2 (M, N, d) and ||v||_2 (M, N, 1); v = 0 gives a^ = 0 (padding)."""
    nv = v.norm(dim=-1, keepdim=True)
    return v / nv.clamp_min(torch.finfo(v.dtype).tiny), nv


def realize(q: dict, D: torch.Tensor) -> dict:
    """The network (a, b, c, e, w) of coordinates ``q`` (v (M, N, d), kappa, r (M, N),
    e (M,), w (M, d)); ``D`` (M,) the cube's half-widths."""
    ah, _ = _direction(q["v"])
    tau, _ = kink_position(q["kappa"])
    amp = q["r"].abs()
    a = amp[..., None] * ah
    b = -amp * tau * D[:, None] * ah.abs().sum(-1)
    return {"a": a, "b": b, "c": q["r"], "e": q["e"], "w": q["w"]}


def pullback(q: dict, g: dict, D: torch.Tensor) -> dict:
    """dJ/d(v, kappa, r, e, w) from dJ/d(a, b, c, e, w) ``g`` at coordinates ``q``.

    With s = sign(r), n1 = ||a^||_1, sigma = sign(a^) (the gradient of n1 off its kinks),
    P = I - a^ a^T (the tangent projection of v -> v / ||v||):

        dJ/dr     = g_c + s (<g_a, a^> - tau D n1 g_b)
        dJ/dkappa = -g_b |r| D n1 dtau/dkappa
        dJ/dv     = P |r| (g_a - tau D g_b sigma) / ||v||_2

    In d = 1, P = 0: a neuron keeps its orientation, which loses nothing as (w, e) are
    free (gamma rho(z) = gamma rho(-z) + gamma z).
    """
    ah, nv = _direction(q["v"])
    tau, dtau = kink_position(q["kappa"])
    r = q["r"]
    amp, s = r.abs(), torch.sign(r)
    Dn = D[:, None]
    n1 = ah.abs().sum(-1)
    ga, gb = g["a"], g["b"]
    g_ah = amp[..., None] * (ga - (tau * Dn * gb)[..., None] * torch.sign(ah))
    g_v = (g_ah - (g_ah * ah).sum(-1, keepdim=True) * ah) / nv.clamp_min(torch.finfo(r.dtype).tiny)
    return {
        "v": g_v,
        "kappa": -gb * amp * Dn * n1 * dtau,
        "r": g["c"] + s * ((ga * ah).sum(-1) - tau * Dn * n1 * gb),
        "e": g["e"],
        "w": g["w"],
    }


def to_coordinates(p: dict, D: torch.Tensor) -> dict:
    """Coordinates of a network whose live neurons have their kink strictly inside Q
    (|b_i| < D ||a_i||_1); balance is not needed: gamma_i = c_i ||a_i||_2 is kept, with
    r = sign(gamma) |gamma|^(1/2), v = a^ = a / ||a||_2 (unit), and
    tau = -b / (||a||_2 D ||a^||_1). Neurons with a = 0 or c = 0 get r = 0 (padding).
    """
    a, b, c = p["a"], p["b"], p["c"]
    na = a.norm(dim=-1)
    live = (na > 0) & (c != 0)
    safe = torch.where(live, na, torch.ones_like(na))
    ah = a / safe[..., None]
    n1 = ah.abs().sum(-1)
    tau = torch.where(live, -b / (safe * D[:, None] * n1.where(live, torch.ones_like(n1))), 0.0)
    gamma = c * na
    r = torch.where(live, torch.sign(gamma) * gamma.abs().sqrt(), 0.0)
    v = torch.where(live[..., None], ah, 0.0)
    kappa = tau / torch.sqrt((1.0 - tau * tau).clamp_min(torch.finfo(tau.dtype).tiny))
    return {"v": v, "kappa": kappa, "r": r, "e": p["e"], "w": p["w"]}


def merged_params(q: dict, D: torch.Tensor, merge_angle: float, counts: dict) -> dict:
    """A recorded state: the network of ``q``, balanced, with (anti)parallel pairs merged
    (rounds of ``merge_close`` until none is left; the freed neurons become padding, which
    Omega_N allows). Training goes on from ``q`` itself, untouched."""
    p = realize(q, D)
    a, b, c, e, w = (p[k] for k in ("a", "b", "c", "e", "w"))
    while True:
        live = (c != 0) & (a.norm(dim=-1) > 0)
        m = merge_close(a, b, c, e, w, live, counts, merge_angle, D)
        if not m.freed.any():
            break
        keep = ~m.freed
        a, b, c, e, w = m.a * keep[..., None], m.b * keep, m.c * keep, m.e, m.w
    rows = torch.ones(a.shape[0], dtype=torch.bool, device=a.device)
    return rebalance({"a": a, "b": b, "c": c, "e": e, "w": w}, rows)


def merge_and_reseed(
    q: dict,
    rows: torch.Tensor,
    D: torch.Tensor,
    counts: dict,
    step: int,
    seeds: torch.Tensor,
    *,
    merge: bool,
    merge_angle: float,
    reseed_scale: float,
) -> tuple[dict, torch.Tensor]:
    """During training: merge (one round, when ``merge``) and reseed the neurons of
    networks ``rows`` (M,) that are padding (r = 0 or v = 0: such a neuron has zero
    gradient and would never move). Returns (coordinates, reset (M, N)): the neurons whose
    coordinates changed, whose optimizer moments start afresh.

    A survivor keeps its direction and kink (v, kappa) and takes r = c of the merged,
    balanced neuron; a reseeded one gets the coordinates of ``reseed_draws``.
    """
    p = realize(q, D)
    active = rows[:, None]
    dead = active & ((q["r"] == 0) | (q["v"].norm(dim=-1) == 0))
    counts["folded"] += (dead & (q["r"] != 0)).sum(1)
    q = dict(q)
    survivor = torch.zeros_like(dead)
    if merge:
        m = merge_close(
            p["a"], p["b"], p["c"], p["e"], p["w"], active & ~dead, counts, merge_angle, D
        )
        survivor = m.survivor
        q["r"] = torch.where(survivor, m.c, q["r"])
        q["e"], q["w"] = m.e, m.w
        dead = dead | m.freed
    if dead.any():
        ra, rb, rc = reseed_draws(
            seeds, step, q["r"].shape[1], q["v"].shape[-1], D, reseed_scale, q["r"].dtype
        )
        fresh = to_coordinates({"a": ra, "b": rb, "c": rc, "e": q["e"], "w": q["w"]}, D)
        for k in ("v", "kappa", "r"):
            m = dead[..., None] if k == "v" else dead
            q[k] = torch.where(m, fresh[k], q[k])
        counts["reseed"] += dead.sum(1)
    return q, dead | survivor
