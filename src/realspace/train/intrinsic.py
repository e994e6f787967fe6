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

Vector outputs (m >= 2, the cross-entropy): the amplitude r_i is a vector of R^m and
|r_i| reads ||r_i||_2: a_i = ||r_i|| a^_i, b_i = -||r_i|| tau_i D ||a^_i||_1, c_i = r_i, so
c_i rho(<a_i, x> + b_i) = r_i ||r_i|| rho(<a^_i, x> - tau_i D ||a^_i||_1) and R1 reads
||c_i||_2 = ||a_i||_2.

The gradients are pulled back from those of (a, b, c) in closed form (``pullback``):
the kernels of model.py compute dJ/d(a, b, c, e, w) as for any network.

The math: docs/science.md#training (intrinsic coordinates).
"""

from __future__ import annotations

import torch

from .model import realization
from .project import c_norm, merge_close, per_neuron, rebalance, reseed_draws

__all__ = [
    "COORDS",
    "coordinate_names",
    "kink_position",
    "realize",
    "pullback",
    "to_coordinates",
    "merged_params",
    "gap_merges",
    "insertions",
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
    e (M,), w (M, d); vector outputs r (M, N, m), e (M, m), w (M, m, d)); ``D`` (M,) the
    cube's half-widths."""
    ah, _ = _direction(q["v"])
    tau, _ = kink_position(q["kappa"])
    amp = c_norm(q["r"])
    a = amp[..., None] * ah
    b = -amp * tau * D[:, None] * ah.abs().sum(-1)
    return {"a": a, "b": b, "c": q["r"], "e": q["e"], "w": q["w"]}


