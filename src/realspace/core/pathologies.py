"""The pathology families P0-P4 of inverse stability (d = 1).

Each family gives a network Gamma_n and a realizable g_n whose realizations
approach each other (d_W -> 0 or d_inf -> 0) while their parametrizations, aligned
neuron by neuron, stay far apart. The numbers below are for D = 2, the setting of
docs/science.md; the fixtures are defined for any D > 0.

====  ================================================  ===========  ===========
name  Gamma_n  vs  g_n                                   d_W          d_P >=
====  ================================================  ===========  ===========
P0    ramp of height 1/n vs n rho(x) - n rho(x - n^-2)  n - 1/n      see below
P1    (a=n, b=0, c=n^-2) vs (1/n) rho(-x)               2/n          n
P1b   (n^-1/2, 0, n^-1/2) vs (-n^-1/2, 0, n^-1/2)       2/n          2 n^-1/2
P2    2 rho(x) as two equal neurons vs + (1/n) rho(-x)  2/n          1
P3    dead (a=1, b=-2D, c=1) vs (1/n) rho(x)            2/n          2D
P4    x = rho(x) - rho(-x) vs x + (1/n) rho(x - D/2)    1/n          1/2
====  ================================================  ===========  ===========

P0 is the uniform-norm pathology, inside Omega_N: d_inf = 1/n - 1/n^3 <= 1/n while
every parametrization of g_n has a neuron with |c a| >= n/2. P1b is P1 balanced:
r_1/2 = sqrt(2) for every n, r_1 grows like sqrt(n). P0 and P1b are returned in the
restricted parametrization (explicit w = 0), the others in the unrestricted one.

The math: docs/science.md#pathologies.
"""

from __future__ import annotations

import numpy as np

from .nets import ShallowNet, check_domain

__all__ = ["pathology", "PATHOLOGIES"]

PATHOLOGIES = ("P0", "P1", "P1b", "P2", "P3", "P4")


def _net(a, b, c, restricted=False) -> ShallowNet:
    a = np.asarray(a, dtype=np.float64).reshape(-1, 1)
    return ShallowNet(
        a, np.asarray(b, float), np.asarray(c, float), 0.0, np.zeros(1) if restricted else None
    )


def pathology(name: str, n: float, D: float = 2.0) -> tuple[ShallowNet, ShallowNet]:
    """The pair (Gamma_n, g_n) of pathology ``name`` ("P0".."P4", or "P1b").

    Both networks have d = 1 and are aligned: neuron i of Gamma_n is matched with
    neuron i of g_n (the narrower one is padded with zero neurons by the distances).
    """
    D = check_domain(D)
    n = float(n)
    if not np.isfinite(n) or n <= 0:
        raise ValueError(f"pathology index n must be a finite positive number, got {n!r}")
    r = n**-0.5
    if name == "P0":
        s = np.sqrt(n)
        return (
            _net([r, r], [0.0, -r], [r, -r], restricted=True),
            _net([s, s], [0.0, -s / n**2], [s, -s], restricted=True),
        )
    if name == "P1":
        return _net([n], [0.0], [n**-2]), _net([-1.0], [0.0], [1.0 / n])
    if name == "P1b":
        return _net([r], [0.0], [r], restricted=True), _net([-r], [0.0], [r], restricted=True)
    if name == "P2":
        return _net([1.0, 1.0], [0.0, 0.0], [1.0, 1.0]), _net([1.0, -1.0], [0.0, 0.0], [2.0, 1 / n])
    if name == "P3":
        return _net([1.0], [-2.0 * D], [1.0]), _net([1.0], [0.0], [1.0 / n])
    if name == "P4":
        return (
            _net([1.0, -1.0], [0.0, 0.0], [1.0, -1.0]),
            _net([1.0, -1.0, 1.0], [0.0, 0.0, -D / 2], [1.0, -1.0, 1.0 / n]),
        )
    raise ValueError(f"unknown pathology {name!r}; known: {', '.join(PATHOLOGIES)}")
