"""Canonical form: any shallow network -> the same realization on Q, inside Omega_N.

The steps (docs/science.md, "Canonical form"):

1. a_i = 0: the neuron is the constant c_i rho(b_i); fold it into e.
2. kink outside the open cube: b_i <= -D||a_i||_1 is dead on Q (drop);
   b_i >= D||a_i||_1 is affine on Q, c_i(<a_i,x> + b_i): fold into (w, e).
   (Step 1 is the case a_i = 0 of this rule.)
3. normalise: (a^, b^) = (a_i, b_i) / ||a_i||_2 and gamma_i = c_i ||a_i||_2, so that
   c_i rho(<a_i,x> + b_i) = gamma_i rho(<a^,x> + b^).
4./6. orient every neuron by a fixed rule (b^ > 0; for b^ = 0 the first nonzero
   entry of a^ positive). A flip uses gamma rho(z) = gamma rho(-z) + gamma z, moving
   gamma (a^, b^) into (w, e). After orienting, neurons on one hyperplane share one
   (a^, b^), so merging same and opposite orientations is one sum of gammas.
5. drop neurons whose merged |gamma| is negligible; rebalance
   t = sqrt|gamma|, (a, b) = t (a^, b^), c = sign(gamma) t, so |c| = ||a||_2.
6. sort neurons lexicographically by (a^, b^); pad with zero neurons to the width.

With m >= 2 outputs gamma_i = c_i ||a_i||_2 is a vector of R^m: folds and flips move
c_i (a_i, b_i)^T (an m x (d + 1) block) into (W, e), merges add the vectors, |gamma|
reads ||gamma||_2 and the rebalance sets c = gamma / t (docs/science.md#vector-outputs).

Orienting before merging is equivalent to the order in docs/science.md and avoids a
separate opposite-orientation pass.

The math: docs/science.md#canonical-form.
"""

from __future__ import annotations

import numpy as np

from .nets import ShallowNet, check_domain
from .restricted import DEFAULT_TOL

__all__ = ["canonical_form", "classify_neurons", "orientation_flips", "affine_shift"]


def classify_neurons(net: ShallowNet, D: float, tol: float = DEFAULT_TOL) -> dict:
    """Masks (N,) of neurons by their behaviour on Q = [-D, D]^d.

    ``dead``: zero on Q (b_i <= -D||a_i||_1), ``affine``: affine on Q
    (b_i >= D||a_i||_1, b_i > 0), ``inside``: the kink meets the open cube.
    Boundaries are judged with relative tolerance ``tol``: a kink within
    tol * D ||a_i||_1 of the cube's boundary counts as outside. Neurons with a_i = 0
    are dead or affine (constant) by the same rule.
    """
    D = check_domain(D)
    reach = D * np.abs(net.a).sum(axis=1)
    outside = np.abs(net.b) >= reach * (1.0 - tol)
    affine = outside & (net.b > 0)
    return {"dead": outside & ~affine, "affine": affine, "inside": ~outside}


def orientation_flips(a_hat: np.ndarray, b_hat: np.ndarray, D: float, tol: float) -> np.ndarray:
    """Which normalised neurons the orientation rule flips, mask (N,).

    Rule: b^ > 0; when |b^| <= tol * D (a kink through the origin), the first
    entry of a^ with |a^_k| > tol must be positive.
    """
    tie = np.abs(b_hat) <= tol * D
    big = np.abs(a_hat) > tol
    first = np.argmax(big, axis=1)
    lead = a_hat[np.arange(a_hat.shape[0]), first]
    return np.where(tie, lead < 0, b_hat < 0)


def affine_shift(c: np.ndarray, a: np.ndarray, b: np.ndarray):
    """sum_i c_i (a_i, b_i): what neurons (a, b, c) folded or flipped add to (w, e).

    Scalar outputs, c (k,): (w shift (d,), e shift float). Vector outputs, c (k, m):
    (W shift sum_i c_i a_i^T (m, d), e shift sum_i c_i b_i (m,)).
    """
    if c.ndim == 1:
        return c @ a, float(c @ b)
    return c.T @ a, c.T @ b


def _sizes(gamma: np.ndarray) -> np.ndarray:
    """|gamma_i| (N,) for scalar outputs, ||gamma_i||_2 (scaled, see row_norms) for (N, m)."""
    return np.abs(gamma) if gamma.ndim == 1 else row_norms(gamma)


