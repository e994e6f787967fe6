"""Claim 2's witnesses: a parameter-space end point that is not a realization-space minimum.

A free neuron contributes nothing on the data (dead on every sample, zero output weight, or
one of a positively collinear pair that merges into one). Its slot can take the balanced
neuron c rho(<a, x> + b), a = sqrt(g) u, b = -sqrt(g) t, c = sqrt(g) v (||u||_2 = ||v||_2
= 1), which moves the realization by g v rho(<u, x> - t) and the penalty by lam g, so

    J(Theta'(g)) = J(Theta) + g (<G, v rho(<u, X> - t)> + lam) + O(g^2),

G the data loss's gradient in the function values. The descent rate is

    rate = max_{||u|| = 1, -D||u||_1 <= t <= D||u||_1} ||sum_k G_k rho(<u, x_k> - t)||_2 - lam,

exact in d = 1 (u = +-1), a lower bound over finitely many directions u in d >= 2. A witness
is verified by construction: J drops for every g in ``sizes`` while d_W(R Theta,
R Theta'(g)) <= C0 g. The Gaussian teacher-student model has its own version
(``find_gaussian_witness``). The math: docs/science.md#witnesses-claim-2.

About 430 lines because the free neurons, the descent rate and the verified witness are
one derivation (the expansion above), in both models; split, each part would need the
others' conventions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .distances import sobolev_distance
from .nets import ShallowNet, as_points, check_domain
from .restricted import MERGE_ANGLE, hyperplane_angles, output_norms
from .targets import (
    arccos_kernel,
    cross_entropy_loss,
    gaussian_population_loss,
    logistic_loss,
    mse,
    weight_decay_penalty,
)

__all__ = [
    "LOSSES", "SIZES", "Descent", "FreeNeurons", "Witness", "candidate_directions",
    "descent_direction", "find_gaussian_witness", "find_witness", "free_neurons",
    "loss_gradient", "objective", "witness_network",
]  # fmt: skip

LOSSES = {"mse": mse, "logistic": logistic_loss, "cross_entropy": cross_entropy_loss}
SIZES = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
EXACT_ANGLE = 1e-12  # rad: a merged pair this parallel is exactly one neuron up to rounding


def loss_gradient(f: np.ndarray, y: np.ndarray, loss: str) -> np.ndarray:
    """G = d loss(f, y) / d f, the data loss's gradient in the function values f (n,)
    ((n, m) for cross-entropy).

    mse: 2 (f - y) / f.size (the mean of ``targets.mse``: (2/n)(f - y) for scalars);
    logistic: -(1/n) y sigmoid(-y f), sigmoid(z) = exp(-log(1 + e^-z)) (no overflow);
    cross_entropy: (1/n) (softmax(f) - onehot(y)), labels y (n,) in 0..m-1.
    """
    f = np.asarray(f, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = f.shape[0]
    if loss == "mse":
        return 2.0 * (f - y) / f.size
    if loss == "logistic":
        return -y * np.exp(-np.logaddexp(0.0, y * f)) / n
    if loss == "cross_entropy":
        p = np.exp(f - f.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(n), y.astype(np.int64)] -= 1.0
        return p / n
    raise ValueError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")


def objective(net: ShallowNet, X, y, loss: str, lam: float) -> float:
    """J = loss(f(X), y) + lam/2 (sum ||c_i||^2 + sum ||a_i||^2), in float64 from the net."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
    return LOSSES[loss](net, X, y) + weight_decay_penalty(net, lam)


