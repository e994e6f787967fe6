"""Activation patterns of a data set, and the cones they define.

A neuron rho(<a, x> + b) is linear on the data within one activation pattern
D = diag(1[X~ u > 0]) (u = (a, b), X~ = [X, 1]): rho(X~ u) = D X~ u on the cone
K = {u: (2 D - I) X~ u >= 0}. The convex programs (``binary``, ``multiclass``) have one
pair of variables per pattern, constrained to its cone. Exact enumeration: d = 1 and small
2-D data sets; otherwise sampled hyperplanes (an incomplete set: the programs' values are
then attained by networks, upper bounds on the optimum).

The math: docs/science.md#global-optimum-references.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EXACT_2D_MAX_POINTS", "activation_patterns", "cone_matrix"]

EXACT_2D_MAX_POINTS = 64  # exact pattern enumeration in d = 2 costs O(n^3) candidates


def _masks_from_projections(proj: np.ndarray) -> np.ndarray:
    """Every strict threshold dichotomy {k: proj_k > t} of each row of ``proj`` (R, n)."""
    out = []
    for p in proj:
        order = np.argsort(p, kind="stable")
        v = p[order]
        step = np.diff(v) > 1e-12 * (1 + np.abs(v[1:]))  # equal projections share a level
        level = np.empty(len(p), int)
        level[order] = np.concatenate([[0], np.cumsum(step)])
        out.append(level[None, :] > np.arange(-1, level.max())[:, None])
    return np.concatenate(out)


def activation_patterns(
    X: np.ndarray, max_exact_2d: int = EXACT_2D_MAX_POINTS, samples: int = 2000, seed: int = 0
) -> tuple[np.ndarray, bool]:
    """The distinct non-empty activation patterns 1[<a, x_k> + b > 0] of the data X (n, d).

    Returns (patterns (P, n) bool, exact). d = 1: the thresholds between sorted points in
    both directions (2n - 1 patterns). d = 2 with n <= ``max_exact_2d``: exact, because the
    order of the projections <a, x_k> changes only at the critical directions orthogonal
    to some x_i - x_j; one direction inside each arc between them, with every threshold,
    yields every strict dichotomy. Otherwise ``samples`` random hyperplanes (not exact).
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    if d == 1:
        dirs, exact = np.array([[1.0], [-1.0]]), True
    elif d == 2 and n <= max_exact_2d:
        diff = X[:, None, :] - X[None, :, :]
        iu = np.triu_indices(n, 1)
        dv = diff[iu]
        dv = dv[np.linalg.norm(dv, axis=1) > 0]
        crit = np.arctan2(dv[:, 1], dv[:, 0]) + np.pi / 2  # normal orthogonal to x_i - x_j
        crit = np.sort(np.mod(np.concatenate([crit, crit + np.pi]), 2 * np.pi))
        crit = np.unique(np.round(crit, 12))
        mids = (
            (crit + np.diff(np.concatenate([crit, [crit[0] + 2 * np.pi]])) / 2)
            if len(crit)
            else np.array([0.0])
        )
        dirs, exact = np.stack([np.cos(mids), np.sin(mids)], axis=1), True
    else:
        rng = np.random.default_rng(seed)
        dirs = rng.standard_normal((samples, d))
        proj = X @ dirs.T  # (n, S)
        t = proj[rng.integers(0, n, samples), np.arange(samples)] - 1e-9
        masks = (proj > t).T
        masks = np.concatenate([masks, np.ones((1, n), bool)])
        masks = np.unique(masks[masks.any(axis=1)], axis=0)
        return masks, False
    masks = _masks_from_projections(dirs @ X.T)
    masks = np.unique(masks[masks.any(axis=1)], axis=0)
    return masks, exact


def _cone_rows(X: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose sign constraints imply the whole cone (2 D - I) X~ u >= 0.

    In d = 1 an affine function is >= 0 on a set iff it is at the set's extreme points,
    so two rows per side suffice; in d >= 2 every row is kept.
    """
    idx = np.arange(len(mask))
    if X.shape[1] == 1:
        x = X[:, 0]

        def ends(sel):
            sel = idx[sel]
            return sel[[np.argmin(x[sel]), np.argmax(x[sel])]] if len(sel) else sel

        return np.unique(ends(mask)), np.unique(ends(~mask))
    return idx[mask], idx[~mask]


def _hull_rows(X: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose sign constraints imply the whole cone (2 D - I) X~ u >= 0: an affine
    function is >= 0 on a finite set iff it is >= 0 on the vertices of its convex hull,
    so per side the hull's vertices suffice (all rows when the hull is degenerate). In the
    plane only: in d >= 3 a hull's size and cost grow fast with d, and every row is kept."""
    if X.shape[1] != 2:  # d = 1: the two ends; d >= 3: hulls grow costly, every row kept
        return _cone_rows(X, mask)
    from scipy.spatial import ConvexHull, QhullError

    idx = np.arange(len(mask))

    def vertices(sel):
        sel = idx[sel]
        if len(sel) <= X.shape[1] + 1:
            return sel
        try:
            return sel[ConvexHull(X[sel]).vertices]
        except QhullError:  # collinear (flat) sets: keep every row
            return sel

    return np.sort(vertices(mask)), np.sort(vertices(~mask))


def cone_matrix(X: np.ndarray, patterns: np.ndarray):
    """Sparse G with G @ vec(U) >= 0 iff every row u_j of U (P, d + 1) lies in K_j."""
    import scipy.sparse as sp

    n, d = X.shape
    Xt = np.hstack([X, np.ones((n, 1))])
    rows, cols, vals, r = [], [], [], 0
    for j, mask in enumerate(patterns):
        on, off = _hull_rows(X, mask)
        for k, sign in [(k, 1.0) for k in on] + [(k, -1.0) for k in off]:
            rows += [r] * (d + 1)
            cols += list(range(j * (d + 1), (j + 1) * (d + 1)))
            vals += list(sign * Xt[k])
            r += 1
    return sp.csr_matrix((vals, (rows, cols)), shape=(r, len(patterns) * (d + 1)))
