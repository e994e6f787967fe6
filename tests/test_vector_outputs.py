"""Vector outputs (m >= 2): the multiclass loss and scores against direct float64 formulas,
the canonical form of vector networks against their realizations and Omega_N, and the
distances against brute force (dense grids per component, all permutations).
The math: docs/science.md, "Vector outputs"."""

import numpy as np
import pytest

from realspace.nets import ShallowNet
from realspace.targets import (
    classification_scores,
    cross_entropy_loss,
    logistic_loss,
    path_norm,
)


def vector_net(rng, width, d, m, D=1.0, restricted=False):
    """A generic vector network whose kinks mostly meet the cube."""
    a = rng.standard_normal((width, d))
    p = rng.uniform(-D, D, (width, d))
    b = -(a * p).sum(axis=1) + 0.1 * rng.standard_normal(width)
    c = rng.standard_normal((width, m))
    w = rng.standard_normal((m, d)) if restricted else None
    return ShallowNet(a, b, c, rng.standard_normal(m), w)


def outputs_by_hand(net, x):
    """f(x) (n, m) summed neuron by neuron, independent of ShallowNet.__call__."""
    f = np.tile(net.e, (len(x), 1)) + x @ net.linear.T
    for i in range(net.width):
        f += np.maximum(x @ net.a[i] + net.b[i], 0.0)[:, None] * net.c[i][None, :]
    return f


# ---------------------------------------------------------------------------
# Loss and scores
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("restricted", [False, True])
def test_cross_entropy_equals_minus_log_softmax(restricted):
    rng = np.random.default_rng(1)
    for m in (2, 3, 5):
        net = vector_net(rng, 6, 2, m, restricted=restricted)
        x = rng.uniform(-1, 1, (50, 2))
        y = rng.integers(0, m, 50)
        f = outputs_by_hand(net, x)
        direct = -np.log(np.exp(f[np.arange(50), y]) / np.exp(f).sum(axis=1)).mean()
        assert cross_entropy_loss(net, x, y) == pytest.approx(direct, rel=1e-13)
        # class indices as floats (as the data of a run hold them) give the same loss
        assert cross_entropy_loss(net, x, y.astype(float)) == cross_entropy_loss(net, x, y)


def test_cross_entropy_of_zero_and_g_is_the_logistic_loss_of_g():
    """softmax CE with logits (0, g) and label 1 is log(1 + exp(-g)); label 0 is
    log(1 + exp(g)): the logistic loss with labels +1 and -1."""
    rng = np.random.default_rng(2)
    for scale in (1.0, 50.0, 800.0):  # large logits: no overflow, small losses kept
        g = ShallowNet(
            rng.standard_normal((4, 2)),
            rng.standard_normal(4),
            scale * rng.standard_normal(4),
            scale * 0.3,
            scale * rng.standard_normal(2),
        )
        pair = ShallowNet(
            g.a,
            g.b,
            np.column_stack([np.zeros(4), g.c]),
            [0.0, g.e],
            np.vstack([np.zeros(2), g.w]),
        )
        x = rng.uniform(-1, 1, (40, 2))
        label = rng.integers(0, 2, 40)
        sign = np.where(label == 1, 1.0, -1.0)
        assert cross_entropy_loss(pair, x, label) == pytest.approx(
            logistic_loss(g, x, sign), rel=1e-12
        )


def test_cross_entropy_keeps_a_loss_below_rounding():
    net = ShallowNet(np.zeros((1, 1)), [0.0], [[0.0, 0.0]], [0.0, 40.0])
    # -log softmax = log(1 + exp(-40)) = 4.248e-18, which 1 + tiny would round away
    assert cross_entropy_loss(net, np.zeros((1, 1)), [1]) == pytest.approx(np.exp(-40.0), rel=1e-12)


def test_labels_outside_the_classes_are_refused():
    net = vector_net(np.random.default_rng(0), 3, 1, 3)
    x = np.zeros((2, 1))
    for bad in ([0, 3], [-1, 0], [0.5, 1], [0, 1, 2]):
        with pytest.raises(ValueError):
            cross_entropy_loss(net, x, bad)
        with pytest.raises(ValueError):
            classification_scores(net, x, bad)


@pytest.mark.parametrize("restricted", [False, True])
def test_multiclass_scores_against_direct_sums(restricted):
    rng = np.random.default_rng(3)
    N, d, m, n = 5, 2, 4, 60
    for _ in range(5):
        net = vector_net(rng, N, d, m, restricted=restricted)
        x = rng.uniform(-1, 1, (n, d))
        f = outputs_by_hand(net, x)
        y = np.where(rng.uniform(size=n) < 0.7, f.argmax(axis=1), rng.integers(0, m, n))
        margins = [f[k, y[k]] - max(f[k, j] for j in range(m) if j != y[k]) for k in range(n)]
        norm = sum(
            np.linalg.norm(net.c[i]) * np.sqrt(net.a[i] @ net.a[i] + net.b[i] ** 2)
            for i in range(N)
        )
        norm += np.sqrt(np.sum(net.linear**2) + np.sum(net.e**2))
        assert path_norm(net) == pytest.approx(norm, rel=1e-13)
        acc, margin = classification_scores(net, x, y)
        assert acc == np.mean([f[k].argmax() == y[k] for k in range(n)])
        assert margin == pytest.approx(min(margins) / norm, rel=1e-12)
        # the bound |f_j - f_k| <= sqrt(2) path_norm ||(x, 1)||, pair by pair
        u = np.sqrt((x**2).sum(axis=1) + 1.0)
        spread = (f[:, :, None] - f[:, None, :]).max(axis=(1, 2))
        assert np.all(spread <= np.sqrt(2) * norm * u * (1 + 1e-12))
        # scale-free: the output times 3, one neuron rescaled by 5 and another by 1/7
        a2, b2, c2 = net.a.copy(), net.b.copy(), 3 * net.c
        a2[0], b2[0], c2[0] = 5 * a2[0], 5 * b2[0], c2[0] / 5
        a2[1], b2[1], c2[1] = a2[1] / 7, b2[1] / 7, c2[1] * 7
        w2 = 3 * net.w if restricted else None
        scaled = ShallowNet(a2, b2, c2, 3 * net.e, w2)
        acc2, margin2 = classification_scores(scaled, x, y)
        assert acc2 == acc and margin2 == pytest.approx(margin, rel=1e-12)
        assert path_norm(scaled) == pytest.approx(3 * norm, rel=1e-13)


def test_ties_count_as_errors():
    net = ShallowNet(np.ones((1, 1)), [0.0], [[1.0, 1.0, 0.0]], [0.0, 0.0, -1.0])
    x = np.array([[0.5], [-0.5]])  # f = (0.5, 0.5, -1) and (0, 0, -1): both tied
    acc, margin = classification_scores(net, x, [0, 1])
    assert acc == 0.0 and margin == 0.0
