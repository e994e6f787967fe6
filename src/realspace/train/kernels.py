"""Which implementation of the objective a shard trains with.

Every kernel computes the same objective and gradients (model.py states them): "dense"
through the (M, n, N) preactivations, "prefix" by prefix sums over sorted samples
(d = 1 only), "compiled" as torch.compile of dense, "fused" by Triton kernels that keep
the preactivations in registers. "auto" picks prefix sums in d = 1, the fused kernel on
CUDA where it applies in d >= 2, else dense. "graph" is not an objective of its own: the
trainer compiles its whole update (the objective, dense with the preactivations laid out
neuron-major or by prefix sums in d = 1 as ``prefix_pays`` says, with the gradient's
pullback, the stopping rules, the history and the optimizer) into one graph with
torch.compile, replayed as a CUDA graph on CUDA (``loop.compiled``): a step of a few
kernels, not of a hundred and more.

The Gaussian population loss has one implementation whatever the kernel. The logistic
loss has the dense one ("auto" and "dense"; "compiled" compiles it); "prefix" and "fused"
are written for MSE and refuse it. The multiclass cross-entropy (vector outputs) likewise.

A trained linear part w (restricted runs, and unrestricted runs with ``linear_term``) is
in every kernel's objective and gradients on data; the Gaussian population loss has no
affine part and refuses ``linear_term``.

The math: docs/science.md#training.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from ..core.spec import RunSpec
from .fused import fused_available, fused_mse_objective
from .model import (
    cross_entropy_objective,
    gaussian_objective,
    in_chunks,
    logistic_objective,
    mse_objective,
    mse_objective_1d,
)

__all__ = ["KERNELS", "choose_objective", "prefix_pays"]

KERNELS = ("auto", "prefix", "dense", "compiled", "fused", "graph")
CPU_CHUNK_ELEMENTS = 2**18  # activations per slice of the dense objective on a CPU

_COMPILED: dict = {}
# the graph kernel's dense objectives, with the preactivations neuron-major (model.realization):
# one object each, so that the compiled step's guard on its objective holds shard after shard
_NEURON_MAJOR = {
    f: functools.partial(f, neuron_major=True)
    for f in (mse_objective, logistic_objective, cross_entropy_objective)
}


def _compiled_dense(objective=mse_objective):
    if objective not in _COMPILED:  # one wrapper per process, so its compilations are reused
        _COMPILED[objective] = torch.compile(objective, dynamic=False)
    return _COMPILED[objective]


def _dense(objective, kernel: str, spec: RunSpec, device: torch.device):
    if kernel == "compiled":
        return _compiled_dense(objective), "compiled"
    if device.type == "cpu":  # see in_chunks: slices that fit in cache run faster
        n_act = spec.batch_size or spec.n_points()
        return in_chunks(objective, max(1, CPU_CHUNK_ELEMENTS // (n_act * spec.width))), "dense"
    return objective, "dense"


def prefix_pays(spec: RunSpec) -> bool:
    """Whether prefix sums beat the dense objective inside a compiled step: d = 1, and n N
    above 8 (n + N log2 n) for n samples a step and width N. Compiled, an element of the
    prefix path costs about eight of the dense one (neuron-major: searchsorted, a scatter
    and two cumulative sums against fused products). ``bench/graph_objective.py`` on 2 CPU
    cores at 2^20 neuron-samples a call (bench/RESULTS.md), dense against prefix sums:
    0.49 against 2.31 ms at N = 4, n = 64; 0.56 against 1.13 at N = 16, n = 64; about
    even at N = 16 and 32, n = 256 (0.50 against 0.57 and 0.42 against 0.47 there, the
    other way round in other runs); prefix sums 1.5x ahead at N = 64, n = 256 and 2x at
    N = 16, n = 1024. Runs in intrinsic coordinates follow the same rule: their whole
    step at N = 4, n = 64 measured 1.4 ms dense against 3.4 ms by prefix sums."""
    if spec.d != 1:
        return False
    n, N = spec.batch_size or spec.n_points(), spec.width
    return n * N > 8 * (n + N * math.log2(max(n, 2)))


def choose_objective(kernel: str, spec: RunSpec, device: torch.device) -> tuple[Callable, str]:
    """The objective for runs shaped like ``spec`` on ``device``, and its kernel's name.

    MSE, logistic and cross-entropy objectives take ``(p, X, y, lam)``, the Gaussian one
    ``(p, V, lam)``; all return the per-run objective (M,), data loss (M,) and gradients.
    Raises ValueError for an unknown kernel, "prefix" outside d = 1 or for a classification
    loss, and "fused" for a classification loss or for an MSE shard where it cannot run (it
    needs Triton, CUDA or TRITON_INTERPRET=1, and d <= 16).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if kernel == "prefix" and spec.d != 1:
        raise ValueError("the prefix-sum kernel is for d = 1")
    if spec.loss == "gaussian":  # no affine part (RunSpec reads linear_term False there)
        return gaussian_objective, "graph" if kernel == "graph" else "gaussian"
    if kernel == "graph":  # traced whole: the CPU's slices would only unroll into the graph
        if spec.loss in ("logistic", "cross_entropy"):
            objective = logistic_objective if spec.loss == "logistic" else cross_entropy_objective
        elif prefix_pays(spec):
            return mse_objective_1d, "graph"
        else:
            objective = mse_objective
        return _NEURON_MAJOR[objective], "graph"
    if spec.loss in ("logistic", "cross_entropy"):
        if kernel in ("prefix", "fused"):
            raise ValueError(
                f"the {kernel} kernel is written for MSE; the {spec.loss} loss trains with "
                "kernel 'dense' (or 'auto', 'compiled')"
            )
        objective = logistic_objective if spec.loss == "logistic" else cross_entropy_objective
        return _dense(objective, kernel, spec, device)
    if kernel == "fused" and not fused_available(device, spec.d):
        raise ValueError(
            "the fused kernel needs Triton, a CUDA device (or TRITON_INTERPRET=1) and d <= 16"
        )
    if kernel == "fused":
        return fused_mse_objective, "fused"
    # "auto" in d = 1: prefix sums on any device. Measured on an H200 (bench/RESULTS.md,
    # 1024 samples) they beat the fused kernel at W = 16 and 256 and trail it by 8 % at
    # W = 2048. In d >= 2 the fused kernel on CUDA (not yet measured against dense there);
    # the Triton interpreter only on explicit request: it is far slower on a CPU.
    if spec.d == 1 and kernel in ("auto", "prefix"):
        return mse_objective_1d, "prefix"
    if kernel == "auto" and device.type == "cuda" and fused_available(device, spec.d):
        return fused_mse_objective, "fused"
    return _dense(mse_objective, kernel, spec, device)
