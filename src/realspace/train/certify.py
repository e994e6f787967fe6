"""Certificates at a trained end point, per network, in float64.

- gradient norm of the full-batch training objective;
- smallest eigenvalue of its Hessian in the trainable parameters: the exact batched
  Hessian when there are at most ``dense_max_params`` parameters (MSE: in closed form,
  ``mse_hessian``; Gaussian: see below), else Lanczos with Hessian-vector products by
  torch.func (full reorthogonalization);
- for a loss on data (MSE, logistic, cross-entropy), whether a sample lies within 1e-9 of a kink
  (distance |z_ki| / ||a_i||): there the loss is not twice differentiable and the
  Hessian says nothing.

The MSE objective is twice differentiable off kinks, where rho'' = 0; its dense Hessian
is written out (Gauss-Newton term plus the output-weight cross terms, ``mse_hessian``)
and equals torch.func's to rounding at a small fraction of the cost (torch.func's
forward-over-reverse keeps (networks x parameters x samples x neurons) intermediates).
Hessian-vector products for Lanczos come from torch.func. The logistic loss's dense
Hessian is torch.func's (forward-over-reverse of ``_single_logistic``), and so is the
multiclass cross-entropy's (``_single_cross_entropy``, vector outputs c (N, m), e (m,),
W (m, d)): classification problems here are small. The Gaussian closed form has
removable singularities in its autograd graph where two weight vectors are parallel (at
the teacher itself), so its Hessian is taken by central differences of the exact
closed-form gradient (step 1e-5, error O(1e-10)).

The math: docs/science.md#training.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import torch
from torch.func import grad, hessian, jvp, vmap

from ..core.problem import STREAM_LANCZOS, make_data, teacher_rows
from ..core.streams import streams
from .loop import ShardResult
from .model import (
    cross_entropy_objective,
    gaussian_objective,
    logistic_objective,
    mse_objective,
    realization,
)
from .state import trainable_names

__all__ = ["certify", "mse_hessian"]

KINK_DISTANCE = 1e-9
# torch.func's transform levels are process-global: two threads certifying at once (an
# in-process task runner) corrupt each other's. Certification takes this lock.
_FUNC_LOCK = threading.Lock()


def _unflatten(theta, p, names, shapes):
    """Parameter dict with the trainable entries taken from flat theta (M, P)."""
    q, i = dict(p), 0
    for name, shape in zip(names, shapes, strict=True):
        size = int(np.prod(shape))
        q[name] = theta[:, i : i + size].reshape(theta.shape[0], *shape)
        i += size
    return q


def _single_mse(theta, fixed, X, y, lam, names, shapes):
    """One network's MSE objective of its flat trainable parameters (for torch.func)."""
    p = {
        k: v[0] if k in names else v
        for k, v in _unflatten(theta[None], fixed, names, shapes).items()
    }
    f = torch.relu(X @ p["a"].T + p["b"]) @ p["c"] + X @ p["w"] + p["e"]
    return ((f - y) ** 2).mean() + 0.5 * lam * ((p["c"] ** 2).sum() + (p["a"] ** 2).sum())


def _single_logistic(theta, fixed, X, y, lam, names, shapes):
    """One network's logistic objective of its flat trainable parameters (for torch.func)."""
    p = {
        k: v[0] if k in names else v
        for k, v in _unflatten(theta[None], fixed, names, shapes).items()
    }
    f = torch.relu(X @ p["a"].T + p["b"]) @ p["c"] + X @ p["w"] + p["e"]
    loss = torch.nn.functional.softplus(-y * f).mean()
    return loss + 0.5 * lam * ((p["c"] ** 2).sum() + (p["a"] ** 2).sum())


