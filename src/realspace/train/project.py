"""Keeping restricted runs inside Omega_N (balanced, kinks inside Q, no duplicate or
opposite hyperplanes), on stacked tensors.

After every optimizer step of a restricted run:

1. Exact folds (realization unchanged on Q): a neuron with a_i = 0 is the constant
   c_i rho(b_i) -> e; one with c_i = 0 is dropped. The neuron is freed.
2. Kink clamp (changes the realization slightly, counted as ``kink``): a kink outside
   the cube or within ``kink_margin`` of its boundary, |b_i| > (1 - kink_margin)
   D||a_i||_1, is moved back to |b_i| = (1 - kink_margin) D||a_i||_1. A step moves a
   kink only a little, so pushing it back changes the realization by about
   |c_i| (|b_i| - |b_i'|); folding an exited neuron into (w, e) instead would be exact
   but would destroy it, and under Adam's scale-free steps small neurons exit often.
3. Merge (every ``merge_every`` steps and before every recorded state; counted as
   ``merge``): two neurons whose (a, b) are within angle ``merge_angle`` become one on
   the first one's hyperplane, gamma = gamma_i + gamma_j with gamma = c ||a||; for
   opposite orientations gamma_j rho(-z) = gamma_j rho(z) - gamma_j z moves
   -gamma_j (a^_i, b^_i) into (w, e). The second neuron is freed.
4. Rebalance (exact symmetry): (a_i, b_i, c_i) -> (s a_i, s b_i, c_i / s),
   s = sqrt(|c_i| / ||a_i||_2), so |c_i| = ||a_i||_2 and c_i rho(z_i) is unchanged.
5. Reseed (counted as ``reseed``): each freed neuron restarts small and balanced,
   |c| = ||a|| = ``reseed_scale``, a uniform direction, its kink through a uniform point
   of the cube, drawn by a counter-based hash of (seed, step, neuron): vectorized, and
   independent of the shard and the device.

Folds and rebalancing are exact; kink clamps, merges and reseeds move the
realization by O(kink_margin), O(merge_angle) and O(reseed_scale^2) respectively,
and are counted per run.

Vector outputs (c (M, N, m), e (M, m), w (M, m, d); the cross-entropy): |c_i| reads
||c_i||_2 throughout, gamma_i = c_i ||a_i||_2 is a vector, a merge adds the gammas and
an opposite pair moves -gamma_j (a^_i, b^_i) into (W, e) as an outer product, and a
reseeded neuron's c_i has a uniform direction in R^m.

The math: docs/science.md#training.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..core.problem import STREAM_RESEED

__all__ = [
    "project_restricted",
    "rebalance",
    "merge_close",
    "Merged",
    "reseed_draws",
    "COUNTERS",
    "seed_tensor",
    "c_norm",
    "per_neuron",
]


def c_norm(c: torch.Tensor) -> torch.Tensor:
    """|c_i| (M, N): the absolute value of scalar output weights c (M, N), the Euclidean
    norm ||c_i||_2 of vector ones c (M, N, m)."""
    return c.abs() if c.dim() == 2 else torch.linalg.vector_norm(c, dim=-1)


def per_neuron(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (M, N) mask with trailing axes to broadcast against ``like`` (M, N, ...)."""
    return mask.reshape(*mask.shape, *([1] * (like.dim() - mask.dim())))


def seed_tensor(seeds: list[int], device) -> torch.Tensor:
    """Run seeds as int64, mixed once (so nearby seeds give unrelated streams)."""
    raw = torch.tensor([int(s) for s in seeds], dtype=torch.int64, device=device)
    return _mix(raw ^ (STREAM_RESEED << 56))


def _signed(c: int) -> int:
    """A 64-bit constant as the int64 with the same bit pattern."""
    return c - (1 << 64) if c >= 1 << 63 else c


