"""Random networks for tests: generic ones, with planted degeneracies, and
re-parametrizations that keep the realization (built by hand, not by the library)."""

from __future__ import annotations

import numpy as np

from realspace import ShallowNet


def random_net(rng, width, d, D=1.0, restricted=False):
    """Generic network whose kinks mostly meet the cube."""
    a = rng.standard_normal((width, d))
    p = rng.uniform(-D, D, (width, d))
    b = -(a * p).sum(axis=1) + 0.1 * rng.standard_normal(width)
    c = rng.standard_normal(width)
    w = rng.standard_normal(d) if restricted else None
    return ShallowNet(a, b, c, rng.standard_normal(), w)


def plant_degenerate(rng, net, D=1.0):
    """Append dead, affine-on-Q, zero, duplicated and opposite neurons (the realization changes
    by what the planted neurons add; the test compares against the planted network itself)."""
    a, b, c = [net.a], [net.b], [net.c]
    d = net.dim
    kinds = rng.choice(
        ["dead", "affine", "zero", "const", "dup", "opp", "edge"], size=rng.integers(1, 6)
    )
    for kind in kinds:
        ai = rng.standard_normal(d)
        reach = D * np.abs(ai).sum()
        i = rng.integers(net.width) if net.width else None
        if kind == "dead":
            bi = -reach - abs(rng.standard_normal())
        elif kind == "affine":
            bi = reach + abs(rng.standard_normal())
        elif kind == "edge":  # kink exactly on the boundary of the cube
            bi = reach * rng.choice([-1.0, 1.0])
        elif kind == "zero":
            ai, bi = np.zeros(d), 0.0
        elif kind == "const":
            ai, bi = np.zeros(d), rng.standard_normal()
        elif i is None:
            continue
        elif kind == "dup":
            s = rng.uniform(0.2, 5.0)
            ai, bi = s * net.a[i], s * net.b[i]
        else:  # opposite direction of an existing neuron
            s = rng.uniform(0.2, 5.0)
            ai, bi = -s * net.a[i], -s * net.b[i]
        a.append(ai[None])
        b.append([bi])
        c.append([0.0 if kind == "zero" else rng.standard_normal()])
    return ShallowNet(np.vstack(a), np.concatenate(b), np.concatenate(c), net.e, net.w)


def reparametrize(rng, net, D=1.0):
    """Same realization on [-D, D]^d, different parameters: permute, rescale each neuron
    positively, split one neuron in two collinear ones, add dead neurons, add an opposite
    pair with its affine correction, flip one neuron with its affine correction."""
    d = net.dim
    a, b, c = net.a.copy(), net.b.copy(), net.c.copy()
    w, e = net.linear.copy(), net.e
    s = rng.uniform(0.2, 5.0, net.width)
    a, b, c = s[:, None] * a, s * b, c / s
    if net.width:
        i = rng.integers(net.width)
        lam, t = rng.uniform(0.2, 0.8), rng.uniform(0.5, 2.0)
        a = np.vstack([a, t * a[i]])
        b = np.append(b, t * b[i])
        c = np.append(c, c[i] * (1 - lam) / t)
        c[i] *= lam
        j = rng.integers(net.width)  # flip: c rho(z) = c rho(-z) + c z
        w += c[j] * a[j]
        e += c[j] * b[j]
        a[j], b[j] = -a[j], -b[j]
    for _ in range(2):  # dead neurons
        ai = rng.standard_normal(d)
        a = np.vstack([a, ai])
        b = np.append(b, -D * np.abs(ai).sum() - 0.5)
        c = np.append(c, rng.standard_normal())
    ai, bi, ci = rng.standard_normal(d), rng.uniform(-0.3, 0.3), rng.standard_normal()
    # ci rho(z) - ci rho(-z) = ci z: cancel it in the affine part.
    a = np.vstack([a, ai, -ai])
    b = np.append(b, [bi, -bi])
    c = np.append(c, [ci, -ci])
    w -= ci * ai
    e -= ci * bi
    perm = rng.permutation(len(c))
    return ShallowNet(a[perm], b[perm], c[perm], e, w)


STACK_KINDS = (
    "generic",
    "generic",
    "generic",
    "dead",  # kink beyond -D ||a||_1 (or exactly on it)
    "affine",  # beyond +D ||a||_1 (or on it)
    "edge",  # within the tolerance of the boundary, either side of it
    "zero",  # all-zero padding
    "const",  # a = 0
    "a0c0",  # a = 0, c = 0: a live neuron with (a, b) = (0, b)
    "c0",  # c = 0
    "origin",  # kink through the origin (b = +-0 or +-1e-12), a_1 = 0 or +-1e-12 too
    "tiny",  # decayed to 1e-90 .. 1e-170
    "dup",  # a multiple of an earlier neuron (merged), or within 1e-12 of one
    "opp",  # a negative multiple of an earlier neuron
)