def _single_cross_entropy(theta, fixed, X, y, lam, names, shapes):
    """One network's cross-entropy objective of its flat trainable parameters (for
    torch.func): c (N, m), e (m,), w (m, d), y (n,) class indices as floats."""
    p = {
        k: v[0] if k in names else v
        for k, v in _unflatten(theta[None], fixed, names, shapes).items()
    }
    f = torch.relu(X @ p["a"].T + p["b"]) @ p["c"] + X @ p["w"].T + p["e"]
    idx = y.long()[:, None]
    loss = (torch.logsumexp(f, dim=1) - f.gather(1, idx)[:, 0]).mean()
    return loss + 0.5 * lam * ((p["c"] ** 2).sum() + (p["a"] ** 2).sum())


_SINGLE = {"mse": _single_mse, "logistic": _single_logistic, "cross_entropy": _single_cross_entropy}
_STACKED = {
    "mse": mse_objective,
    "logistic": logistic_objective,
    "cross_entropy": cross_entropy_objective,
}


def mse_hessian(
    p: dict, X: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, names
) -> torch.Tensor:
    """Hessians (M, P, P) of the MSE objectives in the trainable parameters ``names``.

    p: a (M, N, d), b (M, N), c (M, N), e (M,), w (M, d); X (M, n, d), y (M, n), lam (M,);
    ``names`` as ``trainable_names`` gives them (a; then b, e; c; w where trainable:
    restricted runs and unrestricted ones with ``linear_term``). The
    flat order is that of ``cat(p[k].reshape(M, -1) for k in names)``: a row by row
    (a_11 .. a_1d, a_21, .. a_Nd), then b_1 .. b_N, e, c_1 .. c_N, w_1 .. w_d.

    Per network, with z_ki = <a_i, x_k> + b_i, s_ki = rho'(z_ki) = 1[z_ki > 0],
    f_k = sum_i c_i rho(z_ki) + <w, x_k> + e and r_k = f_k - y_k:

        J = (1/n) sum_k r_k^2 + (lam / 2) (sum_i c_i^2 + ||a_i||^2)
        H = (2/n) G^T G + (2/n) sum_k r_k d2f_k + lam diag(1 on the a and c entries)

    G (n, P) is the Jacobian of f: df_k/da_ij = c_i s_ki x_kj, df_k/db_i = c_i s_ki,
    df_k/de = 1, df_k/dc_i = rho(z_ki), df_k/dw_j = x_kj. Off kinks rho'' = 0, so the
    only nonzero second derivatives of f_k pair an output weight with its own neuron,
    d2f_k/dc_i d(a_i, b_i) = s_ki (x_k, 1): the residual term is the blocks
    H[c_i, a_ij] = (2/n) sum_k r_k s_ki x_kj, H[c_i, b_i] = (2/n) sum_k r_k s_ki and
    their mirror images. A fixed parameter (b and e without bias, c with fixed output
    weights, w without a linear term) has no column in G and no cross term; the penalty on a
    fixed c is a constant. At a kink (z_ki = 0) s_ki = 0, as torch's relu derivative
    takes it, so this equals torch.func's Hessian of ``_single_mse`` everywhere.
    """
    M, n, d = X.shape
    N = p["a"].shape[1]
    f, z = realization(p, X)
    s = (z > 0).to(X.dtype)  # (M, n, N)
    cs = s * p["c"][:, None, :]
    columns = {
        "a": (cs[..., None] * X[:, :, None, :]).reshape(M, n, N * d),
        "b": cs,
        "e": X.new_ones(M, n, 1),
        "c": torch.relu(z),
        "w": X,
    }
    G = torch.cat([columns[k] for k in names], dim=2)  # (M, n, P)
    H = (2.0 / n) * torch.bmm(G.transpose(1, 2), G)

    sizes = {"a": N * d, "b": N, "e": 1, "c": N, "w": d}
    start, i = {}, 0
    for k in names:
        start[k], i = i, i + sizes[k]
    ar = torch.arange(N * d, device=X.device)
    if "c" in start:
        rs = ((2.0 / n) * (f - y))[:, :, None] * s  # (M, n, N)
        c_at = start["c"] + ar[:N]
        # (row, column, value): c_i against each a_ij, then against b_i
        blocks = [(c_at.repeat_interleave(d), start["a"] + ar, torch.bmm(rs.transpose(1, 2), X))]
        if "b" in start:
            blocks.append((c_at, start["b"] + ar[:N], rs.sum(1)))
        for rows, cols, value in blocks:
            value = value.reshape(M, -1)
            H[:, rows, cols] += value
            H[:, cols, rows] += value
    decayed = [start["a"] + ar] + ([start["c"] + ar[:N]] if "c" in start else [])
    diag = torch.cat(decayed)
    H[:, diag, diag] += lam[:, None]
    return H


