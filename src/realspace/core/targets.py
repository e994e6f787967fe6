"""Targets and losses: smooth functions on the cube, random teachers, the Gaussian
teacher-student population loss in closed form, the weight-decay penalty, and the
classification losses and scores (binary logistic; multiclass cross-entropy for m >= 2
outputs).

The math: docs/science.md#targets-and-losses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .canonical import canonical_form
from .nets import ShallowNet, as_points, check_domain

__all__ = [
    "TARGETS",
    "target_function",
    "sample_points",
    "random_teacher",
    "arccos_kernel",
    "gaussian_population_loss",
    "gaussian_population_loss_grad",
    "weight_decay_penalty",
    "mse",
    "logistic_loss",
    "cross_entropy_loss",
    "class_margins",
    "path_norm",
    "classification_scores",
    "spirals",
    "gaussian_mixture",
    "flip_labels",
]


def _sin(x, D, freq=1.0):
    return np.sin(freq * np.pi * x.sum(axis=1) / D)


def _abs(x, D):
    return np.abs(x).sum(axis=1)


def _square(x, D):
    return (x**2).sum(axis=1)


def _bump(x, D, width=0.5):
    return np.exp(-((x / (width * D)) ** 2).sum(axis=1) / 2.0)


# name -> f(x, D, **params); x has shape (n, d), the result (n,).
TARGETS: dict[str, Callable[..., np.ndarray]] = {
    "sin": _sin,  # sin(freq pi sum_j x_j / D)
    "abs": _abs,  # sum_j |x_j|: realizable by 2d neurons
    "square": _square,  # sum_j x_j^2
    "bump": _bump,  # exp(-|x|^2 / (2 (width D)^2))
}


def target_function(name: str, D: float, **params) -> Callable[[np.ndarray], np.ndarray]:
    """The named smooth target as a function of points (n, d) -> (n,)."""
    D = check_domain(D)
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(sorted(TARGETS))}")
    fn = TARGETS[name]

    def target(x):
        x = np.asarray(x, dtype=np.float64)
        return fn(as_points(x, x.shape[1] if x.ndim == 2 else 1), D, **params)

    return target


def sample_points(
    n: int, d: int, D: float, kind: str = "uniform", rng: np.random.Generator | None = None
) -> np.ndarray:
    """Points in [-D, D]^d, shape (n, d).

    ``kind="grid"`` gives a tensor grid with round(n^(1/d)) points per axis
    (endpoints included; the count may differ from n); ``"uniform"`` samples
    uniformly with ``rng``.
    """
    D = check_domain(D)
    if n < 1 or d < 1:
        raise ValueError(f"need n >= 1 points and d >= 1, got n={n}, d={d}")
    if kind == "grid":
        m = max(2, int(round(n ** (1.0 / d))))
        axis = np.linspace(-D, D, m)
        return np.stack(np.meshgrid(*[axis] * d, indexing="ij"), -1).reshape(-1, d)
    if kind == "uniform":
        rng = np.random.default_rng() if rng is None else rng
        return rng.uniform(-D, D, (n, d))
    raise ValueError(f"unknown sampling kind {kind!r}; use 'grid' or 'uniform'")


def random_teacher(
    k: int,
    d: int,
    D: float,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.5, 1.5),
    outputs: int = 1,
) -> ShallowNet:
    """A random width-k teacher in canonical form.

    Each neuron's kink hyperplane passes through a uniform point p of the cube with
    a uniform direction a^, so it meets the cube; |gamma| is uniform in ``scale`` with
    a random sign. The network is built with w = 0, so its realization is reachable
    by a width-k student in either parametrization (the global optimum is 0 for
    student width >= k); it is returned in canonical form (whose w may be nonzero).

    With ``outputs`` = m >= 2 each gamma_i is a vector of R^m of norm uniform in ``scale``
    and uniform direction, and e is uniform in [-1, 1]^m. (The scalar draws are made
    first and in the same order, so m = 1 gives the teacher it always gave.)
    """
    D = check_domain(D)
    if k < 1:
        raise ValueError(f"teacher width must be >= 1, got {k}")
    if outputs < 1:
        raise ValueError(f"a teacher needs outputs >= 1, got {outputs}")
    a_hat = rng.standard_normal((k, d))
    a_hat /= np.linalg.norm(a_hat, axis=1, keepdims=True)
    p = rng.uniform(-D, D, (k, d))
    b_hat = -(a_hat * p).sum(axis=1)
    gamma = rng.uniform(*scale, k) * rng.choice([-1.0, 1.0], k)
    t = np.sqrt(np.abs(gamma))
    if outputs == 1:
        raw = ShallowNet(t[:, None] * a_hat, t * b_hat, np.sign(gamma) * t, rng.uniform(-1, 1))
        return canonical_form(raw, D)
    u = rng.standard_normal((k, outputs))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    e = rng.uniform(-1, 1, outputs)
    raw = ShallowNet(t[:, None] * a_hat, t * b_hat, t[:, None] * u, e)
    return canonical_form(raw, D)


# ---------------------------------------------------------------------------
# Classification data in the plane (labels are class indices 0..m-1)
# ---------------------------------------------------------------------------
def _balanced_labels(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % m)


def spirals(
    n: int,
    m: int,
    D: float,
    rng: np.random.Generator,
    turns: float = 1.5,
    jitter: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """m interleaved spirals in [-D, D]^2 (m = 2: the two-spirals problem).

    Class k's points: s ~ U(0, 1), angle 2 pi (turns s + k / m), radius 0.9 D s, plus
    N(0, (jitter D)^2 I) noise, clipped to the square. Classes are balanced (n // m or
    one more each). Returns x (n, 2) and labels (n,) in {0, ..., m - 1} as integers.
    """
    D = check_domain(D)
    label = _balanced_labels(n, m, rng)
    s = rng.uniform(0.0, 1.0, n)
    angle = 2.0 * np.pi * (turns * s + label / m)
    x = 0.9 * D * s[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    x += jitter * D * rng.standard_normal((n, 2))
    return np.clip(x, -D, D), label


def gaussian_mixture(
    n: int, m: int, D: float, rng: np.random.Generator, spread: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """m Gaussian classes in [-D, D]^2: means D/2 (cos, sin)(2 pi k / m), covariance
    (spread D)^2 I, points clipped to the square; classes balanced. Returns x (n, 2) and
    labels (n,) in {0, ..., m - 1} as integers."""
    D = check_domain(D)
    label = _balanced_labels(n, m, rng)
    angle = 2.0 * np.pi * label / m
    means = 0.5 * D * np.column_stack([np.cos(angle), np.sin(angle)])
    x = means + spread * D * rng.standard_normal((n, 2))
    return np.clip(x, -D, D), label


def flip_labels(label: np.ndarray, m: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Label noise: each label is replaced, with probability ``noise``, by one of the other
    m - 1 classes drawn uniformly (labels are class indices 0..m-1)."""
    flip = rng.uniform(size=label.shape) < noise
    shift = rng.integers(1, m, size=label.shape)
    return np.where(flip, (label + shift) % m, label)


