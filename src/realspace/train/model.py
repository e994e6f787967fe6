"""Stacked objectives: M networks of one shape evaluated in one pass, with
hand-written gradients.

Shapes: a (M, N, d), b (M, N), c (M, N), e (M,), w (M, d); data X (M, n, d),
y (M, n); Gaussian teacher rows V (M, k, d). Every operation acts row by row
on the leading network axis, so a network's numbers never depend on its
shard-mates (batched matmuls included: each batch entry is its own product).

MSE objective of one network, with r_k = f(x_k) - y_k and z_ki = <a_i, x_k> + b_i:

    J = (1/n) sum_k r_k^2 + (lam / 2) (sum_i c_i^2 + ||a_i||^2)
    dJ/dc_i = (2/n) sum_k r_k rho(z_ki) + lam c_i
    dJ/da_i = (2/n) sum_k r_k c_i 1[z_ki > 0] x_k + lam a_i,   dJ/db_i likewise without x_k
    dJ/de = (2/n) sum_k r_k,   dJ/dw = (2/n) sum_k r_k x_k

In d = 1 the same objective and gradients cost O(n + N log n) instead of O(n N)
(``mse_objective_1d``): with the samples sorted, every sum over "the samples where
neuron i is active" is a difference of prefix sums of r_k and r_k x_k, and every
sum over "the neurons active at x_k" a prefix sum of kink contributions binned by
their position among the samples.

Binary logistic loss (labels y_k in {-1, +1}, scalar output), with the same penalty:

    J = (1/n) sum_k log(1 + exp(-y_k f(x_k))) + (lam / 2) (sum_i c_i^2 + ||a_i||^2)

computed as softplus(-y_k f_k), which neither overflows nor loses the small values. Its
gradients are the MSE ones with (2/n) r_k replaced by dl/df_k = -(1/n) y_k sigmoid(-y_k f_k).

Multiclass cross-entropy (m >= 2 output components, labels y_k in {0, .., m-1} held as
floats): c (M, N, m), e (M, m), w (M, m, d), f_k in R^m, and

    J = (1/n) sum_k [logsumexp(f_k) - f_{k, y_k}] + (lam / 2) sum_i (||c_i||^2 + ||a_i||^2)
    g_k = (softmax(f_k) - onehot(y_k)) / n                        (M, n, m)
    dJ/dc_i = sum_k g_k rho(z_ki) + lam c_i,  dJ/da_i = sum_k <g_k, c_i> 1[z_ki > 0] x_k + lam a_i,
    dJ/db_i likewise without x_k,  dJ/de = sum_k g_k,  dJ/dw = sum_k g_k x_k^T (m, d).

Gaussian teacher-student (bias-free, c = 1): J = L(W) + (lam / 2)(N + sum ||w_i||^2)
with L and dL/dW in closed form through the arc-cosine kernel (see targets.py).

The math: docs/science.md#targets-and-losses.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "in_chunks",
    "mse_objective",
    "mse_objective_1d",
    "logistic_objective",
    "cross_entropy_objective",
    "gaussian_objective",
    "arccos_terms",
    "realization",
]


SUMMED = 16  # contraction or columns up to which a graph's product is a broadcast sum


def _summed(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """bmm(A, B) for A (M, p, q), B (M, q, r), in a compiled graph: with few terms (q) or
    few columns (r), the broadcast product summed over q, fused into the loops around
    it instead of M small matrix products (the dense step in d = 2 at N = 64, n = 256:
    14 -> 11 ms on a CPU); else bmm (a real matrix product, large d). Eager it would build
    (M, p, q, r): the graph's objectives only. The products with the m outputs of a
    vector network stay bmm: as sums they measured no faster."""
    if A.shape[2] > SUMMED and B.shape[2] > SUMMED:
        return torch.bmm(A, B)
    return (A[:, :, :, None] * B[:, None, :, :]).sum(2)


def realization(p: dict, X: torch.Tensor, neuron_major: bool = False):
    """f (M, n) and the preactivations z (M, n, N); with vector outputs (c (M, N, m),
    e (M, m), w (M, m, d)) f is (M, n, m).

    ``neuron_major``: z is laid out (M, N, n) instead, samples innermost, and the small
    products are broadcast sums (``_summed``). Same numbers in another order of
    summation; what a compiled graph wants (every reduction over samples then runs along
    contiguous memory, and a loop over 4 neurons does not fill a vector register): 2.6x
    faster at N = 4, n = 64 on a CPU (bench/RESULTS.md). The eager step keeps (M, n, N)
    and bmm, which it prefers.
    """
    if neuron_major:
        z = _summed(p["a"], X.transpose(1, 2)) + p["b"][:, :, None]
        h = torch.relu(z)
        if p["c"].dim() == 3:
            f = torch.bmm(h.transpose(1, 2), p["c"]) + torch.bmm(X, p["w"].transpose(1, 2))
            return f + p["e"][:, None, :], z
        f = (h * p["c"][:, :, None]).sum(1) + (X * p["w"][:, None, :]).sum(2)
        return f + p["e"][:, None], z
    z = torch.bmm(X, p["a"].transpose(1, 2)) + p["b"][:, None, :]
    h = torch.relu(z)
    if p["c"].dim() == 3:
        f = torch.bmm(h, p["c"]) + torch.bmm(X, p["w"].transpose(1, 2))
        return f + p["e"][:, None, :], z
    f = torch.bmm(h, p["c"][:, :, None])[..., 0] + torch.bmm(X, p["w"][:, :, None])[..., 0]
    return f + p["e"][:, None], z


def in_chunks(objective, rows: int):
    """``objective`` evaluated on slices of at most ``rows`` networks, results concatenated.

    On a CPU, (M, n, N) activations far larger than the caches make every elementwise
    pass memory-bound; slices that fit in cache keep the same math (each network's
    numbers are computed exactly as before) several times faster.
    """

    def run(p, X, y, lam):
        M = X.shape[0]
        if M <= rows:
            return objective(p, X, y, lam)
        parts = [
            objective(
                {k: v[i : i + rows] for k, v in p.items()},
                X[i : i + rows],
                y[i : i + rows],
                lam[i : i + rows],
            )
            for i in range(0, M, rows)
        ]
        J = torch.cat([q[0] for q in parts])
        L = torch.cat([q[1] for q in parts])
        return J, L, {k: torch.cat([q[2][k] for q in parts]) for k in parts[0][2]}

    return run


def _dense_grads(p: dict, X, z, g, lam, neuron_major: bool = False):
    """Gradients of (1/n) sum_k l(f_k) + penalty given g (M, n) = dl/df_k per sample:

    dJ/dc_i = sum_k g_k rho(z_ki) + lam c_i,  dJ/da_i = sum_k g_k c_i 1[z_ki > 0] x_k + lam a_i,
    dJ/db_i likewise without x_k,  dJ/de = sum_k g_k,  dJ/dw = sum_k g_k x_k.

    z (M, n, N), or (M, N, n) with ``neuron_major`` (the same sums, along its last axis).
    """
    h = torch.relu(z)
    if neuron_major:
        gz = (p["c"][:, :, None] * g[:, None, :]) * (z > 0)  # (M, N, n)
        return {
            "a": _summed(gz, X) + lam[:, None, None] * p["a"],
            "b": gz.sum(2),
            "c": (h * g[:, None, :]).sum(2) + lam[:, None] * p["c"],
            "e": g.sum(1),
            "w": (X * g[:, :, None]).sum(1),
        }
    gz = (g[:, :, None] * p["c"][:, None, :]) * (z > 0)
    return {
        "a": torch.bmm(gz.transpose(1, 2), X) + lam[:, None, None] * p["a"],
        "b": gz.sum(1),
        "c": torch.bmm(h.transpose(1, 2), g[:, :, None])[..., 0] + lam[:, None] * p["c"],
        "e": g.sum(1),
        "w": torch.bmm(X.transpose(1, 2), g[:, :, None])[..., 0],
    }


def _penalty(p: dict, lam: torch.Tensor) -> torch.Tensor:
    """(lam / 2) (sum_i c_i^2 + ||a_i||^2) per network (M,)."""
    return 0.5 * lam * ((p["c"] ** 2).sum(1) + (p["a"] ** 2).sum((1, 2)))


def mse_objective(p: dict, X, y, lam, neuron_major: bool = False):
    """Per-network objective (M,), data loss (M,) and gradients (dict like p).
    ``neuron_major``: the preactivations' layout (``realization``), not the result."""
    n = X.shape[1]
    f, z = realization(p, X, neuron_major)
    r = f - y
    loss = (r * r).mean(dim=1)
    return loss + _penalty(p, lam), loss, _dense_grads(p, X, z, (2.0 / n) * r, lam, neuron_major)