def _lanczos_min(hvp, v0: torch.Tensor, steps: int) -> torch.Tensor:
    """Smallest Ritz value per row for a batch of symmetric operators (hvp: (M,P)->(M,P))."""
    M, P = v0.shape
    k = min(steps, P)
    Q = torch.zeros(M, k, P, dtype=v0.dtype, device=v0.device)
    alpha = torch.zeros(M, k, dtype=v0.dtype, device=v0.device)
    beta = torch.zeros(M, k, dtype=v0.dtype, device=v0.device)
    q = v0 / v0.norm(dim=1, keepdim=True)
    for j in range(k):
        Q[:, j] = q
        r = hvp(q)
        alpha[:, j] = (r * q).sum(1)
        # full reorthogonalization (twice is enough) keeps the Ritz values honest
        for _ in range(2):
            r = r - torch.einsum(
                "mk,mkp->mp", torch.einsum("mkp,mp->mk", Q[:, : j + 1], r), Q[:, : j + 1]
            )
        if j + 1 < k:
            beta[:, j] = r.norm(dim=1)
            q = r / beta[:, j : j + 1].clamp_min(1e-300)
    T = (
        torch.diag_embed(alpha)
        + torch.diag_embed(beta[:, :-1], 1)
        + torch.diag_embed(beta[:, :-1], -1)
    )
    return torch.linalg.eigvalsh(T)[:, 0]


