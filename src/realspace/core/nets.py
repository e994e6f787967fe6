"""Shallow ReLU networks on the cube Q = [-D, D]^d and their realizations.

A network of width N computes

    f(x) = sum_i c_i rho(<a_i, x> + b_i) + <w, x> + e,      rho(z) = max(z, 0),

with a of shape (N, d), b and c of shape (N,), and an affine part (w, e).
The *unrestricted* parametrization fixes w = 0 (``w=None``); the *restricted*
parametrization carries a free w of shape (d,), and so does an unrestricted network with
a linear term (``RunSpec.linear_term``). Everything here is float64.

Vector outputs (m >= 2 classes of a classifier): c has shape (N, m), e shape (m,) and
the linear part W shape (m, d), so f(x) = sum_i c_i rho(<a_i, x> + b_i) + W x + e in R^m.
A scalar network (m = 1) keeps the shapes above; ``outputs`` says which.

The math: docs/science.md#networks-and-realizations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ShallowNet", "check_domain", "as_points"]


def check_domain(D: float) -> float:
    """Return the half-width D of the cube as a float, or raise ValueError."""
    D = float(D)
    if not np.isfinite(D) or D <= 0:
        raise ValueError(f"domain half-width D must be a finite positive number, got {D!r}")
    return D


def _finite_array(name: str, value, ndim: int) -> np.ndarray:
    arr = np.array(value, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if not np.isfinite(arr).all():  # the method: np.all's dispatch costs more than the check
        raise ValueError(f"{name} contains NaN or infinite entries")
    return arr


def as_points(x, d: int) -> np.ndarray:
    """Validate input points: shape (n, d) float64 (a 1-D array is accepted when d == 1)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1 and d == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"points must have shape (n, {d}), got {x.shape}")
    return x


