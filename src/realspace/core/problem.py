"""Data and initial parameters of a run, from its spec alone (float64 numpy).

Every random stream is seeded by (run seed, stream id), so a run draws the same
numbers whether it trains alone or beside thousands of others.

The math: docs/science.md#training.
"""

from __future__ import annotations

import functools

import numpy as np

from .nets import ShallowNet
from .spec import RunSpec
from .streams import streams
from .targets import (
    flip_labels,
    gaussian_mixture,
    random_teacher,
    sample_points,
    spirals,
    target_function,
)

__all__ = [
    "rng_for",
    "make_data",
    "init_params",
    "init_shard",
    "teacher_net",
    "teacher_rows",
    "orthonormal_rows",
    "target_on",
    "eval_grid",
    "network_from_params",
    "PARAM_NAMES",
]

PARAM_NAMES = ("a", "b", "c", "e", "w")
# independent random streams of one run (initialization, data, minibatch order,
# reseeding in restricted runs, the Lanczos start vector of its certificate)
STREAM_INIT, STREAM_DATA, STREAM_BATCH, STREAM_RESEED, STREAM_LANCZOS = 0, 1, 2, 3, 4


def rng_for(seed: int, stream: int, *extra: int) -> np.random.Generator:
    """The generator of one random stream of one run."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), stream, *map(int, extra)]))


def teacher_net(spec: RunSpec) -> ShallowNet:
    """The canonical random teacher of a "teacher" or "teacher_labels" target (depends on
    teacher_width, teacher_seed, d and D, and on n_classes = m >= 3: an m-output teacher).
    Read-only, and one object per teacher: every seed of a problem has the same."""
    m = spec.n_classes if spec.loss == "cross_entropy" else 1
    return _teacher(spec.teacher_width, spec.d, float(spec.D), spec.teacher_seed, m)


@functools.lru_cache(maxsize=256)
def _teacher(width: int, d: int, D: float, seed: int, m: int) -> ShallowNet:
    # drawn and put in canonical form once, not once per network (four fifths of making
    # a network's data on a teacher target)
    net = random_teacher(width, d, D, np.random.default_rng(seed), outputs=m)
    for v in (net.a, net.b, net.c, net.e, net.w):
        if isinstance(v, np.ndarray):
            v.flags.writeable = False
    return net


def teacher_rows(spec: RunSpec) -> np.ndarray:
    """Teacher rows V (k, d) of the Gaussian teacher-student problem, by ``spec.teacher_rows``:

    - ``gaussian``: i.i.d. N(0, I_d) rows from ``default_rng(teacher_seed)``;
    - ``orthogonal``: k <= d uniform (Haar) orthonormal rows (``orthonormal_rows``);
    - ``identity``: V = I_k (d = k; teacher_seed plays no part).
    """
    k, d = spec.teacher_width, spec.d
    rng = np.random.default_rng(spec.teacher_seed)
    if spec.teacher_rows == "identity":
        return np.eye(k, d)
    if spec.teacher_rows == "orthogonal":
        return orthonormal_rows(k, d, rng)
    return rng.standard_normal((k, d))


def orthonormal_rows(k: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """k <= d orthonormal rows in R^d (k, d), uniformly distributed (Haar).

    G (d, k) standard normal, G = Q R (reduced QR), V = (Q diag(sign R_jj))^T: the sign
    fix makes the factorization unique, so V is G's Gram-Schmidt orthonormalization, whose
    law is invariant under rotations of R^d (without it, numpy's sign convention biases it).
    """
    if not 1 <= k <= d:
        raise ValueError(f"need 1 <= k <= d orthonormal rows, got k={k}, d={d}")
    q, r = np.linalg.qr(rng.standard_normal((d, k)))
    return (q * np.sign(np.diag(r))).T


def make_data(
    spec: RunSpec, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Training inputs X (n, d) and targets y (n,) of a run on data (sorted by x when d = 1).

    ``rng``: the run's data stream ``rng_for(spec.seed, STREAM_DATA)`` where the caller
    has it already (a shard's streams are set up at once: ``core.streams``).

    Spirals and mixtures draw their points and label flips from ``teacher_seed``, not from
    the run's seed: one data set per problem.

    For a classification target y holds labels: in {-1, +1} (n_classes = 2, logistic loss)
    or class indices 0..m-1 as floats (cross-entropy). Label noise flips a label to another
    class with probability ``noise`` (``targets.flip_labels``); on values it is additive
    N(0, noise^2).
    """
    m = spec.n_classes
    # a spiral or mixture data set is the problem's, drawn from teacher_seed (the problem
    # seed) like a grid is fixed: every seed of a cell trains on it, so their objectives
    # compare and one convex reference serves them all
    own = spec.target in ("spirals", "mixture")
    if own or rng is None:
        rng = rng_for(spec.teacher_seed if own else spec.seed, STREAM_DATA)
    params = dict(spec.target_params)
    if own and spec.target == "spirals":
        x, label = spirals(spec.n_samples, m, spec.D, rng, **params)
    elif own:
        x, label = gaussian_mixture(spec.n_samples, m, spec.D, rng, **params)
    else:
        x = sample_points(spec.n_samples, spec.d, spec.D, spec.sampling, rng)
        y = target_on(spec, x)
        label = ((y > 0) if m == 2 else y).astype(np.int64) if spec.classification else None
    if spec.classification:
        if spec.noise:
            label = flip_labels(label, m, spec.noise, rng)
        y = np.where(label == 1, 1.0, -1.0) if m == 2 else label.astype(np.float64)
    elif spec.noise:
        y = y + spec.noise * rng.standard_normal(y.shape)
    if spec.d == 1:  # a data set is a set: keep it sorted, as the d = 1 objective needs
        order = np.argsort(x[:, 0], kind="stable")
        x, y = x[order], y[order]
    return x, y


def init_params(spec: RunSpec) -> dict[str, np.ndarray]:
    """Initial parameters {a (N, d), b (N,), c (N,), e (), w (d,)}; with m = spec.outputs
    >= 2 output components c (N, m), e (m,) and w (m, d).

    a_i ~ N(0, I/d) * init_scale; each kink passes through a uniform point of the
    cube (b_i = -<a_i, p_i>), so every neuron starts active on part of Q;
    c_i ~ N(0, I_m/N) * init_scale; e = 0, w = 0. Without biases b = 0; with fixed
    output weights c = 1 (the Gaussian teacher-student model).

    One network's row of ``init_shard``: a network starts where it starts in any shard.
    """
    return {k: np.asarray(v[0]) for k, v in init_shard([spec]).items()}


def init_shard(specs: list[RunSpec]) -> dict[str, np.ndarray]:
    """``init_params`` of each spec of one shape, stacked along a first axis of M: each
    network's draws from its own stream (a, then the kink points p, then c when drawn),
    the arithmetic done once for the shard."""
    s0, M = specs[0], len(specs)
    N, d, m = s0.width, s0.d, s0.outputs
    A, P = np.empty((M, N, d)), np.empty((M, N, d))
    C = np.ones((M, N, m) if m > 1 else (M, N))
    drawn = m > 1 or s0.train_output
    drawing = zip(specs, streams([s.seed for s in specs], STREAM_INIT), strict=True)
    for i, (spec, rng) in enumerate(drawing):
        A[i] = rng.standard_normal((N, d))
        P[i] = rng.uniform(-spec.D, spec.D, (N, d))
        if drawn:
            C[i] = rng.standard_normal(C.shape[1:])
    scale = np.array([spec.init_scale for spec in specs])
    a = A * scale[:, None, None] / np.sqrt(d)
    b = -(a * P).sum(axis=2) if s0.bias else np.zeros((M, N))
    if drawn:
        C = C * scale.reshape(-1, *[1] * (C.ndim - 1)) / np.sqrt(N)
    e = np.zeros((M, m) if m > 1 else (M,))
    w = np.zeros((M, m, d) if m > 1 else (M, d))
    return {"a": a, "b": b, "c": C, "e": e, "w": w}


def target_on(spec: RunSpec, x: np.ndarray) -> np.ndarray:
    """The noiseless target of a run on data at points ``x`` (n, d): values for MSE,
    labels sign(teacher(x)) in {-1, +1} for "teacher_labels" (a point on the teacher's
    zero set gets +1), or with n_classes = m >= 3 the class argmax_k teacher_k(x) in
    0..m-1 (ties to the lowest index). Spirals and mixtures have no target off their own
    points: NaN there."""
    if spec.target == "teacher":
        return teacher_net(spec)(x)
    if spec.target == "teacher_labels":
        f = teacher_net(spec)(x)
        if f.ndim == 2:
            return np.argmax(f, axis=1).astype(np.float64)
        return np.where(f >= 0, 1.0, -1.0)
    if spec.target in ("spirals", "mixture"):
        return np.full(len(x), np.nan)
    return target_function(spec.target, spec.D, **dict(spec.target_params))(x)


def eval_grid(d: int, D: float) -> np.ndarray | None:
    """Evaluation grid for the stored realization: 1001 points (d = 1), 101^2 (d = 2)."""
    if d == 1:
        return sample_points(1001, 1, D, "grid")
    if d == 2:
        return sample_points(101 * 101, 2, D, "grid")
    return None


def network_from_params(params: dict, restricted: bool) -> ShallowNet:
    """The ShallowNet of one run's parameter dict (vector outputs when c is (N, m)).

    ``restricted``: whether the network carries its linear part w, which is what
    ``spec.has_linear`` says (restricted runs, and unrestricted runs with ``linear_term``);
    otherwise w = 0 is fixed and the stored w is ignored (the plain unrestricted network).
    """
    e = params["e"]
    return ShallowNet(
        params["a"],
        params["b"],
        params["c"],
        np.asarray(e, dtype=np.float64) if np.ndim(e) else float(e),
        params["w"] if restricted else None,
    )