def degenerate_stack(rng, M, N, d, D=1.0, kinds=STACK_KINDS):
    """M networks of width N on [-D, D]^d stacked as a (M, N, d), b (M, N), c (M, N), e (M,),
    w (M, d), each neuron of a kind drawn from ``kinds``; half the stacks rounded through
    float32 (as trained end points are), half with w = 0."""
    a = rng.standard_normal((M, N, d))
    b = -(a * rng.uniform(-D, D, (M, N, d))).sum(axis=-1) + 0.1 * rng.standard_normal((M, N))
    c = rng.standard_normal((M, N))
    for m in range(M):
        for i in range(N):
            kind = kinds[rng.integers(len(kinds))]
            reach = D * np.abs(a[m, i]).sum()
            if kind == "dead":
                b[m, i] = -reach - abs(rng.standard_normal()) * rng.integers(2)
            elif kind == "affine":
                b[m, i] = reach + abs(rng.standard_normal()) * rng.integers(2)
            elif kind == "edge":
                b[m, i] = reach * rng.choice([-1.0, 1.0]) * (1 - rng.choice([0, 1e-10, 2e-9]))
            elif kind == "zero":
                a[m, i], b[m, i], c[m, i] = 0.0, 0.0, 0.0
            elif kind in ("const", "a0c0"):
                a[m, i] = 0.0
                c[m, i] = 0.0 if kind == "a0c0" else c[m, i]
            elif kind == "c0":
                c[m, i] = 0.0
            elif kind == "origin":  # in d >= 2, half of them with a first entry of 0 or 1e-12
                b[m, i] = rng.choice([0.0, -0.0, 1e-12, -1e-12])
                if d > 1 and rng.random() < 0.5:
                    a[m, i, 0] = rng.choice([0.0, 1e-12, -1e-12])
            elif kind == "tiny":
                s = rng.choice([1e-90, 1e-160, 1e-170])
                a[m, i], b[m, i], c[m, i] = s * a[m, i], s * b[m, i], s * c[m, i]
            elif kind in ("dup", "opp") and i > 0:
                j = rng.integers(i)
                s = rng.uniform(0.2, 5.0) if rng.random() < 0.7 else 1.0 + 1e-12
                s = s if kind == "dup" else -s
                a[m, i], b[m, i] = s * a[m, j], s * b[m, j]
    if rng.random() < 0.5:
        a, b, c = (x.astype(np.float32).astype(np.float64) for x in (a, b, c))
    w = rng.standard_normal((M, d)) if rng.random() < 0.5 else np.zeros((M, d))
    return a, b, c, rng.standard_normal(M), w


def teacher(rng, width, D=1.0, linear=False):
    """(a, b, c, e, w) of a width-``width`` network fitted to sin on [-D, D] (least squares
    on 200 points, kinks drawn in the cube): what the networks of one cell are trained to."""
    t = np.sort(rng.uniform(-D, D, width))
    a = rng.choice([-1.0, 1.0], width) * rng.uniform(0.5, 2.0, width)
    b = -a * t
    x = np.linspace(-D, D, 200)
    cols = [np.maximum(np.outer(x, a) + b, 0.0), np.ones((x.size, 1))]
    sol = np.linalg.lstsq(np.hstack(cols + [x[:, None]] * linear), np.sin(x), rcond=None)[0]
    return a, b, sol[:width], sol[width], sol[width + 1 : width + 2] if linear else None


def teacher_cell(
    rng, n, width, D=1.0, *, sigma=(1e-5, 1e-2), far=0.02, copies=0.0, linear=False, move=True
):
    """End points of one cell as training leaves them, in d = 1: the teacher's neurons
    permuted, each parameter perturbed by a relative sigma drawn log-uniform in ``sigma``
    per network (seeds converge to different precisions; ``move`` False keeps a and b,
    hence the kinks); a share ``far`` of unrelated networks (other minima) and a share
    ``copies`` of exact copies of earlier networks."""
    a, b, c, e, w = teacher(rng, width, D, linear)
    nets = []
    for _ in range(n):
        u = rng.random()
        if u < far:
            nets.append(random_net(rng, width, 1, D, restricted=linear))
            continue
        if u < far + copies and nets:
            nets.append(nets[rng.integers(len(nets))])
            continue
        s = np.exp(rng.uniform(*np.log(sigma)))
        perm = rng.permutation(width)
        da, db = (s * rng.standard_normal(width) for _ in range(2)) if move else (0.0, 0.0)
        nets.append(
            ShallowNet(
                (a * (1 + da))[perm, None],
                (b + db)[perm],
                (c * (1 + s * rng.standard_normal(width)))[perm],
                e + s * rng.standard_normal(),
                None if w is None else w + s * rng.standard_normal(1),
            )
        )
    return nets
