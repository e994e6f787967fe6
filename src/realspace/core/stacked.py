"""The canonical form, the restricted-set margins and the degeneracy census of M networks of
one shape at once, for scalar outputs: a (M, N, d), b (M, N), c (M, N), e (M,), w (M, d).

Each function returns, network by network, bit for bit what its per-network reference
returns (``canonical.canonical_form``, ``restricted.restricted_set_margins``,
``census.degeneracy_census``, ``ShallowNet.__call__``), the references being the readable
definitions. Bit for bit because the operations are the references', in their order:

- elementwise steps are the same ufuncs on the same operands, and reductions run along
  the last axis, as in the references (numpy reduces a contiguous last axis the same way
  for one row as for a stack of rows);
- what goes to BLAS in the references (the affine shifts sum_i c_i (a_i, b_i) over a subset
  of neurons, the Gram matrices of the hyperplane angles, the realization's products) is
  made by one stacked ``matmul`` per count of selected neurons (``_by_count``), on the
  subsets compressed to the front: numpy makes one BLAS call per stacked matrix with the
  shapes and strides of the reference's own call, so the small dot products keep the
  BLAS's summation order and fused multiply-adds;
- the rare networks where the canonical form merges neurons (two hyperplanes within angle
  tol) go to the reference itself.

Everything on the masked-out neurons of a stack is computed and then ignored; divisors
there are replaced by 1 so that nothing warns.

The math: docs/science.md#canonical-form, #the-restricted-set, #statistics.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .canonical import canonical_form
from .nets import ShallowNet, check_domain
from .restricted import DEFAULT_TOL, MERGE_ANGLE

__all__ = [
    "canonical_forms",
    "stacked_margins",
    "stacked_census",
    "stacked_realization",
    "stacked_mse_objective",
    "stacked_live",
]


def _by_count(mask: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """For each count k of selected neurons in ``mask`` (M, N): (k, rows (G,) of the
    networks with k selected, idx (G, k) their selected neurons in increasing order)."""
    counts = np.count_nonzero(mask, axis=-1)
    front = np.argsort(~mask, axis=-1, kind="stable")
    for k in np.unique(counts).tolist():
        rows = np.flatnonzero(counts == k)
        yield k, rows, front[rows, :k]


def _masked_dot(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x[m][mask[m]] @ y[m][mask[m]]`` for every network m: x (M, N), y (M, N) -> (M,),
    y (M, N, d) -> (M, d) (``canonical.affine_shift`` of the selected neurons)."""
    vector = y.ndim == 2
    out = np.zeros((x.shape[0], *y.shape[2:]))
    for k, rows, idx in _by_count(mask):
        sel = (rows[:, None], idx)
        xs = x[sel].reshape(len(rows), 1, k)
        ys = y[sel][..., None] if vector else y[sel]
        out[rows] = (xs @ ys)[:, 0, 0] if vector else (xs @ ys)[:, 0]
    return out


def _row_norms(x: np.ndarray) -> np.ndarray:
    """``canonical.row_norms`` (``restricted.output_norms`` of a 2-D array) of every row
    of x (..., k) along the last axis."""
    s = np.abs(x).max(axis=-1, keepdims=True)
    return s[..., 0] * np.linalg.norm(x / np.where(s > 0, s, 1.0), axis=-1)