# ---------------------------------------------------------------------------
# Gaussian teacher-student, bias-free, output weights fixed to 1
# ---------------------------------------------------------------------------
def _angles(U: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nu = np.linalg.norm(U, axis=1)
    nv = np.linalg.norm(V, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        uh = np.where(nu[:, None] > 0, U / nu[:, None], 0.0)
        vh = np.where(nv[:, None] > 0, V / nv[:, None], 0.0)
    # t = 2 atan2(|u^ - v^|, |u^ + v^|): accurate for all angles, unlike arccos.
    diff = np.linalg.norm(uh[:, None, :] - vh[None, :, :], axis=2)
    summ = np.linalg.norm(uh[:, None, :] + vh[None, :, :], axis=2)
    return 2.0 * np.arctan2(diff, summ), nu, nv


def arccos_kernel(U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """K[i, j] = E[rho(<u_i,x>) rho(<v_j,x>)], x ~ N(0, I), shape (n, k).

    K = |u| |v| (sin t + (pi - t) cos t) / (2 pi), t the angle between u and v.
    """
    t, nu, nv = _angles(np.atleast_2d(U), np.atleast_2d(V))
    return np.outer(nu, nv) * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2.0 * np.pi)


def _check_rows(W, V):
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    if W.ndim != 2 or V.ndim != 2 or W.shape[1] != V.shape[1]:
        raise ValueError(
            f"student W (n, d) and teacher V (k, d) must share d; got {W.shape}, {V.shape}"
        )
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(V))):
        raise ValueError("W or V contains NaN or infinite entries")
    return W, V


