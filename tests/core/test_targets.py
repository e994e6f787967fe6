import numpy as np
import pytest
from netgen import random_net

from realspace import (
    ShallowNet,
    arccos_kernel,
    canonical_form,
    gaussian_population_loss,
    gaussian_population_loss_grad,
    in_restricted_set,
    random_teacher,
    sample_points,
    target_function,
    weight_decay_penalty,
)
from realspace.core.distances import sup_norms_1d


@pytest.mark.parametrize("d, n, k", [(2, 3, 2), (5, 4, 4), (3, 1, 3)])
def test_gaussian_closed_form_matches_monte_carlo(d, n, k):
    rng = np.random.default_rng(d * 10 + n)
    W, V = rng.standard_normal((n, d)), rng.standard_normal((k, d))
    losses = []
    for _ in range(4):  # 4 x 500k samples, in chunks to keep memory small
        x = rng.standard_normal((500_000, d))
        diff = np.maximum(x @ W.T, 0).sum(1) - np.maximum(x @ V.T, 0).sum(1)
        losses.append(0.5 * diff**2)
    losses = np.concatenate(losses)
    mean, se = losses.mean(), losses.std(ddof=1) / np.sqrt(losses.size)
    assert abs(gaussian_population_loss(W, V) - mean) <= 4 * se


def test_arccos_kernel_special_angles():
    u = np.array([[2.0, 0.0]])
    # t = 0: E[rho(<u,x>)^2] = |u|^2 / 2; t = pi: 0; t = pi/2: |u||v| / (2 pi).
    assert arccos_kernel(u, u)[0, 0] == pytest.approx(2.0, rel=1e-15)
    assert arccos_kernel(u, -u)[0, 0] == pytest.approx(0.0, abs=1e-15)
    assert arccos_kernel(u, [[0.0, 3.0]])[0, 0] == pytest.approx(6 / (2 * np.pi), rel=1e-15)


def test_gaussian_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    for d, n, k in [(2, 3, 2), (4, 5, 3), (1, 2, 2)]:
        W, V = rng.standard_normal((n, d)), rng.standard_normal((k, d))
        grad = gaussian_population_loss_grad(W, V)
        h = 1e-6
        fd = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            E = np.zeros_like(W)
            E[idx] = h
            fd[idx] = (gaussian_population_loss(W + E, V) - gaussian_population_loss(W - E, V)) / (
                2 * h
            )
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_gaussian_teacher_is_a_zero_loss_critical_point():
    rng = np.random.default_rng(4)
    V = rng.standard_normal((4, 3))
    assert abs(gaussian_population_loss(V, V)) < 1e-14
    assert np.abs(gaussian_population_loss_grad(V[::-1], V)).max() < 1e-14


def test_weight_decay_penalty_is_total_variation_of_the_slope_on_canonical_forms():
    rng = np.random.default_rng(8)
    D = 1.5
    for _ in range(30):
        net = random_net(rng, int(rng.integers(1, 15)), 1, D)
        canon = canonical_form(net, D)
        # TV(f') on (-D, D) from one-sided difference quotients at each kink
        a = net.a[:, 0]
        t = np.unique(-net.b[a != 0] / a[a != 0])
        t = t[np.abs(t) < D - 1e-6]
        h = 1e-7
        left = (net(t[:, None]) - net(t[:, None] - h)) / h
        right = (net(t[:, None] + h) - net(t[:, None])) / h
        tv = np.abs(right - left).sum()
        assert weight_decay_penalty(canon, 0.3) == pytest.approx(0.3 * tv, rel=1e-5)
        # AM-GM: no parametrization has a smaller penalty than its rebalanced self
        assert weight_decay_penalty(net, 0.3) >= 0.3 * np.sum(np.abs(net.c) * np.abs(a)) - 1e-12


def test_random_teacher_is_canonical_and_realizable_without_w():
    rng = np.random.default_rng(9)
    for d in (1, 2, 3):
        teacher = random_teacher(5, d, 2.0, rng)
        assert in_restricted_set(teacher, 2.0) and teacher.width == 5
        assert int(np.count_nonzero(teacher.c)) == 5
    # reproducible from the seed alone
    t1 = random_teacher(4, 2, 1.0, np.random.default_rng(0))
    t2 = random_teacher(4, 2, 1.0, np.random.default_rng(0))
    assert np.array_equal(t1.a, t2.a) and t1.e == t2.e


def test_abs_target_is_realized_exactly_by_two_neurons():
    f = target_function("abs", 1.0)
    net = ShallowNet([[1.0], [-1.0]], [0.0, 0.0], [1.0, 1.0])
    x = sample_points(101, 1, 1.0, kind="grid")
    np.testing.assert_allclose(f(x), net(x), atol=0)
    grid = ShallowNet(np.zeros((1, 1)), [0.0], [0.0])
    assert sup_norms_1d(net, grid, 1.0) == (1.0, 1.0)


def test_targets_and_sampling_refuse_bad_input():
    with pytest.raises(ValueError, match="unknown target 'cos'"):
        target_function("cos", 1.0)
    with pytest.raises(ValueError, match="half-width D"):
        target_function("sin", -1.0)
    with pytest.raises(ValueError, match="unknown sampling kind"):
        sample_points(10, 1, 1.0, kind="sobol")
    with pytest.raises(ValueError, match="share d"):
        gaussian_population_loss(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        gaussian_population_loss(np.full((2, 2), np.nan), np.ones((2, 2)))