def stacked_live(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``restricted.live_neurons`` of each network, (M, N): not all-zero padding."""
    return (a != 0.0).any(axis=-1) | (b != 0.0) | (c != 0.0)


def _kinds(a: np.ndarray, b: np.ndarray, D: float, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """``canonical.classify_neurons``: masks (M, N) of the neurons affine on Q and of
    those whose kink meets the open cube (the rest are dead)."""
    reach = D * np.abs(a).sum(axis=-1)
    outside = np.abs(b) >= reach * (1.0 - tol)
    return outside & (b > 0), ~outside


def _flips(a_hat: np.ndarray, b_hat: np.ndarray, D: float, tol: float) -> np.ndarray:
    """``canonical.orientation_flips`` of each network, (M, N)."""
    tie = np.abs(b_hat) <= tol * D
    first = np.argmax(np.abs(a_hat) > tol, axis=-1)
    lead = np.take_along_axis(a_hat, first[..., None], axis=-1)[..., 0]
    return np.where(tie, lead < 0, b_hat < 0)


def _chord_distances(u: np.ndarray) -> np.ndarray:
    """``canonical._chord_distances`` within each network: u (M, N, k) -> (M, N, N),
    summed coordinate by coordinate in order (as pdist, and the reference, do)."""
    diff = u[:, :, None, :] - u[:, None, :, :]
    sq = diff[..., 0] * diff[..., 0]
    for j in range(1, u.shape[-1]):
        sq += diff[..., j] * diff[..., j]
    return np.sqrt(sq)


def canonical_forms(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    D: float,
    tol: float = DEFAULT_TOL,
    width: int | None = None,
) -> tuple[np.ndarray, ...]:
    """``canonical_form`` of each network: a (M, N, d), b (M, N), c (M, N), e (M,) and the
    linear part w (M, d) (zeros for w = 0) -> the canonical (a, b, c, e, w) of shapes
    (M, W, d), (M, W), (M, W), (M,), (M, d), W = ``width`` (default N).

    Steps 1-6 of docs/science.md#canonical-form on all networks at once; a network whose
    oriented hyperplanes come within angle ``tol`` of each other (a merge, rare at trained
    end points) is handed to ``canonical_form`` itself. ValueError when a network needs
    more than ``width`` neurons.
    """
    D = check_domain(D)
    M, N, d = a.shape
    width = N if width is None else int(width)
    # steps 1-2: neurons affine on Q fold into (w, e), dead ones vanish
    affine, inside = _kinds(a, b, D, tol)
    w_out = w + _masked_dot(c, a, affine)
    e_out = e + _masked_dot(c, b, affine)
    # step 3: normalise the neurons whose kink meets the cube
    norm = np.where(inside, _row_norms(a), 1.0)
    a_hat, b_hat, gamma = a / norm[..., None], b / norm, c * norm
    scale = np.max(np.abs(gamma), axis=-1, where=inside, initial=0.0)
    # step 4: orient, gamma rho(z) = gamma rho(-z) + gamma z
    flip = _flips(a_hat, b_hat, D, tol) & inside
    w_out = w_out + _masked_dot(gamma, a_hat, flip)
    e_out = e_out + _masked_dot(gamma, b_hat, flip)
    a_hat = np.where(flip[..., None], -a_hat, a_hat)
    b_hat = np.where(flip, -b_hat, b_hat)
    ab = np.concatenate([a_hat, b_hat[..., None]], axis=-1)
    # step 5: a network with two oriented directions within angle tol merges them
    u = ab / np.where(inside[..., None], np.linalg.norm(ab, axis=-1, keepdims=True), 1.0)
    pair = inside[:, :, None] & inside[:, None, :] & ~np.eye(N, dtype=bool)
    close = (_chord_distances(u) <= 2.0 * np.sin(tol / 2.0)) & pair
    merged = np.flatnonzero(close.any(axis=(1, 2)))
    # the others take the merge step's arithmetic with singleton groups: each gamma and
    # |gamma|-weighted direction added to a zero total, the direction rescaled
    mean = 0.0 + (np.abs(gamma) + 1e-300)[..., None] * ab
    gamma = 0.0 + gamma
    mean = mean / np.where(inside, _row_norms(mean[..., :d]), 1.0)[..., None]
    # step 6: drop, sort, rebalance, pad
    size = np.abs(gamma)
    big = inside & (size > tol * scale[:, None])
    count = np.count_nonzero(big, axis=-1)
    keys = [mean[..., j] for j in range(d, -1, -1)] + [~big]  # the last key sorts first
    order = np.lexsort(keys, axis=-1)
    size, gamma = (np.take_along_axis(x, order, axis=-1) for x in (size, gamma))
    mean = np.take_along_axis(mean, order[..., None], axis=1)
    t = np.sqrt(size)
    kept = np.arange(N) < count[:, None]
    n = min(N, width)
    out_a, out_b, out_c = np.zeros((M, width, d)), np.zeros((M, width)), np.zeros((M, width))
    out_a[:, :n] = np.where(kept[..., None], t[..., None] * mean[..., :d], 0.0)[:, :n]
    out_b[:, :n] = np.where(kept, t * mean[..., d], 0.0)[:, :n]
    out_c[:, :n] = np.where(kept, np.sign(gamma) * t, 0.0)[:, :n]
    too = np.flatnonzero((count > width) & ~np.isin(np.arange(M), merged))
    if too.size:
        raise ValueError(f"canonical form needs width {count[too[0]]}, more than width={width}")
    out = (out_a, out_b, out_c, e_out, w_out)
    for m in merged.tolist():
        net = ShallowNet(a[m], b[m], c[m], float(e[m]), w[m])
        canon = canonical_form(net, D, tol, width)
        for x, value in zip(out, (canon.a, canon.b, canon.c, canon.e, canon.w), strict=True):
            x[m] = value
    return out


def _angles(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``restricted.hyperplane_angles`` of each network's neurons in ``mask`` (M, N):
    (same, opposite), each (M, N, N), equal to the reference's where both neurons are in
    the mask (meaningless elsewhere)."""
    v = np.concatenate([a, b[..., None]], axis=-1)
    s = np.abs(v).max(axis=-1, keepdims=True)
    v = v / np.where(s > 0, s, 1.0)
    norm = np.sqrt((v * v).sum(axis=-1, keepdims=True))
    with np.errstate(invalid="ignore"):  # a live neuron with (a, b) = 0 has no direction: NaN
        u = v / np.where(mask[..., None], norm, 1.0)
    M, N = mask.shape
    gram = np.zeros((M, N, N))
    for k, rows, idx in _by_count(mask):
        if k >= 2:
            uc = u[rows[:, None], idx]
            gram[rows[:, None, None], idx[:, :, None], idx[:, None, :]] = uc @ uc.transpose(0, 2, 1)
    gram = np.minimum(np.maximum(gram, -1.0), 1.0)
    diff = np.sqrt(np.maximum(2.0 - 2.0 * gram, 0.0))
    summ = np.sqrt(np.maximum(2.0 + 2.0 * gram, 0.0))
    # nearly (anti)parallel pairs from explicit differences, as the reference redoes them
    for chord, sign in ((diff, -1.0), (summ, 1.0)):
        m, i, j = np.nonzero(chord < 1e-3)
        e = u[m, i] + sign * u[m, j]
        chord[m, i, j] = np.sqrt((e * e).sum(axis=1))
    same = 2.0 * np.arcsin(np.minimum(np.maximum(diff / 2.0, 0.0), 1.0))
    opposite = 2.0 * np.arcsin(np.minimum(np.maximum(summ / 2.0, 0.0), 1.0))
    return same, opposite


def _pairs(mask: np.ndarray) -> np.ndarray:
    """(M, N, N): both neurons in ``mask``, and not the same neuron."""
    N = mask.shape[-1]
    return mask[:, :, None] & mask[:, None, :] & ~np.eye(N, dtype=bool)


def stacked_margins(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, D: float, tol: float = DEFAULT_TOL
) -> dict[str, np.ndarray]:
    """``restricted_set_margins`` of each network: its entries in its order, each scalar
    as an array (M,) over the networks, ``kink_margins`` as a list of M arrays (n_live,)."""
    D = check_domain(D)
    live = stacked_live(a, b, c)
    n_live = np.count_nonzero(live, axis=-1)
    size = np.abs(c)
    norm2 = _row_norms(a)
    norm1 = np.abs(a).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.abs(np.log(size) - np.log(norm2))
        log_ratio = np.where((size == 0) & (norm2 == 0), np.inf, log_ratio)
        kink = np.where(norm1 > 0, D - np.abs(b) / norm1, -np.inf)
    max_imbalance = np.max(log_ratio, axis=-1, where=live, initial=-np.inf)
    max_imbalance = np.where(n_live > 0, max_imbalance, 0.0)
    min_abs_c = np.min(size, axis=-1, where=live, initial=np.inf)
    min_kink = np.min(kink, axis=-1, where=live, initial=np.inf)
    same, opposite = _angles(a, b, live)
    pairs = _pairs(live)
    min_same = np.min(same, axis=(1, 2), where=pairs, initial=np.inf)
    min_opp = np.min(opposite, axis=(1, 2), where=pairs, initial=np.inf)
    r1, r2 = max_imbalance <= tol, min_kink > 0.0
    r3, r4 = min_same > tol, min_opp > tol
    return {
        "max_imbalance": max_imbalance,
        "min_abs_c": min_abs_c,
        "kink_margins": [k[alive] for k, alive in zip(kink, live, strict=True)],
        "min_kink_margin": min_kink,
        "min_angle_same": min_same,
        "min_angle_opposite": min_opp,
        # min(same, opposite) as Python's min takes it: the first unless the second is less
        "min_hyperplane_angle": np.where(min_opp < min_same, min_opp, min_same),
        "n_live": n_live,
        "n_padding": a.shape[1] - n_live,
        "R1": r1,
        "R2": r2,
        "R3": r3,
        "R4": r4,
        "member": r1 & r2 & r3 & r4,
    }


def stacked_census(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    D: float,
    canonical_live: np.ndarray,
    angle_tol: float = MERGE_ANGLE,
) -> dict[str, np.ndarray]:
    """``degeneracy_census`` of each network, each entry an array (M,);
    ``canonical_live`` (M, N'): the live neurons of each network's canonical form
    (``stacked_live`` of ``canonical_forms``), for the effective width."""
    M, N = b.shape
    affine, inside = _kinds(a, b, check_domain(D), DEFAULT_TOL)
    dead = ~inside & ~affine
    live = stacked_live(a, b, c)
    inside &= live
    same, opposite = _angles(a, b, inside)
    pairs = _pairs(inside)
    duplicate = ((same <= angle_tol) & pairs).any(axis=-1)
    opposed = ((opposite <= angle_tol) & pairs).any(axis=-1)
    norm = np.linalg.norm(a, axis=-1)
    size = np.abs(c)
    ok = live & (size > 0) & (norm > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        imbalance = np.abs(np.log(size / norm))
    # the mean sums each network's own values (numpy's summation order for that count)
    mean = np.zeros(M)
    for k, rows, idx in _by_count(ok):
        if k:
            mean[rows] = imbalance[rows[:, None], idx].sum(axis=-1) / k
    counts = np.count_nonzero(ok, axis=-1)
    most = np.max(imbalance, axis=-1, where=ok, initial=-np.inf)

    def share(mask):
        return np.count_nonzero(mask & live, axis=-1) / N if N else np.zeros(M)

    return {
        "dead": share(dead),
        "affine": share(affine),
        "duplicate": share(duplicate),
        "opposite": share(opposed),
        "imbalance_mean": mean,
        "imbalance_max": np.where(counts > 0, most, 0.0),
        "effective_width": np.count_nonzero(canonical_live, axis=-1),
    }


def stacked_realization(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, e: np.ndarray, w: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """Each network's realization ``ShallowNet.__call__`` at its points: x (M, n, d), or
    (n, d) shared by all -> f (M, n)."""
    z = x @ a.transpose(0, 2, 1) + b[:, None, :]
    return (np.maximum(z, 0.0) @ c[..., None])[..., 0] + (x @ w[..., None])[..., 0] + e[:, None]


def stacked_mse_objective(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    lam: np.ndarray,
) -> np.ndarray:
    """Each network's MSE objective on its data, (M,): ``targets.mse(net, x, y) +
    targets.weight_decay_penalty(net, lam)``, (1/n) sum_k (f(x_k) - y_k)^2 +
    (lam / 2) (sum_i c_i^2 + sum_ij a_ij^2). x (M, n, d) or (n, d) shared, y (M, n),
    lam (M,)."""
    f = stacked_realization(a, b, c, e, w, x)
    loss = ((f - y) ** 2).sum(axis=-1) / y.shape[-1]
    return loss + 0.5 * lam * ((c * c).sum(axis=-1) + (a * a).reshape(len(a), -1).sum(axis=-1))