def pullback(q: dict, g: dict, D: torch.Tensor) -> dict:
    """dJ/d(v, kappa, r, e, w) from dJ/d(a, b, c, e, w) ``g`` at coordinates ``q``.

    With s = sign(r) (vector outputs: s = r / ||r||_2, the gradient of |r| = ||r||_2, and
    0 at r = 0), n1 = ||a^||_1, sigma = sign(a^) (the gradient of n1 off its kinks),
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
    if r.dim() == 2:
        amp, s = r.abs(), torch.sign(r)
    else:
        amp = c_norm(r)
        s = r / amp.clamp_min(torch.finfo(r.dtype).tiny)[..., None]
    Dn = D[:, None]
    n1 = ah.abs().sum(-1)
    ga, gb = g["a"], g["b"]
    g_ah = amp[..., None] * (ga - (tau * Dn * gb)[..., None] * torch.sign(ah))
    g_v = (g_ah - (g_ah * ah).sum(-1, keepdim=True) * ah) / nv.clamp_min(torch.finfo(r.dtype).tiny)
    return {
        "v": g_v,
        "kappa": -gb * amp * Dn * n1 * dtau,
        "r": g["c"] + s * per_neuron((ga * ah).sum(-1) - tau * Dn * n1 * gb, s),
        "e": g["e"],
        "w": g["w"],
    }


def to_coordinates(p: dict, D: torch.Tensor) -> dict:
    """Coordinates of a network whose live neurons have their kink strictly inside Q
    (|b_i| < D ||a_i||_1); balance is not needed: gamma_i = c_i ||a_i||_2 is kept, with
    r = sign(gamma) |gamma|^(1/2), v = a^ = a / ||a||_2 (unit), and
    tau = -b / (||a||_2 D ||a^||_1). Neurons with a = 0 or c = 0 get r = 0 (padding).
    Vector outputs: gamma_i = c_i ||a_i||_2 (m,) and r = gamma / ||gamma||^(1/2).
    """
    a, b, c = p["a"], p["b"], p["c"]
    na = a.norm(dim=-1)
    live = (na > 0) & (c_norm(c) != 0)
    safe = torch.where(live, na, torch.ones_like(na))
    ah = a / safe[..., None]
    n1 = ah.abs().sum(-1)
    tau = torch.where(live, -b / (safe * D[:, None] * n1.where(live, torch.ones_like(n1))), 0.0)
    if c.dim() == 2:
        gamma = c * na
        r = torch.where(live, torch.sign(gamma) * gamma.abs().sqrt(), 0.0)
    else:
        gamma = c * na[..., None]
        root = c_norm(gamma).sqrt()
        r = torch.where(live[..., None], gamma / root.where(live, 1.0)[..., None], 0.0)
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
        live = (c_norm(c) != 0) & (a.norm(dim=-1) > 0)
        m = merge_close(a, b, c, e, w, live, counts, merge_angle, D)
        if not m.freed.any():
            break
        keep = ~m.freed
        a, b, c, e, w = m.a * keep[..., None], m.b * keep, m.c * per_neuron(keep, m.c), m.e, m.w
    rows = torch.ones(a.shape[0], dtype=torch.bool, device=a.device)
    return rebalance({"a": a, "b": b, "c": c, "e": e, "w": w}, rows)


def gap_merges(
    q: dict, xs: torch.Tensor, D: torch.Tensor, live: torch.Tensor
) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """d = 1: merge the live neurons whose kinks lie between the same two consecutive
    samples and whose kink amplitudes have one sign. The objective on the data does not
    move (up to rounding); the freed neurons can be placed elsewhere.

    In d = 1 neuron i is gamma_i rho(o_i (x - t_i)), gamma_i = r_i |r_i|, orientation
    o_i = sign(v_i), kink t_i = o_i tau_i D; with rho(-z) = rho(z) - z it is
    gamma_i rho(x - t_i) - [o_i < 0] gamma_i (x - t_i). On samples that all lie on one side
    of every kink of a group, sum_k gamma_k rho(x - t_k) = gamma rho(x - t) with
    gamma = sum_k gamma_k and t = sum_k gamma_k t_k / gamma, which lies between the
    group's kinks (one sign: a convex combination), so in the same gap. The survivor (the
    group's first index) keeps its orientation and takes (gamma, t); the affine part takes
    the difference of the groups' affine terms, so the realization is unchanged at every
    sample. The penalty (lam / 2) sum (c^2 + |a|^2) = lam sum |gamma| of balanced neurons
    is unchanged too: one sign.

    ``xs`` (M, n) each network's sorted sample points, ``live`` (M, N) the neurons that
    may merge. Returns (coordinates, freed (M, N), survivor (M, N)).
    """
    o = torch.sign(q["v"][..., 0])
    tau, _ = kink_position(q["kappa"])
    t = o * tau * D[:, None]
    r = q["r"]
    g = r * r.abs()
    M, N = r.shape
    idx = torch.arange(N, device=r.device).expand(M, N)
    gap = torch.searchsorted(xs.contiguous(), t.contiguous())
    # one key per (gap, sign); neurons that may not merge get keys of their own (< 0)
    key = torch.where(live & (g != 0), 2 * gap + (g > 0).long(), -1 - idx)
    order = torch.argsort(key, dim=1, stable=True)  # stable: a group's first index leads
    ks = key.gather(1, order)
    first = torch.ones_like(ks, dtype=torch.bool)
    first[:, 1:] = ks[:, 1:] != ks[:, :-1]
    gid = torch.empty_like(order).scatter_(1, order, first.long().cumsum(1) - 1)
    size = torch.zeros_like(g).scatter_add_(1, gid, torch.ones_like(g))
    member = size.gather(1, gid) > 1
    lead = torch.empty_like(first).scatter_(1, order, first)
    survivor, freed = member & lead, member & ~lead
    zero = torch.zeros_like(g)
    G = zero.scatter_add(1, gid, torch.where(member, g, zero)).gather(1, gid)
    GT = zero.scatter_add(1, gid, torch.where(member, g * t, zero)).gather(1, gid)
    t_new = GT / torch.where(survivor, G, torch.ones_like(G))
    flip = o < 0
    fm, fs = member & flip, survivor & flip
    dw = -torch.where(fm, g, zero).sum(1) + torch.where(fs, G, zero).sum(1)
    de = torch.where(fm, g * t, zero).sum(1) - torch.where(fs, G * t_new, zero).sum(1)
    tau_new = (o * t_new / D[:, None]).clamp(-1.0, 1.0)
    kappa_new = tau_new / torch.sqrt((1.0 - tau_new * tau_new).clamp_min(torch.finfo(r.dtype).tiny))
    out = dict(q)
    out["r"] = torch.where(survivor, torch.sign(G) * G.abs().sqrt(), r)
    out["kappa"] = torch.where(survivor, kappa_new, q["kappa"])
    out["w"] = q["w"] + dw[:, None]
    out["e"] = q["e"] + de
    return out, freed, survivor


def insertions(
    q: dict,
    data: tuple[torch.Tensor, torch.Tensor],
    D: torch.Tensor,
    freed: torch.Tensor,
    scale: float,
) -> dict:
    """d = 1 MSE: coordinates for the ``freed`` (M, N) neurons, each placed where a new
    neuron lowers the loss fastest (the conditional-gradient step of the convex problem
    over neurons), with amplitude |r| = ``scale``.

    Adding gamma rho(x - t) to f moves the loss (1/n) sum (f - y)^2 at rate
    (2/n) S(t), S(t) = sum_{x_i > t} res_i (x_i - t); res is f - y less its least-squares
    affine fit (the affine part (w, e) is trained, and absorbs the rest), orthogonal to 1
    and x, so that rho(t - x) = rho(x - t) - (x - t) has the same rate.
    S is linear between samples: the candidates are the midpoints of consecutive
    samples, S from suffix sums in O(n). The j-th freed neuron of a network (index
    order) takes the j-th largest |S|, gamma of sign -sign(S); orientation +1.
    ``data``: each network's samples (M, n), sorted, and targets (M, n).
    """
    xs, ys = data
    f, _ = realization(realize(q, D), xs[..., None])
    res = f - ys
    # the affine part is trained: score what it cannot absorb (res minus its least-squares
    # affine fit); else S, largest at the ends for any affine residual, puts every
    # neuron at the cube's edge, where it is nearly affine
    xc = xs - xs.mean(1, keepdim=True)
    res = res - res.mean(1, keepdim=True)
    res = res - xc * (res * xc).sum(1, keepdim=True) / (xc * xc).sum(1, keepdim=True)
    # S at the midpoint t_k of (x_k, x_{k+1}): suffix sums over i > k
    p0 = res.flip(1).cumsum(1).flip(1)[:, 1:]
    p1 = (res * xs).flip(1).cumsum(1).flip(1)[:, 1:]
    t = 0.5 * (xs[:, 1:] + xs[:, :-1])
    S = p1 - t * p0
    k = min(int(freed.sum(1).max()), S.shape[1])
    best = S.abs().topk(k, dim=1).indices  # (M, k)
    rank = (freed.cumsum(1) - 1).clamp(0, k - 1)  # the j-th freed neuron takes the j-th gap
    gap = best.gather(1, rank)
    tk, sk = t.gather(1, gap), S.gather(1, gap)
    tau = (tk / D[:, None]).clamp(-1.0, 1.0)
    out = dict(q)
    out["v"] = torch.where(freed[..., None], torch.ones_like(q["v"]), q["v"])
    kappa = tau / torch.sqrt((1.0 - tau * tau).clamp_min(torch.finfo(tau.dtype).tiny))
    out["kappa"] = torch.where(freed, kappa, q["kappa"])
    out["r"] = torch.where(freed, -torch.sign(sk) * scale, q["r"])
    return out


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
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[dict, torch.Tensor]:
    """During training: merge (one round, when ``merge``: of pairs within ``merge_angle``,
    or, given ``data`` (sorted samples and targets (M, n) of a d = 1 MSE shard), of the
    groups of ``gap_merges``) and reseed the neurons of networks ``rows`` (M,) that are
    padding (r = 0 or v = 0: such a neuron has zero gradient and would never move) or were
    freed: at random (``reseed_draws``), or given ``data`` where they help most
    (``insertions``). Returns (coordinates,
    reset (M, N)): the neurons whose coordinates changed, whose optimizer moments start
    afresh.

    A survivor keeps its direction and kink (v, kappa) and takes r = c of the merged,
    balanced neuron; a reseeded one gets the coordinates of ``reseed_draws``.
    """
    active = rows[:, None]
    amp = c_norm(q["r"])
    dead = active & ((amp == 0) | (q["v"].norm(dim=-1) == 0))
    counts["folded"] += (dead & (amp != 0)).sum(1)
    q = dict(q)
    survivor = torch.zeros_like(dead)
    if merge and data is not None:
        q, freed, survivor = gap_merges(q, data[0], D, active & ~dead)
        counts["merge"] += freed.sum(1)
        dead = dead | freed
    elif merge:
        p = realize(q, D)
        m = merge_close(
            p["a"], p["b"], p["c"], p["e"], p["w"], active & ~dead, counts, merge_angle, D
        )
        survivor = m.survivor
        q["r"] = torch.where(per_neuron(survivor, m.c), m.c, q["r"])
        q["e"], q["w"] = m.e, m.w
        dead = dead | m.freed
    if dead.any() and data is not None:
        q = insertions(q, data, D, dead, reseed_scale)
        counts["reseed"] += dead.sum(1)
    elif dead.any():
        r = q["r"]
        m = r.shape[-1] if r.dim() == 3 else 1
        ra, rb, rc = reseed_draws(
            seeds, step, r.shape[1], q["v"].shape[-1], D, reseed_scale, r.dtype, m
        )
        fresh = to_coordinates({"a": ra, "b": rb, "c": rc, "e": q["e"], "w": q["w"]}, D)
        for k in ("v", "kappa", "r"):
            q[k] = torch.where(per_neuron(dead, q[k]), fresh[k], q[k])
        counts["reseed"] += dead.sum(1)
    return q, dead | survivor