def logistic_objective(p: dict, X, y, lam, neuron_major: bool = False):
    """Per-network objective (M,), logistic loss (M,) and gradients (dict like p).

    y (M, n) holds labels in {-1, +1}; loss = (1/n) sum_k softplus(-y_k f_k).
    """
    n = X.shape[1]
    f, z = realization(p, X, neuron_major)
    m = y * f  # (M, n) signed margins
    loss = torch.nn.functional.softplus(-m).mean(dim=1)
    g = (-1.0 / n) * y * torch.sigmoid(-m)
    return loss + _penalty(p, lam), loss, _dense_grads(p, X, z, g, lam, neuron_major)


def _vector_grads(p: dict, X, z, g, lam, neuron_major: bool = False):
    """``_dense_grads`` for vector outputs, g (M, n, m) = dl/df_k per sample:

    dJ/dc_i = sum_k g_k rho(z_ki) + lam c_i (m,),  dJ/da_i = sum_k <g_k, c_i> 1[z_ki > 0] x_k
    + lam a_i,  dJ/db_i likewise without x_k,  dJ/de = sum_k g_k,  dJ/dw = sum_k g_k x_k^T.
    """
    h = torch.relu(z)
    if neuron_major:  # z (M, N, n)
        gz = torch.bmm(p["c"], g.transpose(1, 2)) * (z > 0)  # (M, N, n)
        return {
            "a": torch.bmm(gz, X) + lam[:, None, None] * p["a"],
            "b": gz.sum(2),
            "c": torch.bmm(h, g) + lam[:, None, None] * p["c"],
            "e": g.sum(1),
            "w": torch.bmm(g.transpose(1, 2), X),
        }
    gz = torch.bmm(g, p["c"].transpose(1, 2)) * (z > 0)  # (M, n, N)
    return {
        "a": torch.bmm(gz.transpose(1, 2), X) + lam[:, None, None] * p["a"],
        "b": gz.sum(1),
        "c": torch.bmm(h.transpose(1, 2), g) + lam[:, None, None] * p["c"],
        "e": g.sum(1),
        "w": torch.bmm(g.transpose(1, 2), X),
    }


