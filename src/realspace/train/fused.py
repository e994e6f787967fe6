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

The math: docs/science.md#training.
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


def _kernels():
    from .fused_kernels import gradient_kernel, residual_kernel

    return residual_kernel, gradient_kernel


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