def _chunk(part, p, names, tol, dense_max_params, lanczos_steps, dev, data) -> list[dict]:
    """Certificates of one chunk of networks; p holds their float64 parameters and
    ``data`` their runs' (X, y) (MSE or logistic), or None to draw them again."""
    M = len(part)
    lam = torch.tensor([s.weight_decay for s in part], dtype=torch.float64, device=dev)
    shapes = [tuple(p[k].shape[1:]) for k in names]
    theta = torch.cat([p[k].reshape(M, -1) for k in names], dim=1)
    P = theta.shape[1]
    dense = P <= dense_max_params
    if part[0].loss in _SINGLE:
        mse = part[0].loss == "mse"
        single_of = _SINGLE[part[0].loss]
        data = [make_data(s) for s in part] if data is None else data
        X = torch.as_tensor(np.stack([d[0] for d in data]), dtype=torch.float64, device=dev)
        Y = torch.as_tensor(np.stack([d[1] for d in data]), dtype=torch.float64, device=dev)
        obj, loss, g = _STACKED[part[0].loss](p, X, Y, lam)
        fixed = {k: v for k, v in p.items() if k not in names}

        def single(th, fx, x, y, lm):
            return single_of(th, fx, x, y, lm, names, shapes)

        def one_hvp(th, vv, fx, x, y, lm):
            return jvp(lambda t_: grad(single)(t_, fx, x, y, lm), (th,), (vv,))[1]

        def hvp(v):
            return vmap(one_hvp)(theta, v, fixed, X, Y, lam)

        method = "dense" if dense else "lanczos"
        if dense:
            if mse:
                H = mse_hessian(p, X, Y, lam, names)
            else:
                H = vmap(hessian(single))(theta, fixed, X, Y, lam)
            min_eig = torch.linalg.eigvalsh(H)[:, 0]
        # distance of each sample to each neuron's kink, |z_ki| / ||a_i||
        z = torch.bmm(X, p["a"].transpose(1, 2)) + p["b"][:, None, :]
        norm = p["a"].norm(dim=-1)[:, None, :]
        dist = torch.where(norm > 0, z.abs() / norm.clamp_min(1e-300), torch.inf)
        kink = dist.flatten(1).min(1).values
    else:
        V = torch.as_tensor(np.stack([teacher_rows(s) for s in part]), device=dev)
        obj, loss, g = gaussian_objective(p, V, lam)
        h = 1e-5

        def grad_at(th):
            q = _unflatten(th, p, names, shapes)
            return gaussian_objective(q, V, lam)[2]["a"].reshape(M, -1)

        def hvp(v):
            return (grad_at(theta + h * v) - grad_at(theta - h * v)) / (2 * h)

        method = ("dense" if dense else "lanczos") + " (differences of the exact gradient)"
        if dense:
            eye = torch.eye(P, dtype=torch.float64, device=dev)
            H = torch.stack([hvp(eye[j].expand(M, P)) for j in range(P)], dim=2)
            min_eig = torch.linalg.eigvalsh(0.5 * (H + H.transpose(1, 2)))[:, 0]
        kink = torch.full((M,), torch.inf, dtype=torch.float64)
    if not dense:
        seeds = [s.seed for s in part]
        v0 = np.stack([rng.standard_normal(P) for rng in streams(seeds, STREAM_LANCZOS)])
        min_eig = _lanczos_min(hvp, torch.as_tensor(v0, device=dev), lanczos_steps)
    gnorm = torch.cat([g[k].reshape(M, -1) for k in names], dim=1).norm(dim=1)
    # whole columns to Python numbers at once: indexing a tensor per network costs more
    columns = zip(
        obj.tolist(),
        loss.tolist(),
        gnorm.tolist(),
        min_eig.tolist(),
        kink.tolist(),
        (kink <= KINK_DISTANCE).tolist(),
        ((gnorm <= tol) & (min_eig >= -tol)).tolist(),
        strict=True,
    )
    return [
        {
            "objective": objective,
            "loss": loss_m,
            "grad_norm": grad_norm,
            "min_eig": eig,
            "eig_method": method,
            "n_params": P,
            "min_kink_distance": distance,
            "near_kink": near,
            "certified": certified,
        }
        for objective, loss_m, grad_norm, eig, distance, near, certified in columns
    ]


def certify(
    result: ShardResult,
    *,
    tol: float = 1e-6,
    dense_max_params: int = 256,
    lanczos_steps: int = 80,
    chunk: int = 64,
    device: str | None = None,
    data: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[dict]:
    """Per-network certificates of ``result``'s end points (float64), ``chunk`` at a time.

    A network is a certified local minimum when its gradient norm is <= ``tol`` and its
    smallest Hessian eigenvalue is >= -``tol``. ``data`` optionally gives each MSE run's
    (X, y) as ``train_shard`` took them (float64, sorted by x when d = 1); else they are
    drawn again from each run's seed (``make_data``), which is what the trainer draws
    unless it was handed other data.
    """
    dev = torch.device(device or result.device)
    names = trainable_names(result.specs[0])
    if data is not None and len(data) != len(result.specs):
        raise ValueError(f"certify: {len(data)} data sets for {len(result.specs)} runs")
    out = []
    for lo in range(0, len(result.specs), chunk):
        p = {
            k: torch.as_tensor(v[lo : lo + chunk], dtype=torch.float64, device=dev)
            for k, v in result.params.items()
        }
        part = result.specs[lo : lo + chunk]
        with _FUNC_LOCK:
            xy = None if data is None else data[lo : lo + chunk]
            out += _chunk(part, p, names, tol, dense_max_params, lanczos_steps, dev, xy)
    return out