# -- free neurons -----------------------------------------------------------------------
@dataclass(frozen=True)
class FreeNeurons:
    """Neurons whose contribution on the data is zero.

    ``dead``: preactivation <= tol on every sample; ``zero_output``: ||c_i|| <= tol (not
    dead); ``duplicates``: pairs (slot, keep) with (a_slot, b_slot) = s (a_keep, b_keep),
    s > 0 (within the angle tolerance): the slot's neuron merges into keep's; ``affine``: in
    a network with a linear part w, neurons affine on Q (b_i >= D ||a_i||_1), which fold
    into (w, e). ``exact_on_Q`` is aligned with ``slots``: True when freeing the slot
    leaves the realization unchanged on all of Q (dead on Q: b_i <= -D||a_i||_1, zero
    output, an exactly parallel merge, a fold), False when only on the data (dead on the
    samples but alive somewhere in Q) or up to the merge's angle.
    """

    dead: tuple[int, ...]
    zero_output: tuple[int, ...]
    duplicates: tuple[tuple[int, int], ...]
    exact_on_Q: tuple[bool, ...]
    affine: tuple[int, ...] = ()  # affine on Q, in a network with a linear part w

    @property
    def slots(self) -> tuple[int, ...]:
        dup = tuple(i for i, _ in self.duplicates)
        return self.dead + self.zero_output + dup + self.affine

    @property
    def count(self) -> int:
        return len(self.slots)

    @property
    def preferred(self) -> int | None:
        """The first slot exact on Q, else the first slot; None without a free neuron."""
        for slot, exact in zip(self.slots, self.exact_on_Q, strict=True):
            if exact:
                return slot
        return self.slots[0] if self.slots else None


def _collinear_pairs(v: np.ndarray, idx: np.ndarray, angle_tol: float) -> list[tuple[int, int]]:
    """Greedy (slot, keep) pairs among rows v[idx] within angle_tol of positively parallel:
    each row joins the first earlier row it is parallel to that is not itself a slot."""
    if idx.size < 2:
        return []
    same, _ = hyperplane_angles(v[idx, :-1], v[idx, -1])
    pairs, keeps = [], []
    for p in range(idx.size):
        partner = next((q for q in keeps if same[p, q] <= angle_tol), None)
        if partner is None:
            keeps.append(p)
        else:
            pairs.append((int(idx[p]), int(idx[partner])))
    return pairs


def free_neurons(
    net: ShallowNet, X, D: float, *, tol: float = 0.0, angle_tol: float = MERGE_ANGLE
) -> FreeNeurons:
    """The free neurons of ``net`` on samples X (n, d), and per slot whether freeing it is
    exact on Q = [-D, D]^d (see ``FreeNeurons``). A neuron with a_i = 0 and b_i <= tol is
    dead (on Q too)."""
    D = check_domain(D)
    z = net.preactivation(X)
    dead = np.all(z <= tol, axis=0)
    zero = (output_norms(net.c) <= tol) & ~dead
    # dead on Q: max_Q <a, x> + b = D ||a||_1 + b
    dead_q = D * np.abs(net.a).sum(axis=1) + net.b <= tol
    ab = np.column_stack([net.a, net.b])
    rest = np.flatnonzero(~dead & ~zero & np.any(ab != 0.0, axis=1))
    dups = _collinear_pairs(ab, rest, angle_tol)
    d_idx, z_idx = np.flatnonzero(dead), np.flatnonzero(zero)
    # a pair merges exactly only when exactly parallel; within angle_tol the merge moves
    # the realization a little, which the distance check must then measure
    unit = ab / np.maximum(np.linalg.norm(ab, axis=1, keepdims=True), 1e-300)
    merged = [bool(np.linalg.norm(unit[i] - unit[k]) <= EXACT_ANGLE) for i, k in dups]
    exact = [bool(dead_q[i]) for i in d_idx] + [True] * len(z_idx) + merged
    # with a trained linear part an affine-on-Q neuron folds into (w, e): a free slot too
    affine: list[int] = []
    if net.w is not None:
        on_q = np.flatnonzero(
            (net.b - D * np.abs(net.a).sum(axis=1) >= -tol) & ~dead & ~zero & ~dead_q
        )
        taken = {i for pair in dups for i in pair}
        affine = [int(i) for i in on_q if i not in taken]
    return FreeNeurons(
        tuple(int(i) for i in d_idx),
        tuple(int(i) for i in z_idx),
        tuple(dups),
        tuple(exact + [True] * len(affine)),
        tuple(affine),
    )


# -- the descent direction ------------------------------------------------------------
@dataclass(frozen=True)
class Descent:
    """rate = ||sum_k G_k rho(<u, x_k> - t)|| - lam at the best (u, t) found; v (m,) the
    unit vector against it (a sign +-1.0 for m = 1); bound "exact" (d = 1) or "lower"."""

    rate: float
    u: np.ndarray
    t: float
    v: float | np.ndarray
    bound: str