def _mix(x: torch.Tensor) -> torch.Tensor:
    """splitmix64 finalizer on int64 tensors (multiplication wraps modulo 2^64)."""
    x = x + _signed(0x9E3779B97F4A7C15)
    x = (x ^ _lsr(x, 30)) * _signed(0xBF58476D1CE4E5B9)
    x = (x ^ _lsr(x, 27)) * _signed(0x94D049BB133111EB)
    return x ^ _lsr(x, 31)


def _lsr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def _uniforms(seeds: torch.Tensor, step: int, n: int, k: int, dtype) -> torch.Tensor:
    """(M, n, k) uniforms in [0, 1) from a counter-based hash of (seed, step, neuron, draw):
    a run's draws never depend on its shard-mates or on the device."""
    dev = seeds.device
    neuron = torch.arange(n, device=dev, dtype=torch.int64)[None, :, None]
    draw = torch.arange(k, device=dev, dtype=torch.int64)[None, None, :]
    # ``step`` an int, or a 0-d int64 tensor inside a compiled step (no graph per step)
    steps = step.expand_as(seeds) if torch.is_tensor(step) else torch.full_like(seeds, step)
    h = _mix(seeds[:, None, None] ^ _mix(steps[:, None, None]))
    h = _mix(h ^ (neuron * k + draw))
    return (_lsr(h, 11).to(torch.float64) * 2.0**-53).to(dtype)


COUNTERS = ("folded", "kink", "merge", "reseed")
MERGE_PREFILTER = 1e-3  # rad: float32's Gram matrix resolves angles down to about this


def reseed_draws(
    seeds: torch.Tensor,
    step: int,
    n: int,
    d: int,
    D: torch.Tensor,
    scale: float,
    dtype,
    outputs: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fresh small balanced neurons (a (M, n, d), b (M, n), c (M, n)) for every slot:
    |c| = ||a||_2 = ``scale``, a uniform direction, the kink through a uniform point of
    Q = [-D, D]^d, a random sign. With ``outputs`` = m >= 2, c (M, n, m) has a uniform
    direction in R^m instead of a sign (further draws of the same hash). The caller keeps
    the slots it frees.

    Such a neuron moves f by at most |c| (D ||a||_1 + |b|) <= 2 sqrt(d) D scale^2 on Q.
    """
    half = (d + 1) // 2
    u = _uniforms(seeds, step, n, 2 * half + d + 1, dtype)
    # Box-Muller normals for the direction, uniforms for the kink's point and the sign
    r = torch.sqrt(-2.0 * torch.log1p(-u[..., :half]))  # 1 - u in (0, 1]: finite
    ang = 2 * np.pi * u[..., half : 2 * half]
    direction = torch.cat([r * torch.cos(ang), r * torch.sin(ang)], dim=-1)[..., :d]
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    point = (2 * u[..., 2 * half : 2 * half + d] - 1) * D[:, None, None]
    a, b = scale * direction, -scale * (direction * point).sum(-1)
    if outputs > 1:
        return a, b, scale * _unit_normals(seeds, step, n, outputs, dtype)
    sign = torch.where(u[..., -1] < 0.5, -1.0, 1.0).to(dtype)
    return a, b, sign * scale


def _unit_normals(seeds: torch.Tensor, step: int, n: int, m: int, dtype) -> torch.Tensor:
    """(M, n, m) uniform unit vectors from the hash of (seed, step, neuron), on a step
    counter apart from ``reseed_draws``' own (negative)."""
    half = (m + 1) // 2
    u = _uniforms(seeds, -1 - step, n, 2 * half, dtype)
    r = torch.sqrt(-2.0 * torch.log1p(-u[..., :half]))
    ang = 2 * np.pi * u[..., half:]
    v = torch.cat([r * torch.cos(ang), r * torch.sin(ang)], dim=-1)[..., :m]
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-30)