def gaussian_population_loss(W, V) -> float:
    """L(W) = (1/2) E[(sum_i rho(<w_i,x>) - sum_j rho(<v_j,x>))^2], x ~ N(0, I_d).

    Exact: (1/2) (sum K(W, W) - 2 sum K(W, V) + sum K(V, V)) with the arc-cosine kernel.
    """
    W, V = _check_rows(W, V)
    val = arccos_kernel(W, W).sum() - 2.0 * arccos_kernel(W, V).sum() + arccos_kernel(V, V).sum()
    return float(0.5 * val)


def _kernel_grad(U, V):
    """G[i] = sum_j dK(u_i, v_j)/du_i = sum_j (|v_j| sin t u^_i + (pi - t) v_j) / (2 pi)."""
    t, nu, nv = _angles(U, V)
    with np.errstate(invalid="ignore", divide="ignore"):
        uh = np.where(nu[:, None] > 0, U / nu[:, None], 0.0)
    return ((np.sin(t) @ nv)[:, None] * uh + (np.pi - t) @ V) / (2.0 * np.pi)


def gaussian_population_loss_grad(W, V) -> np.ndarray:
    """dL/dW, shape (n, d): sum_i' G(w_i, w_i') - sum_j G(w_i, v_j) (see _kernel_grad)."""
    W, V = _check_rows(W, V)
    return _kernel_grad(W, W) - _kernel_grad(W, V)


# ---------------------------------------------------------------------------
# Empirical losses and the penalty
# ---------------------------------------------------------------------------
def mse(net: ShallowNet, x, y) -> float:
    """Mean squared error (1/n) sum_k (f(x_k) - y_k)^2."""
    y = np.asarray(y, dtype=np.float64)
    pred = net(x)
    if y.shape != pred.shape:
        raise ValueError(f"targets must have shape {pred.shape}, got {y.shape}")
    return float(np.mean((pred - y) ** 2))


def weight_decay_penalty(net: ShallowNet, lam: float) -> float:
    """lam * (1/2) sum_i (c_i^2 + ||a_i||^2) (||c_i||_2^2 with m >= 2 outputs); biases and
    the affine part are free.

    By AM-GM it is >= lam * sum_i |c_i| ||a_i||, with equality on balanced
    parameters; in d = 1 on the canonical form that is lam * TV(f') on (-D, D).
    """
    return float(lam * 0.5 * (np.sum(net.c**2) + np.sum(net.a**2)))


def logistic_loss(net: ShallowNet, x, y) -> float:
    """Binary logistic loss (1/n) sum_k log(1 + exp(-y_k f(x_k))), labels y_k in {-1, +1}
    (computed as logaddexp(0, -y f): no overflow, no loss of small values)."""
    y = np.asarray(y, dtype=np.float64)
    pred = net(x)
    if y.shape != pred.shape:
        raise ValueError(f"labels must have shape {pred.shape}, got {y.shape}")
    return float(np.mean(np.logaddexp(0.0, -y * pred)))