@dataclass(frozen=True, eq=False)
class ShallowNet:
    """A shallow ReLU network ``sum_i c_i rho(<a_i,x> + b_i) + <w,x> + e``.

    Parameters
    ----------
    a : (N, d) input weights.
    b : (N,) biases.
    c : (N,) output weights, or (N, m) for m output components.
    e : output bias (a float, or (m,) with vector outputs).
    w : (d,) linear part of the restricted parametrization ((m, d) with vector outputs),
        or None for the unrestricted one (w = 0 fixed).
    """

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    e: float | np.ndarray = 0.0
    w: np.ndarray | None = None

    def __post_init__(self):
        a = _finite_array("a", self.a, 2)
        b = _finite_array("b", self.b, 1)
        c = np.array(self.c, dtype=np.float64)
        c = _finite_array("c", c, 2 if c.ndim == 2 else 1)
        n = a.shape[0]
        if b.shape != (n,) or c.shape[0] != n:
            raise ValueError(
                f"shape mismatch: a is {a.shape}, so b must be ({n},) and c ({n},) or "
                f"({n}, m); got b {b.shape}, c {c.shape}"
            )
        if a.shape[1] < 1:
            raise ValueError("a must have at least one input dimension (shape (N, d), d >= 1)")
        vector = c.ndim == 2
        if vector and c.shape[1] < 2:
            raise ValueError(f"vector outputs need m >= 2 columns of c, got c {c.shape}")
        if vector:
            e = _finite_array("e", np.broadcast_to(np.asarray(self.e, np.float64), c.shape[1:]), 1)
        else:
            e = float(np.asarray(self.e, dtype=np.float64))
            if not np.isfinite(e):
                raise ValueError("e is NaN or infinite")
        w = None
        if self.w is not None:
            shape = (c.shape[1], a.shape[1]) if vector else (a.shape[1],)
            w = _finite_array("w", self.w, len(shape))
            if w.shape != shape:
                raise ValueError(f"w must have shape {shape}, got {w.shape}")
        for arr in (a, b, c) + ((w,) if w is not None else ()) + ((e,) if vector else ()):
            arr.setflags(write=False)
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "c", c)
        object.__setattr__(self, "e", e)
        object.__setattr__(self, "w", w)

    @classmethod
    def unstack(cls, a, b, c, e, w=None) -> list[ShallowNet]:
        """The M networks of stacked parameters: a (M, N, d), b (M, N), c (M, N) or
        (M, N, m), e (M,) or (M, m), w (M, d) or (M, m, d), or None for w = 0.

        The same networks as ``ShallowNet(a[k], b[k], c[k], e[k], w[k])`` one by one, checked
        once for the stack: shapes as the constructor checks the first network, finiteness
        of every entry. Each network's arrays are read-only views of one float64 copy of
        the stack, so building thousands costs no per-network checks and copies.
        """
        stack = [np.array(x, dtype=np.float64) for x in (a, b, c, e)]
        if w is not None:
            stack.append(np.array(w, dtype=np.float64))
        M = len(stack[0])
        if any(len(x) != M for x in stack):
            raise ValueError(f"stacked parameters of unequal counts: {[len(x) for x in stack]}")
        if M:
            cls(*(x[0] for x in stack))  # raises as the constructor does
        for name, x in zip("abcew", stack, strict=False):
            if not np.isfinite(x).all():
                raise ValueError(f"{name} contains NaN or infinite entries")
            x.setflags(write=False)
        rows = zip(*stack[:3], stack[3].tolist() if stack[2].ndim == 2 else stack[3], strict=True)
        ws = stack[4] if w is not None else [None] * M
        nets = []
        for (ak, bk, ck, ek), wk in zip(rows, ws, strict=True):
            net = object.__new__(cls)
            net.__dict__.update(a=ak, b=bk, c=ck, e=ek, w=wk)  # frozen: past __setattr__
            nets.append(net)
        return nets

    # -- shape ---------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.a.shape[0]

    @property
    def dim(self) -> int:
        return self.a.shape[1]

    @property
    def outputs(self) -> int:
        """Output components m: 1 for a scalar network (c of shape (N,))."""
        return self.c.shape[1] if self.c.ndim == 2 else 1

    @property
    def restricted(self) -> bool:
        """True when the network carries a free linear part w (restricted parametrization)."""
        return self.w is not None

    @property
    def linear(self) -> np.ndarray:
        """The linear part w ((d,), or W (m, d)), zeros for the unrestricted parametrization."""
        if self.w is not None:
            return self.w
        return np.zeros((self.outputs, self.dim)) if self.c.ndim == 2 else np.zeros(self.dim)

    # -- realization ----------------------------------------------------------
    def preactivation(self, x) -> np.ndarray:
        """z_i(x) = <a_i, x> + b_i, shape (n, N)."""
        x = as_points(x, self.dim)
        return x @ self.a.T + self.b

    def __call__(self, x) -> np.ndarray:
        """Realization at points x of shape (n, d); returns shape (n,) ((n, m) with vector
        outputs)."""
        x = as_points(x, self.dim)
        z = x @ self.a.T + self.b
        return np.maximum(z, 0.0) @ self.c + x @ self.linear.T + self.e

    def gradient(self, x) -> np.ndarray:
        """Analytic gradient sum_i c_i a_i 1[z_i > 0] + w, shape (n, d) (the Jacobian
        (n, m, d) with vector outputs).

        On a kink (z_i = 0) the neuron counts as inactive; the realization is not
        differentiable there, and callers that need a one-sided slope evaluate off
        the kink.
        """
        x = as_points(x, self.dim)
        active = (x @ self.a.T + self.b) > 0.0
        if self.c.ndim == 2:
            return np.einsum("ki,im,id->kmd", active, self.c, self.a) + self.linear
        return (active * self.c) @ self.a + self.linear

    # -- parameters -----------------------------------------------------------
    def neurons(self) -> np.ndarray:
        """Per-neuron parameter rows (a_i, b_i, c_i), shape (N, d + 1 + m)."""
        return np.column_stack([self.a, self.b, self.c])

    def affine(self) -> np.ndarray:
        """The affine part (w, e) as one vector of shape (d + 1,) (row by row (W, e),
        shape (m (d + 1),), with vector outputs)."""
        if self.c.ndim == 2:
            return np.column_stack([self.linear, self.e]).ravel()
        return np.append(self.linear, self.e)

    def with_restricted(self) -> ShallowNet:
        """The same network in the restricted parametrization (w = 0 made explicit)."""
        return ShallowNet(self.a, self.b, self.c, self.e, self.linear.copy())

    def padded(self, width: int) -> ShallowNet:
        """Append all-zero neurons up to ``width`` (realization unchanged)."""
        extra = width - self.width
        if extra < 0:
            raise ValueError(f"cannot pad a width-{self.width} network to width {width}")
        return ShallowNet(
            np.vstack([self.a, np.zeros((extra, self.dim))]),
            np.concatenate([self.b, np.zeros(extra)]),
            np.concatenate([self.c, np.zeros((extra, *self.c.shape[1:]))]),
            self.e,
            self.w,
        )

    def __repr__(self) -> str:
        kind = "restricted" if self.restricted else "unrestricted"
        if self.c.ndim == 2:
            return f"ShallowNet(width={self.width}, d={self.dim}, m={self.outputs}, {kind})"
        return f"ShallowNet(width={self.width}, d={self.dim}, {kind}, e={self.e:.4g})"
