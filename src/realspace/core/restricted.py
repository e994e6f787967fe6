"""The restricted set Omega_N of balanced, non-degenerate shallow networks.

A network lies in Omega_N (on Q = [-D, D]^d) when every neuron that is not
all-zero padding satisfies

  R1 balanced:          |c_i| = ||a_i||_2   (||c_i||_2 with m >= 2 outputs),
  R2 kink inside Q:     |b_i| < D ||a_i||_1   (the hyperplane meets the open cube),
  R3 no redundancy:     no other neuron with positively collinear (a_j, b_j),
  R4 no opposites:      no other neuron with negatively collinear (a_j, b_j).

Collinearity and balance are judged with a tolerance; the margins say how far
inside (positive) or outside the set a network is, not only whether it is in.

The math: docs/science.md#the-restricted-set.
"""

from __future__ import annotations

import numpy as np

from .nets import ShallowNet, check_domain

__all__ = [
    "restricted_set_margins",
    "in_restricted_set",
    "live_neurons",
    "hyperplane_angles",
    "output_norms",
    "DEFAULT_TOL",
    "MERGE_ANGLE",
]

DEFAULT_TOL = 1e-9
# Two neurons whose (a, b) are within this angle (rad) of parallel or antiparallel are
# merged by the restricted trainer and counted as duplicates / opposites by the census:
# one tolerance for both. float32 resolves angles of about 1e-7.
MERGE_ANGLE = 1e-6


def output_norms(c: np.ndarray) -> np.ndarray:
    """Sizes of output weights, shape (N,): |c_i| for c of shape (N,), ||c_i||_2 for (N, m).

    The vector norms are scaled by each row's largest entry: a weight-decayed neuron's
    c_i of 1e-160 has a norm, where a plain sum of squares would underflow to 0 and make
    a balanced neuron look infinitely unbalanced.
    """
    if c.ndim == 1:
        return np.abs(c)
    s = np.abs(c).max(axis=1)
    return s * np.linalg.norm(c / np.where(s > 0, s, 1.0)[:, None], axis=1)


def live_neurons(net: ShallowNet) -> np.ndarray:
    """Boolean mask (N,) of neurons that are not all-zero padding."""
    return np.any(net.neurons() != 0.0, axis=1)


def hyperplane_angles(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise angles between the vectors (a_i, b_i) in R^{d+1}.

    Returns (same, opposite), each (N, N): ``same[i, j]`` is the angle theta between
    (a_i, b_i) and (a_j, b_j), ``opposite[i, j]`` is pi - theta. Both are computed
    from chord lengths, 2 arcsin(|u_i -+ u_j| / 2), which keeps small angles
    accurate where arccos of a dot product would lose half the digits.
    """
    # Called per network on a handful of neurons: np.clip and np.linalg.norm would cost
    # more in argument handling than in arithmetic, so their ufunc forms are spelled out
    # (the same operations, the same numbers).
    v = np.column_stack([a, b])
    # each row scaled by its largest entry first: the squares of a weight-decayed
    # neuron's 1e-160 entries would underflow to 0 (output_norms, for the same reason)
    s = np.abs(v).max(axis=1, keepdims=True)
    v = v / np.where(s > 0, s, 1.0)
    u = v / np.sqrt((v * v).sum(axis=1, keepdims=True))
    gram = np.minimum(np.maximum(u @ u.T, -1.0), 1.0)
    diff = np.sqrt(np.maximum(2.0 - 2.0 * gram, 0.0))
    summ = np.sqrt(np.maximum(2.0 + 2.0 * gram, 0.0))
    # The Gram route loses half the digits for nearly (anti)parallel pairs: redo those
    # from explicit differences, which are exact to rounding.
    for chord, sign in ((diff, -1.0), (summ, 1.0)):
        i, j = np.nonzero(chord < 1e-3)
        if i.size:
            e = u[i] + sign * u[j]
            chord[i, j] = np.sqrt((e * e).sum(axis=1))
    same = 2.0 * np.arcsin(np.minimum(np.maximum(diff / 2.0, 0.0), 1.0))
    opposite = 2.0 * np.arcsin(np.minimum(np.maximum(summ / 2.0, 0.0), 1.0))
    return same, opposite


def restricted_set_margins(net: ShallowNet, D: float, tol: float = DEFAULT_TOL) -> dict:
    """Margins of the restricted-set conditions R1-R4, neuron by neuron.

    Returns a dict with

    - ``max_imbalance``: max over live neurons of |log(|c_i| / ||a_i||_2)| (inf when
      exactly one of them is zero); R1 holds when it is <= tol. With m >= 2 outputs
      ||c_i||_2 takes the place of |c_i| here and below.
    - ``min_abs_c``: smallest |c_i| over live neurons.
    - ``kink_margins``: (n_live,) array of D - |b_i| / ||a_i||_1, the distance (in the
      sup-norm sense) by which the kink hyperplane reaches into the cube; positive
      means the kink meets the open cube (R2), -inf for a_i = 0.
    - ``min_kink_margin``: the smallest of those.
    - ``min_angle_same``: smallest angle between two positively oriented (a_i, b_i) (R3).
    - ``min_angle_opposite``: smallest pi - angle (R4).
    - ``min_hyperplane_angle``: the smaller of the two.
    - ``n_live``, ``n_padding``, booleans ``R1``..``R4`` and ``member``.

    Angles are inf when fewer than two live neurons exist; the min-margins are inf
    when there are no live neurons (the empty network is in the set).
    """
    D = check_domain(D)
    live = live_neurons(net)
    a, b, c = net.a[live], net.b[live], output_norms(net.c[live])
    n_live = int(live.sum())
    norm2 = output_norms(a)  # scaled: no underflow at the 1e-160 of a decayed neuron
    norm1 = np.abs(a).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.abs(np.log(np.abs(c)) - np.log(norm2))
        log_ratio = np.where((np.abs(c) == 0) & (norm2 == 0), np.inf, log_ratio)
        kink = np.where(norm1 > 0, D - np.abs(b) / norm1, -np.inf)
    max_imbalance = float(log_ratio.max()) if n_live else 0.0
    min_abs_c = float(np.abs(c).min()) if n_live else np.inf
    min_kink = float(kink.min()) if n_live else np.inf

    min_same = min_opp = np.inf
    if n_live >= 2:
        same, opp = hyperplane_angles(a, b)
        off = ~np.eye(n_live, dtype=bool)
        min_same = float(same[off].min())
        min_opp = float(opp[off].min())

    r1 = max_imbalance <= tol
    r2 = min_kink > 0.0
    r3 = min_same > tol
    r4 = min_opp > tol
    return {
        "max_imbalance": max_imbalance,
        "min_abs_c": min_abs_c,
        "kink_margins": kink,
        "min_kink_margin": min_kink,
        "min_angle_same": min_same,
        "min_angle_opposite": min_opp,
        "min_hyperplane_angle": min(min_same, min_opp),
        "n_live": n_live,
        "n_padding": int(net.width - n_live),
        "R1": bool(r1),
        "R2": bool(r2),
        "R3": bool(r3),
        "R4": bool(r4),
        "member": bool(r1 and r2 and r3 and r4),
    }


def in_restricted_set(net: ShallowNet, D: float, tol: float = DEFAULT_TOL) -> bool:
    """True when ``net`` satisfies R1-R4 on [-D, D]^d (see ``restricted_set_margins``)."""
    return restricted_set_margins(net, D, tol)["member"]