def _group_sums(label: np.ndarray, gamma: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum of the gammas (N,) or (N, m) of each merge group, shape (n_groups,) or
    (n_groups, m)."""
    if gamma.ndim == 1:
        return np.bincount(label, weights=gamma, minlength=n_groups)
    total = np.zeros((n_groups, gamma.shape[1]))
    np.add.at(total, label, gamma)
    return total


def canonical_form(
    net: ShallowNet, D: float, tol: float = DEFAULT_TOL, width: int | None = None
) -> ShallowNet:
    """The canonical parametrization of ``net``'s realization on [-D, D]^d.

    The result is a restricted network (w explicit) in Omega_N with the same
    realization on the cube, up to rounding and to the tolerance decisions
    (kinks within ``tol`` of the boundary, hyperplanes within angle ``tol``,
    merged |gamma| below ``tol`` times the largest |gamma|; ||gamma||_2 with m >= 2
    outputs, whose c, e and W keep their shapes (N, m), (m,), (m, d)). Two parametrizations of
    one realization have canonical forms equal up to those tolerances; the
    symmetries left are none but the orientation rule's discontinuity at b^ = 0.

    Output width is ``width`` (default: the input width), padded with zero neurons.
    """
    D = check_domain(D)
    d = net.dim
    width = net.width if width is None else int(width)
    kind = classify_neurons(net, D, tol)
    w = net.linear.copy()
    e = net.e if net.outputs == 1 else net.e.copy()  # the net's own e is read-only
    # Step 1-2: constants and neurons affine on Q fold into (w, e); dead ones vanish.
    aff = kind["affine"]
    dw, de = affine_shift(net.c[aff], net.a[aff], net.b[aff])
    w += dw
    e += de

    # Step 3: normalise the neurons whose kink meets the cube.
    keep = kind["inside"]
    norm = row_norms(net.a[keep])
    a_hat = net.a[keep] / norm[:, None]
    b_hat = net.b[keep] / norm
    gamma = net.c[keep] * (norm if net.outputs == 1 else norm[:, None])
    scale = float(_sizes(gamma).max()) if gamma.size else 0.0

    # Step 6 (rule) before 4: flip with gamma rho(z) = gamma rho(-z) + gamma z.
    flip = orientation_flips(a_hat, b_hat, D, tol)
    dw, de = affine_shift(gamma[flip], a_hat[flip], b_hat[flip])
    w += dw
    e += de
    a_hat[flip] *= -1.0
    b_hat[flip] *= -1.0

    # Step 4: merge neurons whose oriented (a^, b^) agree to angle tol.
    if gamma.size:
        u = np.column_stack([a_hat, b_hat])
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        close = _chord_distances(u) <= 2.0 * np.sin(tol / 2.0)
        n_groups, label = _merge_groups(close)
        weight = _sizes(gamma) + 1e-300
        gamma = _group_sums(label, gamma, n_groups)
        mean = np.zeros((n_groups, d + 1))
        np.add.at(mean, label, weight[:, None] * np.column_stack([a_hat, b_hat]))
        mean /= row_norms(mean[:, :d])[:, None]
        a_hat, b_hat = mean[:, :d], mean[:, d]

    # Step 5: drop negligible neurons, rebalance the rest.
    size = _sizes(gamma)
    big = size > tol * scale
    a_hat, b_hat, gamma, size = a_hat[big], b_hat[big], gamma[big], size[big]
    n = gamma.shape[0]
    if n > width:
        raise ValueError(f"canonical form needs width {n}, more than width={width}")
    order = np.lexsort(np.column_stack([a_hat, b_hat]).T[::-1])
    a_hat, b_hat, gamma, size = a_hat[order], b_hat[order], gamma[order], size[order]
    t = np.sqrt(size)
    # padded to the width here (as ShallowNet.padded would): one network built, not two
    a, b, c = np.zeros((width, d)), np.zeros(width), np.zeros((width, *gamma.shape[1:]))
    a[:n], b[:n] = t[:, None] * a_hat, t * b_hat
    c[:n] = np.sign(gamma) * t if gamma.ndim == 1 else gamma / t[:, None]
    return ShallowNet(a, b, c, e, w)


# Below these sizes the pairwise work is done in numpy: for the few neurons of a typical
# network, scipy's pdist and sparse-graph machinery cost ~1 ms of call overhead per
# network, far more than the arithmetic.
_BROADCAST_MAX = 1 << 18  # entries of the (N, N, d + 1) difference array
_CLOSURE_MAX = 64  # neurons for the dense transitive closure (O(N^3 log N))


def _chord_distances(u: np.ndarray) -> np.ndarray:
    """Euclidean distances ||u_i - u_j|| between the rows of u (N, k), shape (N, N).

    Summed coordinate by coordinate in order, as scipy's pdist does, so the threshold
    decisions match it; large inputs go to pdist itself (no (N, N, k) array).
    """
    n, k = u.shape
    if n * n * k > _BROADCAST_MAX:
        from scipy.spatial.distance import pdist, squareform  # loaded where used

        return squareform(pdist(u))
    diff = u[:, None, :] - u[None, :, :]
    sq = diff[..., 0] * diff[..., 0]
    for j in range(1, k):
        sq += diff[..., j] * diff[..., j]
    return np.sqrt(sq)


def row_norms(x: np.ndarray) -> np.ndarray:
    """Euclidean norms of the rows of ``x`` (n, k), scaled so that they neither underflow
    nor overflow: a weight-decayed neuron of size 1e-160 has a norm, not 0 (sum of
    squares would underflow to 0 below about 1e-154 and divide by zero)."""
    s = np.abs(x).max(axis=1, keepdims=True) if x.size else np.zeros((x.shape[0], 1))
    safe = np.where(s > 0, s, 1.0)
    return s[:, 0] * np.linalg.norm(x / safe, axis=1)


def _merge_groups(close: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of the symmetric boolean relation ``close`` (N, N).

    Returns (number of groups, label (N,)), labels numbered by each group's smallest
    member (the order of scipy's connected_components). Merges are rare at trained end
    points, so a relation with no off-diagonal entry returns at once; small N takes the
    transitive closure by repeated boolean squaring, large N scipy's graph search.
    """
    n = close.shape[0]
    off = close.copy()
    np.fill_diagonal(off, False)
    if not off.any():
        return n, np.arange(n)
    if n > _CLOSURE_MAX:
        from scipy.sparse import coo_matrix  # loaded where used
        from scipy.sparse.csgraph import connected_components

        return connected_components(coo_matrix(off), directed=False)
    # reach after k squarings: paths of length <= 2^k; int32 counts cannot overflow here
    reach = (off | np.eye(n, dtype=bool)).astype(np.int32)
    while True:
        nxt = ((reach @ reach) > 0).astype(np.int32)
        if np.array_equal(nxt, reach):
            break
        reach = nxt
    roots, label = np.unique(reach.argmax(axis=1), return_inverse=True)
    return roots.size, label