class Merged(NamedTuple):
    """A merge round's result: the new parameters (a (M, N, d), b, c (M, N), e (M,),
    w (M, d)), the neurons it ``freed`` and the ``survivor`` neurons that absorbed one
    (M, N), and the ``bound`` (M,) on how far it moved each realization on Q."""

    a: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    e: torch.Tensor
    w: torch.Tensor
    freed: torch.Tensor
    survivor: torch.Tensor
    bound: torch.Tensor


def merge_close(
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    e: torch.Tensor,
    w: torch.Tensor,
    live: torch.Tensor,
    counts: dict,
    merge_angle: float,
    D: torch.Tensor,
) -> Merged:
    """One round of exact merges of (anti)parallel neurons (inputs untouched).

    Live (M, N) neurons i < j whose (a_i, b_i), (a_j, b_j) are within angle ``merge_angle``
    of each other or of antiparallel (measured as in the census), in index order, become
    one on i's hyperplane u_i = (a_i, b_i) / ||a_i||_2 with gamma = gamma_i + gamma_j
    (gamma = c ||a||_2), balanced; for an opposite pair
    gamma_j rho(-z) = gamma_j rho(z) - gamma_j z moves -gamma_j u_i into (w, e). ``freed``
    marks j (and i when gamma = 0), ``survivor`` the i that absorbed a neuron.

    The realization moves only by replacing gamma_j rho(<u_j, x~>) with
    gamma_j rho(<+-u_i, x~>), x~ = (x, 1): on Q by at most
    |gamma_j| ||u_j -+ u_i||_2 sqrt(d D^2 + 1) per merge, summed into ``bound`` (M,).
    A neuron merged into one already merged this round waits for the next round.
    Vector outputs (c (M, N, m), e (M, m), w (M, m, d)): gamma is a vector, |gamma| its
    norm, and an opposite pair moves -gamma_j (outer) (a^_i, b^_i) into (W, e).
    """
    vector = c.dim() == 3
    a, b, c, e, w = a.clone(), b.clone(), c.clone(), e.clone(), w.clone()
    freed = torch.zeros_like(live)
    survivor = torch.zeros_like(live)
    bound = torch.zeros_like(e)
    u = torch.cat([a, b[..., None]], dim=-1)
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(u.dtype).tiny)
    cos = torch.bmm(u, u.transpose(1, 2))
    pair = torch.triu(live[:, :, None] & live[:, None, :], diagonal=1)
    # candidates from the Gram matrix (which cannot resolve small angles: 1 - cos ~ t^2/2),
    # judged by the chord |u_i -+ u_j| of explicit differences, accurate to rounding: the
    # angle 2 arcsin(chord / 2) is the one restricted.hyperplane_angles and the census use
    near = pair & (cos.abs() > np.cos(max(merge_angle, MERGE_PREFILTER)))
    if not near.any():
        return Merged(a, b, c, e, w, freed, survivor, bound)
    m_, i_, j_ = near.nonzero(as_tuple=True)
    sgn_ = torch.where(cos[m_, i_, j_] >= 0, 1.0, -1.0).to(u.dtype)
    chord = (u[m_, i_] - sgn_[:, None] * u[m_, j_]).norm(dim=-1)
    within = 2.0 * torch.asin((chord / 2).clamp(max=1.0)) <= merge_angle
    reach = torch.sqrt(a.shape[-1] * D**2 + 1)
    for m, i, j in torch.stack([m_, i_, j_], 1)[within].tolist():
        if freed[m, i] or freed[m, j]:
            continue  # already merged this round; the next check catches it
        ni, nj = a[m, i].norm(), a[m, j].norm()
        a_hat, b_hat = a[m, i] / ni, b[m, i] / ni
        g_i, g_j = c[m, i] * ni, c[m, j] * nj
        sgn = 1.0 if cos[m, i, j] >= 0 else -1.0
        chord = torch.cat([a[m, j] / nj - sgn * a_hat, (b[m, j] / nj - sgn * b_hat)[None]])
        if vector:
            bound[m] += g_j.norm() * chord.norm() * reach[m]
            if sgn < 0:
                w[m] -= g_j[:, None] * a_hat[None, :]
                e[m] -= g_j * b_hat
            g = g_i + g_j
            t = g.norm().sqrt()
            a[m, i], b[m, i] = t * a_hat, t * b_hat
            c[m, i] = g / t if t > 0 else g
        else:
            bound[m] += g_j.abs() * chord.norm() * reach[m]
            if sgn < 0:  # gamma_j rho(-z) = gamma_j rho(z) - gamma_j z
                w[m] -= g_j * a_hat
                e[m] -= g_j * b_hat
            g = g_i + g_j
            t = g.abs().sqrt()
            a[m, i], b[m, i], c[m, i] = t * a_hat, t * b_hat, torch.sign(g) * t
        freed[m, j] = True
        survivor[m, i] = True
        if (g == 0).all():
            freed[m, i] = True
        counts["merge"][m] += 1
    return Merged(a, b, c, e, w, freed, survivor & ~freed, bound)


