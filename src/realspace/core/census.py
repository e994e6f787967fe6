"""Degeneracy census of a network's end point (docs/science.md, "Statistics").

The math: docs/science.md#statistics.
"""

from __future__ import annotations

import numpy as np

from .canonical import canonical_form, classify_neurons
from .nets import ShallowNet
from .restricted import MERGE_ANGLE, hyperplane_angles, live_neurons, output_norms

__all__ = ["degeneracy_census"]


def degeneracy_census(
    net: ShallowNet, D: float, angle_tol: float = MERGE_ANGLE, canonical: ShallowNet | None = None
) -> dict:
    """Shares of the N neurons that are dead on Q, affine on Q, duplicates ((a, b) within
    ``angle_tol`` of parallel to another neuron's, both kinks meeting Q) and opposites
    (within ``angle_tol`` of antiparallel); the imbalance of R1, |log(|c_i| / ||a_i||_2)|
    (||c_i||_2 with m >= 2 outputs; mean and max over live neurons with c_i != 0 and
    a_i != 0); the effective width (live neurons of the canonical form).

    The definitions are those of the restricted set, so that a network in Omega_N reads
    0 in every share and in the imbalance: ``angle_tol`` is the trainer's merge angle
    (``MERGE_ANGLE``), the angle measured as there (chords of explicit differences).
    ``canonical``: ``canonical_form(net, D)`` when the caller has it already (a record
    keeps it anyway); computed here otherwise.
    """
    N = net.width
    if canonical is None:
        canonical = canonical_form(net, D)
    kind = classify_neurons(net, D)
    live = live_neurons(net)
    inside = kind["inside"] & live
    dup = np.zeros(N, bool)
    opp = np.zeros(N, bool)
    idx = np.flatnonzero(inside)
    if idx.size >= 2:
        same, opposite = hyperplane_angles(net.a[idx], net.b[idx])
        np.fill_diagonal(same, np.inf)
        np.fill_diagonal(opposite, np.inf)
        dup[idx] = (same <= angle_tol).any(axis=1)
        opp[idx] = (opposite <= angle_tol).any(axis=1)
    norm = np.linalg.norm(net.a, axis=1)
    size = output_norms(net.c)
    ok = live & (size > 0) & (norm > 0)
    imbalance = np.abs(np.log(size[ok] / norm[ok])) if ok.any() else np.zeros(1)
    share = (lambda m: float(np.count_nonzero(m & live)) / N) if N else (lambda m: 0.0)
    return {
        "dead": share(kind["dead"]),
        "affine": share(kind["affine"]),
        "duplicate": share(dup),
        "opposite": share(opp),
        "imbalance_mean": float(imbalance.mean()),
        "imbalance_max": float(imbalance.max()),
        "effective_width": int(np.count_nonzero(live_neurons(canonical))),
    }
