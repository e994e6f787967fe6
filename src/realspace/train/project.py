"""Keeping restricted runs inside Omega_N (balanced, kinks inside Q, no duplicate or
opposite hyperplanes), on stacked tensors.

After every optimizer step of a restricted run:

1. Exact folds (realization unchanged on Q; the affine part (w, e) is free):
   a neuron with a_i = 0 is the constant c_i rho(b_i) -> e; a dead one
   (b_i <= -D||a_i||_1) is dropped; an affine one (b_i >= D||a_i||_1) becomes
   c_i(<a_i,x> + b_i) -> (w, e); one with c_i = 0 is dropped. The neuron is freed.
2. Kink clamp (changes the realization slightly, counted as ``kink``): a kink within
   ``kink_margin`` of the boundary, |b_i| > (1 - kink_margin) D||a_i||_1, is moved back
   to |b_i| = (1 - kink_margin) D||a_i||_1.
3. Merge (every ``merge_every`` steps and before every recorded state; counted as
   ``merge``): two neurons whose (a, b) are within angle ``merge_angle`` become one on
   the first one's hyperplane, gamma = gamma_i + gamma_j with gamma = c ||a||; for
   opposite orientations gamma_j rho(-z) = gamma_j rho(z) - gamma_j z moves
   -gamma_j (a^_i, b^_i) into (w, e). The second neuron is freed.
4. Rebalance (exact symmetry): (a_i, b_i, c_i) -> (s a_i, s b_i, c_i / s),
   s = sqrt(|c_i| / ||a_i||_2), so |c_i| = ||a_i||_2 and c_i rho(z_i) is unchanged.
5. Reseed (counted as ``reseed``): each freed neuron restarts small and balanced,
   |c| = ||a|| = ``reseed_scale``, its kink through a uniform point of the cube, drawn
   from the run's own stream (seed, step, neuron).

Folds and rebalancing are exact; kink clamps, merges and reseeds move the
realization by O(kink_margin), O(merge_angle) and O(reseed_scale^2) respectively,
and are counted per run.
"""

from __future__ import annotations

import numpy as np
import torch

from .problem import STREAM_RESEED, rng_for

__all__ = ["project_restricted", "rebalance", "COUNTERS"]

COUNTERS = ("folded", "kink", "merge", "reseed")


def rebalance(p: dict, rows: torch.Tensor) -> dict:
    """Exact rebalancing |c_i| = ||a_i||_2 of the live neurons of networks ``rows``."""
    norm = p["a"].norm(dim=-1)
    ok = (norm > 0) & (p["c"] != 0) & rows[:, None]
    s = torch.where(ok, torch.sqrt(p["c"].abs() / norm.where(ok, torch.ones_like(norm))), 1.0)
    return {**p, "a": p["a"] * s[..., None], "b": p["b"] * s, "c": p["c"] / s}


def project_restricted(
    p: dict,
    rows: torch.Tensor,
    D: torch.Tensor,
    counts: dict,
    step: int,
    seeds: list[int],
    *,
    kink_margin: float,
    merge: bool,
    merge_angle: float,
    reseed_scale: float,
) -> tuple[dict, torch.Tensor]:
    """Project networks ``rows`` (M,) bool into Omega_N; returns (params, reseeded (M, N))."""
    a, b, c, e, w = (p[k].clone() for k in ("a", "b", "c", "e", "w"))
    active = rows[:, None]
    norm = a.norm(dim=-1)
    reach = D[:, None] * a.abs().sum(-1)
    const = active & (norm == 0) & (c != 0)
    dead = active & (norm > 0) & (b <= -reach)
    affine = active & (norm > 0) & (b >= reach)
    silent = active & (c == 0)
    e = e + (c * torch.relu(b) * const).sum(1) + (c * b * affine).sum(1)
    w = w + torch.bmm((c * affine)[:, None, :], a)[:, 0, :]
    freed = const | dead | affine | silent
    counts["folded"] += (freed & ((norm > 0) | (b != 0) | (c != 0))).sum(1)

    limit = (1.0 - kink_margin) * reach
    clamp = active & ~freed & (b.abs() > limit)
    b = torch.where(clamp, torch.sign(b) * limit, b)
    counts["kink"] += clamp.sum(1)

    if merge:
        live = active & ~freed
        u = torch.cat([a, b[..., None]], dim=-1)
        u = u / u.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(u.dtype).tiny)
        cos = torch.bmm(u, u.transpose(1, 2))
        pair = torch.triu(live[:, :, None] & live[:, None, :], diagonal=1)
        close = pair & (cos.abs() > np.cos(merge_angle))
        if close.any():
            for m, i, j in close.nonzero().tolist():
                if freed[m, i] or freed[m, j]:
                    continue  # already merged this round; the next check catches it
                ni = a[m, i].norm()
                a_hat, b_hat = a[m, i] / ni, b[m, i] / ni
                g_i, g_j = c[m, i] * ni, c[m, j] * a[m, j].norm()
                if cos[m, i, j] < 0:  # gamma_j rho(-z) = gamma_j rho(z) - gamma_j z
                    w[m] -= g_j * a_hat
                    e[m] -= g_j * b_hat
                g = g_i + g_j
                t = g.abs().sqrt()
                a[m, i], b[m, i], c[m, i] = t * a_hat, t * b_hat, torch.sign(g) * t
                freed[m, j] = True
                if g == 0:
                    freed[m, i] = True
                counts["merge"][m] += 1

    a, b, c = a * ~freed[..., None], b * ~freed, c * ~freed
    out = rebalance({**p, "a": a, "b": b, "c": c, "e": e, "w": w}, rows)
    if freed.any():
        out = {k: v.clone() for k, v in out.items()}
        d = a.shape[-1]
        for m, i in freed.nonzero().tolist():
            rng = rng_for(seeds[m], STREAM_RESEED, step, i)
            direction = rng.standard_normal(d)
            direction /= np.linalg.norm(direction)
            point = rng.uniform(-float(D[m]), float(D[m]), d)
            sign = rng.choice([-1.0, 1.0])
            t = reseed_scale
            out["a"][m, i] = torch.as_tensor(t * direction, dtype=a.dtype)
            out["b"][m, i] = float(-t * direction @ point)
            out["c"][m, i] = sign * t
        counts["reseed"] += freed.sum(1)
    return out, freed