def rebalance(p: dict, rows: torch.Tensor) -> dict:
    """Exact rebalancing |c_i| = ||a_i||_2 (||c_i||_2 for vector outputs) of the live
    neurons of networks ``rows``: s = sqrt(|c_i| / ||a_i||_2), (a, b, c) -> (s a, s b, c / s)."""
    norm = p["a"].norm(dim=-1)
    cn = c_norm(p["c"])
    ok = (norm > 0) & (cn != 0) & rows[:, None]
    s = torch.where(ok, torch.sqrt(cn / norm.where(ok, torch.ones_like(norm))), 1.0)
    return {**p, "a": p["a"] * s[..., None], "b": p["b"] * s, "c": p["c"] / per_neuron(s, p["c"])}


def project_restricted(
    p: dict,
    rows: torch.Tensor,
    D: torch.Tensor,
    counts: dict,
    step: int,
    seeds: torch.Tensor,
    *,
    kink_margin: float,
    merge: bool,
    merge_angle: float,
    reseed_scale: float,
) -> tuple[dict, torch.Tensor]:
    """Project networks ``rows`` (M,) bool into Omega_N; returns (params, reseeded (M, N)).

    ``seeds`` (M,) int64 from ``seed_tensor``.
    """
    a, b, c, e, w = (p[k].clone() for k in ("a", "b", "c", "e", "w"))
    active = rows[:, None]
    norm = a.norm(dim=-1)
    reach = D[:, None] * a.abs().sum(-1)
    cn = c_norm(c)
    const = active & (norm == 0) & (cn != 0)
    silent = active & (cn == 0)
    e = e + (c * per_neuron(torch.relu(b) * const, c)).sum(1)
    freed = const | silent
    counts["folded"] += (freed & ((norm > 0) | (b != 0) | (cn != 0))).sum(1)

    limit = (1.0 - kink_margin) * reach
    clamp = active & ~freed & (b.abs() > limit)
    b = torch.where(clamp, torch.sign(b) * limit, b)
    counts["kink"] += clamp.sum(1)

    if merge:
        m = merge_close(a, b, c, e, w, active & ~freed, counts, merge_angle, D)
        a, b, c, e, w = m.a, m.b, m.c, m.e, m.w
        freed = freed | m.freed

    a, b, c = a * ~freed[..., None], b * ~freed, c * per_neuron(~freed, c)
    out = rebalance({**p, "a": a, "b": b, "c": c, "e": e, "w": w}, rows)
    # Reseed every freed neuron at once; the draws depend only on (seed, step, neuron).
    m = c.shape[-1] if c.dim() == 3 else 1
    ra, rb, rc = reseed_draws(seeds, step, a.shape[1], a.shape[-1], D, reseed_scale, a.dtype, m)
    out = {
        **out,
        "a": torch.where(freed[..., None], ra, out["a"]),
        "b": torch.where(freed, rb, out["b"]),
        "c": torch.where(per_neuron(freed, c), rc, out["c"]),
    }
    counts["reseed"] += freed.sum(1)
    return out, freed
