"""The network a convex program's solution describes (one rebuilder for every program).

The math: docs/science.md#global-optimum-references.
"""

from __future__ import annotations

import numpy as np

__all__ = ["balanced_network"]


def balanced_network(U, V, e, d: int, rel_tol: float = 1e-7):
    """The neurons of the balanced network of a solution with m outputs.

    U, V: per output k, (P, d + 1) arrays of the + and - groups; e (m,) the output bias.
    Each u becomes the neuron
    +-rho(<u, x~>) e_k; within an output, neurons with the same hyperplane and orientation
    (unit u / ||u_a||) merge (their gammas +-||u_a|| add: the realization is unchanged
    and the cost cannot rise; interior-point solutions spread one neuron over neighbouring
    patterns, a kink on a data point being feasible for both sides, and leave ~1e-9 entries
    elsewhere). Balanced: (a, b) = unit |gamma|^(1/2), c = sign(gamma) |gamma|^(1/2) e_k,
    so (lam/2)(||c||^2 + ||a||^2) = lam |gamma|. Neurons below ``rel_tol`` of the largest
    are dropped; u_a = 0 is a constant on the data (rho(u_b) = u_b >= 0) and goes into
    e_k. Returns (a (N, d), b (N,), c (N, m), e (m,)): the caller adds its linear part and
    shapes the outputs (a scalar network keeps c (N,) and a float e).
    """
    m = len(U)
    e = np.array(e, dtype=np.float64)
    gammas: dict[tuple, float] = {}
    directions: dict[tuple, np.ndarray] = {}
    scale = max(max(np.abs(M).max(initial=0) for M in [*U, *V]), 1e-300)
    for k in range(m):
        for M, sign in ((U[k], 1.0), (V[k], -1.0)):
            for u in M:
                na = float(np.linalg.norm(u[:d]))
                if na > 1e-12 * scale:
                    unit = u / na
                    key = (k, *np.round(unit, 7))
                    gammas[key] = gammas.get(key, 0.0) + sign * na
                    directions.setdefault(key, unit)
                elif u[d] > 0:
                    e[k] += sign * u[d]
    top = max((abs(g) for g in gammas.values()), default=0.0)
    keep = [key for key, g in gammas.items() if abs(g) > rel_tol * top]
    root = np.array([np.sqrt(abs(gammas[key])) for key in keep])
    a = np.array([directions[key][:d] for key in keep]).reshape(-1, d) * root[:, None]
    b = np.array([directions[key][d] for key in keep]).reshape(-1) * root
    c = np.zeros((len(keep), m))
    for i, key in enumerate(keep):
        c[i, key[0]] = np.sign(gammas[key]) * root[i]
    return a, b, c, e
