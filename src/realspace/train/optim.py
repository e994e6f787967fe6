"""Stacked elementwise optimizers: one update for M networks, per-network hyperparameters.

All three act elementwise, so stacking them is exact: network m's update uses
only its own gradient, state and hyperparameters (tensors of shape (M,)).

- gd:   p -= lr g
- sgd:  v = mu v + g;  p -= lr v                      (PyTorch's SGD with momentum)
- adam: m = b1 m + (1-b1) g;  s = b2 s + (1-b2) g^2;
        p -= lr (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)   (t: the network's own step)

The math: docs/science.md#training.
"""

from __future__ import annotations

import torch

__all__ = ["init_state", "step"]


def init_state(kind: str, theta: torch.Tensor) -> dict:
    """Optimizer state for flat parameters theta (M, P)."""
    if kind == "gd":
        return {}
    if kind == "sgd":
        return {"v": torch.zeros_like(theta)}
    if kind == "adam":
        return {"m": torch.zeros_like(theta), "s": torch.zeros_like(theta)}
    raise ValueError(f"unknown optimizer {kind!r}")


def step(
    kind: str, theta: torch.Tensor, g: torch.Tensor, state: dict, hyper: dict, t: torch.Tensor
) -> tuple[torch.Tensor, dict]:
    """New flat parameters (M, P) and optimizer state (inputs are not modified).

    ``hyper`` holds (M, 1) tensors lr, momentum, beta1, beta2, eps; ``t`` (M,) is each
    network's step count after this update (for Adam's bias correction).
    """
    lr = hyper["lr"]
    if kind == "gd":
        return theta - lr * g, state
    if kind == "sgd":
        v = hyper["momentum"] * state["v"] + g
        return theta - lr * v, {"v": v}
    b1, b2 = hyper["beta1"], hyper["beta2"]
    m = torch.lerp(state["m"], g, 1 - b1)  # b1 m + (1 - b1) g, as torch.optim.Adam
    s = torch.lerp(state["s"], g * g, 1 - b2)
    tt = t.to(theta.dtype)[:, None]
    denom = torch.sqrt(s / (1 - b2**tt)) + hyper["eps"]
    return theta - (lr / (1 - b1**tt)) * m / denom, {"m": m, "s": s}
