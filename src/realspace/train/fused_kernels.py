"""The Triton kernels of ``fused.py`` (imported on first use: Triton is an optional
dependency). The math is stated there.

The math: docs/science.md#training.
"""

import triton
import triton.language as tl


@triton.jit
def preactivation(
    X,
    A,
    b,
    m,
    n,
    N,
    ks,
    kmask,
    ii,
    imask,
    D: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """z (BLOCK_S, BLOCK_N) = <a_i, x_k> + b_i for a block of samples and neurons."""
    z = b[None, :] + tl.zeros((BLOCK_S, BLOCK_N), dtype=tl.float32)
    for j in tl.static_range(D):
        xj = tl.load(X + (m * n + ks) * D + j, mask=kmask, other=0.0)
        aj = tl.load(A + (m * N + ii) * D + j, mask=imask, other=0.0)
        z += xj[:, None] * aj[None, :]
    return z


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
        b = tl.load(B + m * N + ii, mask=imask, other=0.0)
        z = preactivation(X, A, b, m, n, N, ks, kmask, ii, imask, D, BLOCK_S, BLOCK_N)
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
        z = preactivation(X, A, b, m, n, N, ks, kmask, ii, imask, D, BLOCK_S, BLOCK_N)
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
