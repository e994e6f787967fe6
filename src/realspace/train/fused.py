"""A fused Triton objective for the stacked MSE training step: no activation tensor.

The dense path (``model.mse_objective``) writes the (M, n, N) preactivations and their
ReLU to memory several times per step. Here two kernels recompute them in registers:

1. residuals: program (m, sample block) loops over neuron blocks,
       f_k = sum_i c_i rho(<a_i, x_k> + b_i) + <w, x_k> + e,   r_k = f_k - y_k;
2. gradients: program (m, neuron block) loops over sample blocks,
       dJ/dc_i = (2/n) sum_k r_k rho(z_ki)
       dJ/db_i = (2/n) c_i sum_k r_k 1[z_ki > 0]
       dJ/da_i = (2/n) c_i sum_k r_k 1[z_ki > 0] x_k.
The O(M n d) remainder (dJ/de, dJ/dw, the loss, weight decay) stays in PyTorch. Inputs
up to d = 16 are unrolled at compile time. Accumulation is float32.

``fused_mse_objective`` has the signature and results of ``model.mse_objective``. It runs
on CUDA; with TRITON_INTERPRET=1 set before Triton is imported it runs on the CPU
(slowly), which is how the tests check it against the float64 reference where no GPU is
present.
"""

from __future__ import annotations

import torch

__all__ = ["fused_available", "fused_mse_objective", "MAX_FUSED_DIM"]

MAX_FUSED_DIM = 16


def fused_available(device: torch.device, d: int) -> bool:
    """Whether the fused path applies: Triton importable, CUDA (or the interpreter), d <= 16."""
    import os

    if d > MAX_FUSED_DIM:
        return False
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


_KERNELS = None


def _kernels():
    global _KERNELS
    if _KERNELS is not None:
        return _KERNELS
    import triton
    import triton.language as tl

    @triton.jit
    def residual_kernel(
        X,
        A,
        B,
        C,
        W,
        E,
        Y,
        R,
        n,
        N,
        D: tl.constexpr,
        BLOCK_S: tl.constexpr,
        BLOCK_N: tl.constexpr,
    ):
        m = tl.program_id(0)
        ks = tl.program_id(1) * BLOCK_S + tl.arange(0, BLOCK_S)
        kmask = ks < n
        f = tl.zeros((BLOCK_S,), dtype=tl.float32)
        for i0 in range(0, N, BLOCK_N):
            ii = i0 + tl.arange(0, BLOCK_N)
            imask = ii < N
            z = tl.load(B + m * N + ii, mask=imask, other=0.0)[None, :] + tl.zeros(
                (BLOCK_S, BLOCK_N), dtype=tl.float32
            )
            for j in tl.static_range(D):
                xj = tl.load(X + (m * n + ks) * D + j, mask=kmask, other=0.0)
                aj = tl.load(A + (m * N + ii) * D + j, mask=imask, other=0.0)
                z += xj[:, None] * aj[None, :]
            c = tl.load(C + m * N + ii, mask=imask, other=0.0)
            f += tl.sum(tl.maximum(z, 0.0) * c[None, :], axis=1)
        for j in tl.static_range(D):
            xj = tl.load(X + (m * n + ks) * D + j, mask=kmask, other=0.0)
            f += xj * tl.load(W + m * D + j)
        f += tl.load(E + m)
        y = tl.load(Y + m * n + ks, mask=kmask, other=0.0)
        tl.store(R + m * n + ks, f - y, mask=kmask)

    @triton.jit
    def gradient_kernel(
        X,
        A,
        B,
        C,
        R,
        GA,
        GB,
        GC,
        n,
        N,
        scale,
        D: tl.constexpr,
        BLOCK_S: tl.constexpr,
        BLOCK_N: tl.constexpr,
    ):
        m = tl.program_id(0)
        ii = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        imask = ii < N
        b = tl.load(B + m * N + ii, mask=imask, other=0.0)
        gc = tl.zeros((BLOCK_N,), dtype=tl.float32)
        gb = tl.zeros((BLOCK_N,), dtype=tl.float32)
        ga = tl.zeros((BLOCK_N, 16), dtype=tl.float32)  # columns >= D stay zero
        cols = tl.arange(0, 16)
        for k0 in range(0, n, BLOCK_S):
            ks = k0 + tl.arange(0, BLOCK_S)
            kmask = ks < n
            z = b[None, :] + tl.zeros((BLOCK_S, BLOCK_N), dtype=tl.float32)
            for j in tl.static_range(D):
                xj = tl.load(X + (m * n + ks) * D + j, mask=kmask, other=0.0)
                aj = tl.load(A + (m * N + ii) * D + j, mask=imask, other=0.0)
                z += xj[:, None] * aj[None, :]
            r = tl.load(R + m * n + ks, mask=kmask, other=0.0)
            on = (z > 0.0) & kmask[:, None]
            rm = tl.where(on, r[:, None], 0.0)  # r_k 1[z_ki > 0], (S, N)
            gc += tl.sum(rm * z, axis=0)
            gb += tl.sum(rm, axis=0)
            for j in tl.static_range(D):
                xj = tl.load(X + (m * n + ks) * D + j, mask=kmask, other=0.0)
                gj = tl.sum(rm * xj[:, None], axis=0)
                ga += tl.where(cols[None, :] == j, gj[:, None], 0.0)
        c = tl.load(C + m * N + ii, mask=imask, other=0.0)
        tl.store(GC + m * N + ii, scale * gc, mask=imask)
        tl.store(GB + m * N + ii, scale * c * gb, mask=imask)
        ga_ptr = GA + (m * N + ii[:, None]) * D + cols[None, :]
        tl.store(ga_ptr, scale * c[:, None] * ga, mask=imask[:, None] & (cols[None, :] < D))

    _KERNELS = (residual_kernel, gradient_kernel)
    return _KERNELS