def cross_entropy_objective(p: dict, X, y, lam, neuron_major: bool = False):
    """Per-network objective (M,), cross-entropy loss (M,) and gradients (dict like p).

    p has vector outputs c (M, N, m), e (M, m), w (M, m, d); y (M, n) holds class indices
    0..m-1 (floats). loss = (1/n) sum_k [logsumexp(f_k) - f_{k, y_k}], computed with the
    max subtracted (no overflow); dl/df_k = (softmax(f_k) - onehot(y_k)) / n.
    """
    n = X.shape[1]
    f, z = realization(p, X, neuron_major)  # (M, n, m)
    idx = y.long()[..., None]
    lse = torch.logsumexp(f, dim=-1)
    loss = (lse - f.gather(-1, idx)[..., 0]).mean(dim=1)
    g = torch.softmax(f, dim=-1).scatter_add(-1, idx, -torch.ones_like(idx, dtype=f.dtype))
    g = g / n
    penalty = 0.5 * lam * ((p["c"] ** 2).sum((1, 2)) + (p["a"] ** 2).sum((1, 2)))
    return loss + penalty, loss, _vector_grads(p, X, z, g, lam, neuron_major)


def mse_objective_1d(p: dict, X: torch.Tensor, y: torch.Tensor, lam: torch.Tensor):
    """``mse_objective`` for d = 1 in O(n + N log n); X is (M, n, 1), sorted along n.

    Neuron i is active at x iff a_i x + b_i > 0: for a_i > 0 iff x > t_i = -b_i / a_i,
    for a_i < 0 iff x < t_i; a neuron with a_i = 0 is always (b_i > 0) or never active
    (t_i = -inf or +inf). With j_i = #{k: x_k <= t_i} (one binary search per neuron),
    neuron i is active on the samples k >= j_i (a_i >= 0) or k < j_i (a_i < 0). So

        f(x_k) = sum_{i active at x_k} (c_i a_i x_k + c_i b_i) + w x_k + e

    is a prefix sum over k of the neurons' slopes and intercepts dropped in bin j_i
    (with sign +1 for rising, -1 for falling neurons, on top of the falling total),
    and with r'_k = (2/n) r_k the gradients need only prefix sums of r'_k and r'_k x_k:

        S0_i = sum_{k: i active at x_k} r'_k,   S1_i = sum_{k: ...} r'_k x_k,
        dJ/dc_i = a_i S1_i + b_i S0_i + lam c_i,  dJ/da_i = c_i S1_i + lam a_i,
        dJ/db_i = c_i S0_i.

    At an exact tie x_k = t_i the neuron contributes 0 to f either way; its gradient
    counts sample k for a_i < 0 (rho'(0) = 1 there) and not for a_i > 0 (rho'(0) = 0),
    both valid subgradients.
    """
    x = X[..., 0]
    M, n = x.shape
    a, b, c = p["a"][..., 0], p["b"], p["c"]
    inf = torch.tensor(torch.inf, dtype=x.dtype, device=x.device)
    down = a < 0
    t = torch.where(a != 0, -b / torch.where(a != 0, a, 1.0), torch.where(b > 0, -inf, inf))
    j = torch.searchsorted(x, t, right=True)  # (M, N): first sample with x_k > t_i

    sign = torch.where(down, -1.0, 1.0).to(x.dtype)
    nv = torch.stack([c * a, c * b], dim=1)  # (M, 2, N): slopes and intercepts
    bins = x.new_zeros(M, 2, n + 1).scatter_add_(
        2, j[:, None, :].expand(-1, 2, -1), nv * sign[:, None, :]
    )
    AB = torch.cumsum(bins, dim=2)[..., :n] + (nv * down[:, None, :]).sum(2, keepdim=True)
    f = AB[:, 0] * x + AB[:, 1] + p["w"][:, 0:1] * x + p["e"][:, None]
    r = f - y
    loss = (r * r).mean(dim=1)
    penalty = 0.5 * lam * ((c**2).sum(1) + (p["a"] ** 2).sum((1, 2)))

    r2 = (2.0 / n) * r
    sv = torch.stack([r2, r2 * x], dim=1)  # (M, 2, n)
    before = torch.nn.functional.pad(torch.cumsum(sv, dim=2), (1, 0))  # sums over k < j
    upto = torch.gather(before, 2, j[:, None, :].expand(-1, 2, -1))
    total = before[..., -1:]
    S = torch.where(down[:, None], upto, total - upto)
    S0, S1 = S[:, 0], S[:, 1]
    grads = {
        "a": (c * S1 + lam[:, None] * a)[..., None],
        "b": c * S0,
        "c": a * S1 + b * S0 + lam[:, None] * c,
        "e": total[:, 0, 0],
        "w": total[:, 1],
    }
    return loss + penalty, loss, grads