def _class_labels(y, n: int, m: int) -> np.ndarray:
    """Labels y (n,) as class indices 0..m-1 (integers or integral floats), or ValueError."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    label = y.astype(np.int64)
    if np.any(label != y) or np.any((label < 0) | (label >= m)):
        raise ValueError(f"labels must be class indices in 0..{m - 1}")
    return label


def _vector_outputs(net: ShallowNet, x) -> np.ndarray:
    pred = net(x)
    if pred.ndim != 2:
        raise ValueError("a multiclass score needs a network with m >= 2 outputs")
    return pred


def cross_entropy_loss(net: ShallowNet, x, y) -> float:
    """Multiclass cross-entropy (1/n) sum_k -log softmax(f(x_k))_{y_k} of a network with
    m >= 2 outputs on points x (n, d), labels y (n,) in {0, ..., m - 1}.

    Per point: (max_j f_j - f_y) + log1p(sum_{j != j*} exp(f_j - max f)), j* one argmax,
    which is -log softmax(f)_y without overflow and without rounding a small loss to 0.
    """
    f = _vector_outputs(net, x)
    n, m = f.shape
    label = _class_labels(y, n, m)
    rows = np.arange(n)
    top = f.argmax(axis=1)
    shifted = np.exp(f - f[rows, top][:, None])
    shifted[rows, top] = 0.0  # its exp(0) = 1 is the 1 of log1p
    per_point = (f[rows, top] - f[rows, label]) + np.log1p(shifted.sum(axis=1))
    return float(per_point.mean())


def path_norm(net: ShallowNet) -> float:
    """sum_i |c_i| ||(a_i, b_i)|| + ||(w, e)|| (w = 0 for an unrestricted network); for m >= 2
    outputs sum_i ||c_i||_2 ||(a_i, b_i)||_2 + ||(W, e)||_F.

    Invariant under the rescalings (a_i, b_i, c_i) -> (t a_i, t b_i, c_i / t), t > 0, and it
    bounds the realization: |f(x)| <= path_norm * ||(x, 1)|| (||f(x)||_2 for m >= 2, so
    |f_j(x) - f_k(x)| <= sqrt(2) path_norm ||(x, 1)||; docs/science.md#vector-outputs).
    """
    if net.outputs > 1:
        rows = np.sqrt(np.sum(net.a**2, axis=1) + net.b**2)
        affine = np.sqrt(np.sum(net.linear**2) + np.sum(net.e**2))
        return float(np.linalg.norm(net.c, axis=1) @ rows + affine)
    w = np.zeros(net.dim) if net.w is None else net.w
    neurons = np.abs(net.c) * np.sqrt(np.sum(net.a**2, axis=1) + net.b**2)
    return float(neurons.sum() + np.sqrt(np.sum(w**2) + net.e**2))


def class_margins(net: ShallowNet, x, y) -> np.ndarray:
    """f_{y_k}(x_k) - max_{j != y_k} f_j(x_k), shape (n,), for a network with m >= 2 outputs
    and labels y in {0, ..., m - 1}: positive iff x_k's class is the unique argmax."""
    f = _vector_outputs(net, x)
    n, m = f.shape
    label = _class_labels(y, n, m)
    rows = np.arange(n)
    own = f[rows, label]
    others = f.copy()
    others[rows, label] = -np.inf
    return own - others.max(axis=1)


def classification_scores(net: ShallowNet, x, y) -> tuple[float, float]:
    """(accuracy, normalized margin) of a classifier on points x (n, d).

    Scalar network (binary, sign f), labels y (n,) in {-1, +1}:
    accuracy = #{k: y_k f(x_k) > 0} / n (f = 0 counts as an error);
    margin = min_k y_k f(x_k) / path_norm(net), at most max_k ||(x_k, 1)||.

    Network with m >= 2 outputs (argmax f), labels y (n,) in {0, ..., m - 1}:
    accuracy = share of k whose class is the unique argmax of f(x_k) (ties are errors);
    margin = min_k (f_{y_k}(x_k) - max_{j != y_k} f_j(x_k)) / path_norm(net), at most
    sqrt(2) max_k ||(x_k, 1)||.

    Both margins are scale-free: multiplying the output (all c_i and (w, e)) by t > 0 or
    rescaling a neuron leaves them unchanged. NaN for the zero network (path norm 0).
    """
    if net.outputs > 1:
        m = class_margins(net, x, y)
    else:
        y = np.asarray(y, dtype=np.float64)
        m = y * net(x)
    norm = path_norm(net)
    margin = float(m.min() / norm) if norm > 0 else float("nan")
    return float(np.mean(m > 0)), margin