def fused_mse_objective(
    p: dict,
    X: torch.Tensor,
    y: torch.Tensor,
    lam: torch.Tensor,
    block_s: int = 64,
    block_n: int = 32,
):
    """Per-network objective (M,), data loss (M,) and gradients, as ``mse_objective``.

    p: a (M, N, d), b (M, N), c (M, N), e (M,), w (M, d); X (M, n, d); y (M, n); lam (M,).
    Computes in float32 (inputs of another dtype are converted and the results converted
    back).
    """
    import triton

    residual_kernel, gradient_kernel = _kernels()
    dtype = X.dtype
    f32 = {k: v.detach().to(torch.float32).contiguous() for k, v in p.items()}
    Xf, yf = X.to(torch.float32).contiguous(), y.to(torch.float32).contiguous()
    M, n, d = Xf.shape
    N = f32["a"].shape[1]
    if d > MAX_FUSED_DIM:
        raise ValueError(f"the fused kernel covers d <= {MAX_FUSED_DIM}, got {d}")
    r = torch.empty((M, n), dtype=torch.float32, device=X.device)
    residual_kernel[(M, triton.cdiv(n, block_s))](
        Xf,
        f32["a"],
        f32["b"],
        f32["c"],
        f32["w"],
        f32["e"],
        yf,
        r,
        n,
        N,
        D=d,
        BLOCK_S=block_s,
        BLOCK_N=block_n,
    )
    ga = torch.empty((M, N, d), dtype=torch.float32, device=X.device)
    gb = torch.empty((M, N), dtype=torch.float32, device=X.device)
    gc = torch.empty((M, N), dtype=torch.float32, device=X.device)
    gradient_kernel[(M, triton.cdiv(N, block_n))](
        Xf,
        f32["a"],
        f32["b"],
        f32["c"],
        r,
        ga,
        gb,
        gc,
        n,
        N,
        2.0 / n,
        D=d,
        BLOCK_S=block_s,
        BLOCK_N=block_n,
    )
    lam32 = lam.to(torch.float32)
    loss = (r * r).mean(dim=1)
    penalty = 0.5 * lam32 * ((f32["c"] ** 2).sum(1) + (f32["a"] ** 2).sum((1, 2)))
    grads = {
        "a": ga + lam32[:, None, None] * f32["a"],
        "b": gb,
        "c": gc + lam32[:, None] * f32["c"],
        "e": (2.0 / n) * r.sum(1),
        "w": (2.0 / n) * torch.einsum("mk,mkd->md", r, Xf),
    }
    out = {k: v.to(dtype) for k, v in grads.items()}
    return (loss + penalty).to(dtype), loss.to(dtype), out