def arccos_terms(U: torch.Tensor, V: torch.Tensor):
    """Kernel K (M, n, k) = E[rho(<u_i,x>) rho(<v_j,x>)] and its gradient sum over j
    G (M, n, d) = sum_j dK(u_i, v_j)/du_i = sum_j (|v_j| sin t u^_i + (pi - t) v_j) / (2 pi).

    The angle is t = 2 atan2(|u^ - v^|, |u^ + v^|), accurate at t = 0 and pi.
    """
    nu, nv = U.norm(dim=-1), V.norm(dim=-1)
    tiny = torch.finfo(U.dtype).tiny
    uh = U / nu.clamp_min(tiny)[..., None]
    vh = V / nv.clamp_min(tiny)[..., None]
    mode = "donot_use_mm_for_euclid_dist"  # the mm route loses small distances
    diff = torch.cdist(uh, vh, compute_mode=mode)
    summ = torch.cdist(uh, -vh, compute_mode=mode)
    t = 2.0 * torch.atan2(diff, summ)
    sin_t = torch.sin(t)
    K = nu[..., :, None] * nv[..., None, :] * (sin_t + (math.pi - t) * torch.cos(t)) / (2 * math.pi)
    G = (torch.bmm(sin_t, nv[..., None]) * uh + torch.bmm(math.pi - t, V)) / (2 * math.pi)
    return K, G


def gaussian_objective(p: dict, V: torch.Tensor, lam: torch.Tensor):
    """Per-network objective (M,), population loss (M,) and gradients (dict like p)."""
    W = p["a"]
    K_ww, G_ww = arccos_terms(W, W)
    K_wv, G_wv = arccos_terms(W, V)
    K_vv, _ = arccos_terms(V, V)
    loss = 0.5 * (K_ww.sum((1, 2)) - 2.0 * K_wv.sum((1, 2)) + K_vv.sum((1, 2)))
    penalty = 0.5 * lam * ((W**2).sum((1, 2)) + (p["c"] ** 2).sum(1))
    zeros = {k: torch.zeros_like(v) for k, v in p.items()}
    grads = {**zeros, "a": G_ww - G_wv + lam[:, None, None] * W}
    return loss + penalty, loss, grads