def _best_t(s: np.ndarray, G: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """max over t in [lo, hi] of ||h(t)||, h(t) = sum_k G_k rho(s_k - t), G (n, m); returns
    (value, t).

    h is affine in t between consecutive s_k, so its norm (convex there) peaks at a
    breakpoint s_k inside [lo, hi] or at lo or hi. With s sorted, h(t) = S1 - t S0 over the
    suffix {s_k > t} (S0 = sum G_k, S1 = sum G_k s_k): all candidates in O(n log n).
    """
    order = np.argsort(s)
    ss, Gs = s[order], G[order]
    zero = np.zeros((1, G.shape[1]))
    S0 = np.concatenate([np.cumsum(Gs[::-1], axis=0)[::-1], zero])
    S1 = np.concatenate([np.cumsum((Gs * ss[:, None])[::-1], axis=0)[::-1], zero])
    T = np.concatenate([[lo, hi], ss[(ss > lo) & (ss < hi)]])
    k = np.searchsorted(ss, T, side="right")  # first sample with s_k > t
    H = S1[k] - T[:, None] * S0[k]
    t = float(T[np.argmax(np.einsum("km,km->k", H, H))])
    # the value itself summed directly: the suffix differences cancel digits
    return float(np.linalg.norm(G.T @ np.maximum(s - t, 0.0))), t


def candidate_directions(X, G, n_directions: int = 256, seed: int = 0) -> np.ndarray:
    """Unit directions u (K, d) searched by ``descent_direction``: u = +-1 in d = 1 (all of
    them); in d >= 2 the +-coordinate axes, +-X^T G (per output; the best u at t = -D||u||_1
    when sum_k G_k = 0), ``n_directions`` seeded Gaussian directions and +-(x_k - x_l) for
    ``n_directions`` seeded random pairs of samples, each normalized (zero ones dropped)."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    if d == 1:
        return np.array([[1.0], [-1.0]])
    rng = np.random.default_rng(seed)
    G2 = np.asarray(G, dtype=np.float64).reshape(n, -1)
    k, l = rng.integers(0, n, (2, n_directions))
    U = np.vstack([np.eye(d), (X.T @ G2).T, rng.standard_normal((n_directions, d)), X[k] - X[l]])
    norm = np.linalg.norm(U, axis=1)
    U = U[norm > 0] / norm[norm > 0, None]
    return np.vstack([U, -U])


def descent_direction(
    G, X, lam: float, D: float, *, n_directions: int = 256, seed: int = 0
) -> Descent:
    """The best balanced neuron for a free slot: max over candidate unit u
    (``candidate_directions``) and t in [-D||u||_1, D||u||_1] (the kink in the closed cube)
    of ||sum_k G_k rho(<u, x_k> - t)|| - lam, each direction exact in t (``_best_t``).
    G (n,) or (n, m), X (n, d). Exact in d = 1, a lower bound in d >= 2."""
    D = check_domain(D)
    G = np.asarray(G, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    X = X[:, None] if X.ndim == 1 else X
    G2 = G.reshape(G.shape[0], -1)
    best = (-np.inf, 0.0, None)
    for u in candidate_directions(X, G2, n_directions, seed):
        r = D * np.abs(u).sum()
        value, t = _best_t(X @ u, G2, -r, r)
        if value > best[0]:
            best = (value, t, u)
    value, t, u = best
    h = G2.T @ np.maximum(X @ u - t, 0.0)
    # against h, so that the first-order change <G, v rho> is -||h|| (any v when h = 0)
    v = -h / value if value > 0 else np.eye(G2.shape[1])[0]
    v = float(np.sign(v[0]) or 1.0) if G.ndim == 1 else v
    return Descent(value - lam, u, t, v, "exact" if X.shape[1] == 1 else "lower")


def witness_network(
    net: ShallowNet, free: FreeNeurons, descent: Descent, g: float, slot: int | None = None
) -> ShallowNet:
    """Theta'(g): ``slot`` (default ``free.preferred``) freed (merged into its partner when
    it is a duplicate: the merged neuron balanced, ||c|| = ||a||, same realization) and
    replaced by (a, b, c) = sqrt(g) (u, -t, v). Width and parametrization unchanged."""
    slot = free.preferred if slot is None else slot
    if slot is None or slot not in free.slots:
        raise ValueError(f"slot {slot!r} is not a free neuron of this network")
    a, b, c = net.a.copy(), net.b.copy(), net.c.copy()
    w, e = (None if net.w is None else np.array(net.w, dtype=float)), np.array(net.e, dtype=float)
    if slot in free.affine:  # c rho(z) = c z on Q: into the linear part and the bias
        if c.ndim == 2:
            w, e = w + np.outer(c[slot], a[slot]), e + c[slot] * b[slot]
        else:
            w, e = w + c[slot] * a[slot], e + c[slot] * b[slot]
    keep = dict(free.duplicates).get(slot)
    if keep is not None:
        # (a_slot, b_slot) = s (a_keep, b_keep): c_s rho(z_s) + c_k rho(z_k) = gamma rho(z_k)
        ab = np.column_stack([a, b])
        s = np.linalg.norm(ab[slot]) / np.linalg.norm(ab[keep])
        gamma = s * c[slot] + c[keep]
        size, norm_a = float(np.linalg.norm(gamma)), float(np.linalg.norm(a[keep]))
        # rescale (a, b) by k and c by 1/k (realization kept) so that ||c|| = ||a||; a = 0
        # (a constant neuron) cannot be balanced and keeps k = 1
        k = np.sqrt(size / norm_a) if size > 0 and norm_a > 0 else 1.0
        a[keep], b[keep], c[keep] = (k * a[keep], k * b[keep], gamma / k) if size > 0 else (0, 0, 0)
    root = np.sqrt(g)
    a[slot], b[slot], c[slot] = root * descent.u, -root * descent.t, root * np.asarray(descent.v)
    return ShallowNet(a, b, c, e if e.ndim else float(e), w)


# -- verified witnesses ----------------------------------------------------------------
@dataclass(frozen=True)
class Witness:
    """The outcome of a witness search. ``witness`` is True iff a free neuron exists, the
    descent rate is positive and, for every g in the sizes, J(Theta'(g)) < J(Theta) and
    d(R Theta, R Theta'(g)) <= C0 g (1 + 1e-6) + 1e-15. ``C`` = max_g d(g) / g; ``C0`` the
    closed-form bound; ``j_drop`` the J(Theta) - J(Theta'(g)); ``distance_bound`` says how
    d was obtained ("exact", "closed form", or "lower" for a d >= 2 estimate)."""

    free_neurons: int
    descent_rate: float
    rate_bound: str
    witness: bool
    C: float
    C0: float
    u: np.ndarray
    t: float
    v: float | np.ndarray
    slot: int
    exact_on_Q: bool
    j_drop: tuple[float, ...]
    distance_bound: str

    def to_row(self) -> dict:
        """Flat JSON-ready summary (NaN where no free neuron: no rate, no C, no t)."""
        return {
            "free_neurons": int(self.free_neurons),
            "descent_rate": float(self.descent_rate),
            "rate_bound": self.rate_bound,
            "witness": bool(self.witness),
            "witness_C": float(self.C),
            "witness_t": float(self.t),
            "witness_u": [float(x) for x in np.ravel(self.u)],
            "witness_slot": int(self.slot),
        }


def _no_witness(d: int) -> Witness:
    nan = float("nan")
    return Witness(0, nan, "", False, nan, nan, np.full(d, nan), nan, nan, -1, False, (), "")


def find_witness(
    net: ShallowNet,
    X,
    y,
    loss: str,
    lam: float,
    D: float,
    *,
    sizes: tuple[float, ...] = SIZES,
    n_directions: int = 256,
    seed: int = 0,
) -> Witness:
    """Search and verify a claim-2 witness at the end point ``net`` (see ``Witness``).

    d_W: ``sobolev_distance`` in d = 1 (exact, independent of the construction); in d >= 2
    the closed form C0 g when the slot is exact on Q (the difference is then exactly
    g v rho(<u, x> - t)), else ``sobolev_distance``'s lower-bound estimate (labelled).
    C0 = ||v rho(<u, x> - t)||_{W^{1,inf}(Q)} = max(D||u||_1 - t, max_j |u_j|).
    """
    D = check_domain(D)
    X = as_points(X, net.dim)
    free = free_neurons(net, X, D)
    if free.count == 0:
        return _no_witness(net.dim)
    desc = descent_direction(
        loss_gradient(net(X), y, loss), X, lam, D, n_directions=n_directions, seed=seed
    )
    slot = free.preferred
    exact = free.exact_on_Q[free.slots.index(slot)]
    c0 = float(max(D * np.abs(desc.u).sum() - desc.t, np.abs(desc.u).max(), 0.0))
    j0 = objective(net, X, y, loss, lam)
    drops, dists, bound = [], [], "exact"
    for g in sizes:
        moved = witness_network(net, free, desc, g, slot)
        drops.append(j0 - objective(moved, X, y, loss, lam))
        if net.dim >= 2 and exact:
            dists.append(c0 * g)
            bound = "closed form"
        else:
            dist = sobolev_distance(net, moved, D)
            dists.append(float(dist))
            bound = dist.bound
    # a lower-bound estimate of d_W below C0 g proves nothing: such a slot never verifies
    ok = (
        bound != "lower"
        and all(dj > 0 for dj in drops)
        and all(dw <= c0 * g * (1 + 1e-6) + 1e-15 for dw, g in zip(dists, sizes, strict=True))
    )
    C = max(dw / g for dw, g in zip(dists, sizes, strict=True))
    return Witness(
        free.count, desc.rate, desc.bound, bool(desc.rate > 0 and ok), C, c0,
        desc.u, desc.t, desc.v, int(slot), bool(exact), tuple(drops), bound,
    )  # fmt: skip


def find_gaussian_witness(
    W,
    V,
    *,
    sizes: tuple[float, ...] = SIZES,
    n_directions: int = 256,
    seed: int = 0,
    tol: float = 0.0,
    angle_tol: float = MERGE_ANGLE,
) -> Witness:
    """Claim 2 for the Gaussian teacher-student model (student rows W (N, d), teacher V
    (k, d), x ~ N(0, I), output weights 1, no biases, L = ``gaussian_population_loss``).

    Free rows: w_i with ||w_i|| <= tol, and positively collinear pairs (rho(<w1,x>) +
    rho(<w2,x>) = rho(<w1 + w2, x>): the slot merges into its partner). The output weight is
    fixed at +1, so the slot takes g rho(<u, x>) = rho(<g u, x>), and L changes at the rate
    sum_i K(w_i, u) - sum_j K(v_j, u) (K ``arccos_kernel``): one-sided, only a negative
    value descends. rate = max_u (sum_j K(v_j, u) - sum_i K(w_i, u)) over candidate unit u
    (normalized teacher rows, normalized v_j - w_i, ``n_directions`` seeded Gaussian
    directions): a lower bound. Verified when L(W'(g)) < L(W) for every g. There is no cube:
    the distance is the population L2 norm, here exactly g sqrt(K(u, u)) = g / sqrt(2) for a
    zero-row slot (C = C0 = 1/sqrt(2)); a merge is exact up to ``angle_tol``.
    """
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    d, size = W.shape[1], np.linalg.norm(W, axis=1)
    zero = np.flatnonzero(size <= tol)
    # _collinear_pairs reads a row as (a, b) = (w[:-1], w[-1]): the angle between the w_i
    dups = _collinear_pairs(W, np.flatnonzero(size > tol), angle_tol)
    slots = [int(i) for i in zero] + [i for i, _ in dups]
    if not slots:
        return _no_witness(d)
    rng = np.random.default_rng(seed)
    U = np.vstack([V, (V[:, None, :] - W[None, :, :]).reshape(-1, d),
                   rng.standard_normal((n_directions, d))])  # fmt: skip
    norm = np.linalg.norm(U, axis=1)
    U = U[norm > 0] / norm[norm > 0, None]
    phi = arccos_kernel(V, U).sum(axis=0) - arccos_kernel(W, U).sum(axis=0)
    best = int(np.argmax(phi))
    u, rate = U[best], float(phi[best])
    slot = slots[0]  # zero rows first: exact
    keep = dict(dups).get(slot)
    l0 = gaussian_population_loss(W, V)
    drops = []
    for g in sizes:
        moved = W.copy()
        if keep is not None:
            moved[keep] = W[keep] + W[slot]
        moved[slot] = g * u
        drops.append(l0 - gaussian_population_loss(moved, V))
    c0 = float(np.sqrt(arccos_kernel(u, u)[0, 0]))
    ok = rate > 0 and all(dj > 0 for dj in drops)
    return Witness(
        len(slots), rate, "lower", bool(ok), c0, c0, u, 0.0, 1.0, slot, True,
        tuple(drops), "exact (population L2 norm, closed form)",
    )  # fmt: skip
