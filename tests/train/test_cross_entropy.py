"""Multiclass classification under the cross-entropy (vector outputs, m >= 3 classes): the
stacked objective and its gradients against autograd, kernel routing, training end to
end (unrestricted and restricted), records and certificates."""

import numpy as np
import pytest
import torch

from realspace.core.problem import init_params, make_data
from realspace.core.spec import RunSpec
from realspace.train.kernels import choose_objective
from realspace.train.model import cross_entropy_objective

CPU = torch.device("cpu")


def spec_of(**kw):
    spec = dict(target="mixture", d=2, width=6, n_samples=45, n_classes=3, seed=0)
    spec.update(kw)
    return RunSpec(**spec)


def autograd_cross_entropy(p, X, y, lam):
    """One network's objective and gradients, neuron by neuron, through torch autograd;
    the loss as -log softmax written out (moderate logits, float64)."""
    t = {k: torch.tensor(np.asarray(v, float), requires_grad=True) for k, v in p.items()}
    X, y = torch.tensor(X), torch.tensor(y).long()
    f = X @ t["w"].T + t["e"]
    for i in range(len(p["c"])):
        f = f + torch.clamp(X @ t["a"][i] + t["b"][i], min=0)[:, None] * t["c"][i]
    ll = f.gather(1, y[:, None])[:, 0] - torch.log(torch.exp(f).sum(1))
    J = -ll.mean() + lam / 2 * ((t["c"] ** 2).sum() + (t["a"] ** 2).sum())
    J.backward()
    return float(J.detach()), {k: v.grad.numpy() for k, v in t.items()}


def stacked_case(specs, scale=3.0, dead=True):
    rng = np.random.default_rng(7)
    ps = []
    for s in specs:
        p = init_params(s)
        p["c"] = p["c"] * scale
        p["w"] = rng.standard_normal(p["w"].shape)
        p["e"] = rng.standard_normal(p["e"].shape) * 0.3
        if dead:  # a neuron inactive on every sample: zero gradient in (a, b) but for decay
            p["a"][0], p["b"][0] = 0.1, -10.0
        ps.append(p)
    data = [make_data(s) for s in specs]
    stacked = {k: torch.tensor(np.stack([p[k] for p in ps])) for k in ps[0]}
    X = torch.tensor(np.stack([d[0] for d in data]))
    Y = torch.tensor(np.stack([d[1] for d in data]))
    lam = torch.tensor([s.weight_decay for s in specs], dtype=torch.float64)
    return ps, data, stacked, X, Y, lam


@pytest.mark.parametrize(
    "variant",
    [
        dict(),
        dict(weight_decay=0.1),
        dict(parametrization="restricted", weight_decay=0.05),
        dict(target="spirals", n_classes=4, width=9),
        dict(n_classes=5, n_samples=50, weight_decay=0.02, parametrization="restricted"),
    ],
)
@pytest.mark.parametrize("neuron_major", [False, True])  # the graph kernel's layout
def test_stacked_cross_entropy_gradients_equal_autograd(variant, neuron_major):
    specs = [spec_of(seed=s, **variant) for s in range(3)]
    ps, data, stacked, X, Y, lam = stacked_case(specs)
    J, L, grads = cross_entropy_objective(stacked, X, Y, lam, neuron_major=neuron_major)
    m = specs[0].n_classes
    assert grads["c"].shape == stacked["c"].shape == (3, specs[0].width, m)
    assert grads["w"].shape == (3, m, specs[0].d) and grads["e"].shape == (3, m)
    for r, spec in enumerate(specs):
        J_ref, g_ref = autograd_cross_entropy(ps[r], *data[r], spec.weight_decay)
        assert float(J[r]) == pytest.approx(J_ref, rel=1e-13)
        assert float(L[r]) == pytest.approx(J_ref - float(J[r] - L[r]), rel=1e-13)
        for k in ("a", "b", "c", "e", "w"):
            np.testing.assert_allclose(grads[k][r].numpy(), g_ref[k], rtol=1e-11, atol=1e-14)
        assert np.all(grads["a"][r, 0].numpy() == spec.weight_decay * ps[r]["a"][0])


def test_cross_entropy_is_stable_at_large_logits():
    """logsumexp with the max taken out: logits of 800 neither overflow nor lose the tail."""
    p = {
        "a": torch.ones(1, 1, 1, dtype=torch.float64),
        "b": torch.zeros(1, 1, dtype=torch.float64),
        "c": torch.tensor([[[1.0, 0.0, -1.0]]], dtype=torch.float64),
        "e": torch.zeros(1, 3, dtype=torch.float64),
        "w": torch.zeros(1, 3, 1, dtype=torch.float64),
    }
    X = torch.tensor([[[800.0], [40.0]]], dtype=torch.float64)
    for label, expect in ((2.0, (1600.0 + 80.0) / 2), (0.0, np.log1p(np.exp(-40.0)) / 2)):
        _, L, g = cross_entropy_objective(p, X, torch.full((1, 2), label), torch.zeros(1))
        assert float(L[0]) == pytest.approx(expect, rel=1e-12)
        assert all(torch.isfinite(v).all() for v in g.values())


def test_the_cross_entropy_trains_with_the_dense_kernel_only():
    spec = spec_of()
    assert spec.loss == "cross_entropy" and spec.outputs == 3
    for kernel in ("auto", "dense"):
        objective, name = choose_objective(kernel, spec, CPU)
        assert name == "dense"
    with pytest.raises(ValueError, match="written for MSE"):
        choose_objective("fused", spec, CPU)
    with pytest.raises(ValueError, match="written for MSE"):
        choose_objective("prefix", spec_of(target="teacher_labels", d=1), CPU)


# -- training end to end -----------------------------------------------------------------

F64 = torch.float64


def vector_coordinates(rng, M, N, d, m):
    """Random intrinsic coordinates with vector amplitudes r (M, N, m) over several decades."""
    r = rng.standard_normal((M, N, m)) * 10 ** rng.uniform(-2, 0.5, (M, N, 1))
    return {
        "v": torch.tensor(rng.standard_normal((M, N, d)) * rng.uniform(0.1, 10, (M, N, 1))),
        "kappa": torch.tensor(rng.standard_normal((M, N))),
        "r": torch.tensor(r),
        "e": torch.tensor(rng.standard_normal((M, m))),
        "w": torch.tensor(rng.standard_normal((M, m, d))),
    }


@pytest.mark.parametrize("lam", [0.0, 0.1])
def test_pulled_back_vector_gradient_equals_autograd(lam):
    from realspace.train import intrinsic

    rng = np.random.default_rng(11)
    M, N, n, d, m = 5, 6, 40, 2, 3
    D = torch.tensor(rng.uniform(0.5, 2, M))
    q = {k: v.requires_grad_() for k, v in vector_coordinates(rng, M, N, d, m).items()}
    X = torch.tensor(rng.uniform(-1, 1, (M, n, d))) * D[:, None, None]
    y = torch.tensor(rng.integers(0, m, (M, n)).astype(float))
    lams = torch.full((M,), lam, dtype=F64)
    J, _, grads = cross_entropy_objective(intrinsic.realize(q, D), X, y, lams)
    auto = torch.autograd.grad(J.sum(), [q[k] for k in intrinsic.COORDS])
    closed = intrinsic.pullback({k: v.detach() for k, v in q.items()}, grads, D)
    for k, g in zip(intrinsic.COORDS, auto, strict=True):
        np.testing.assert_allclose(closed[k].detach().numpy(), g.numpy(), rtol=1e-10, atol=1e-12)


def test_vector_coordinates_give_balanced_networks_and_back():
    """realize: ||c_i|| = ||a_i||, kinks strictly inside Q, and c_i rho(z_i) = r_i ||r_i||
    rho(<a^_i, x> - tau_i D ||a^_i||_1); to_coordinates of that network gives it back."""
    from realspace.train import intrinsic

    rng = np.random.default_rng(12)
    M, N, d, m = 4, 7, 3, 4
    D = torch.tensor(rng.uniform(0.5, 2, M))
    q = vector_coordinates(rng, M, N, d, m)
    p = intrinsic.realize(q, D)
    np.testing.assert_allclose(p["c"].norm(dim=-1), p["a"].norm(dim=-1), rtol=1e-14)
    assert bool((p["b"].abs() < D[:, None] * p["a"].abs().sum(-1)).all())
    back = intrinsic.realize(intrinsic.to_coordinates(p, D), D)
    for k in ("a", "b", "c", "e", "w"):
        np.testing.assert_allclose(back[k], p[k], rtol=1e-12, atol=1e-14)


def vector_params(rng, M, N, d, m, dup=True):
    a = rng.standard_normal((M, N, d))
    b = rng.uniform(-0.5, 0.5, (M, N))
    c = rng.standard_normal((M, N, m))
    if dup:  # neuron 1 parallel to 0, neuron 3 antiparallel to 2, other lengths
        a[:, 1], b[:, 1] = 2.5 * a[:, 0], 2.5 * b[:, 0]
        a[:, 3], b[:, 3] = -0.7 * a[:, 2], -0.7 * b[:, 2]
    return {
        "a": torch.tensor(a),
        "b": torch.tensor(b),
        "c": torch.tensor(c),
        "e": torch.tensor(rng.standard_normal((M, m))),
        "w": torch.tensor(rng.standard_normal((M, m, d))),
    }


def realized(p, r, x):
    """The numpy realization (n, m) of network r of stacked params p."""
    from realspace.core.problem import network_from_params

    return network_from_params({k: v[r].numpy() for k, v in p.items()}, True)(x)


def test_rebalance_and_exact_merges_keep_a_vector_realization():
    from realspace.train.project import COUNTERS, merge_close, rebalance

    rng = np.random.default_rng(13)
    M, N, d, m = 3, 6, 2, 3
    p = vector_params(rng, M, N, d, m)
    x = rng.uniform(-1, 1, (500, d))
    q = rebalance(p, torch.ones(M, dtype=torch.bool))
    np.testing.assert_allclose(q["c"].norm(dim=-1), q["a"].norm(dim=-1), rtol=1e-14)
    counts = {k: torch.zeros(M, dtype=torch.int64) for k in COUNTERS}
    live = torch.ones(M, N, dtype=torch.bool)
    mg = merge_close(
        q["a"], q["b"], q["c"], q["e"], q["w"], live, counts, 1e-6, torch.ones(M, dtype=F64)
    )
    assert counts["merge"].tolist() == [2] * M
    assert mg.freed[:, [1, 3]].all() and mg.survivor[:, [0, 2]].all()
    keep = ~mg.freed
    after = {
        "a": mg.a * keep[..., None],
        "b": mg.b * keep,
        "c": mg.c * keep[..., None],
        "e": mg.e,
        "w": mg.w,
    }
    np.testing.assert_allclose(after["c"].norm(dim=-1), after["a"].norm(dim=-1), rtol=1e-14)
    for r in range(M):
        np.testing.assert_allclose(realized(after, r, x), realized(p, r, x), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(realized(q, r, x), realized(p, r, x), rtol=1e-12, atol=1e-12)
    assert float(mg.bound.max()) <= 1e-12


def ce_spec(**kw):
    spec = dict(target="spirals", d=2, width=24, n_samples=90, n_classes=3, steps=500, lr=3e-2)
    spec.update(kw)
    return RunSpec(**spec)


def numpy_ce(net, x, y):
    """(1/n) sum_k -log softmax(f(x_k))_{y_k} in float64 numpy, written out."""
    f = net(x)
    top = f.max(1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(f - top).sum(1))
    return float(np.mean(lse - f[np.arange(len(y)), y.astype(int)]))


def check_balanced_in_cube(params, spec, r, tol=1e-12):
    """R1 ||c_i|| = ||a_i|| and R2 |b_i| < D ||a_i||_1 for the live neurons of run r."""
    a, b, c = params["a"][r], params["b"][r], params["c"][r]
    na, nc = np.linalg.norm(a, axis=1), np.linalg.norm(c, axis=1)
    live = (na > 0) & (nc > 0)
    assert live.sum() > 0
    np.testing.assert_allclose(nc[live], na[live], rtol=tol)
    assert np.all(np.abs(b[live]) < spec.D * np.abs(a[live]).sum(1))
    from realspace import in_restricted_set
    from realspace.core.problem import network_from_params

    net = network_from_params({k: v[r] for k, v in params.items()}, True)
    assert in_restricted_set(net, spec.D)


@pytest.mark.parametrize(
    "variant",
    [
        dict(),
        dict(parametrization="restricted", restricted_method="intrinsic"),
        dict(parametrization="restricted", restricted_method="projection"),
    ],
)
def test_a_three_class_shard_trains_well_below_chance(variant):
    from realspace.core.problem import network_from_params
    from realspace.train import TrainOptions, certify, train_shard

    specs = [ce_spec(seed=s, weight_decay=1e-4, **variant) for s in range(2)]
    opts = TrainOptions(dtype=F64, snapshot_every=200, merge_every=10)
    result = train_shard(specs, opts)
    certs = certify(result)
    assert result.params["c"].shape == (2, 24, 3) and result.params["w"].shape == (2, 3, 2)
    for r, spec in enumerate(specs):
        x, y = make_data(spec)
        net = network_from_params({k: v[r] for k, v in result.params.items()}, spec.restricted)
        loss = numpy_ce(net, x, y)
        assert certs[r]["loss"] == pytest.approx(loss, rel=1e-9)
        assert loss < 0.4 * np.log(3)  # chance is log 3
        if spec.restricted:
            for _, snap in result.snapshots + [(None, result.params)]:
                check_balanced_in_cube(snap, spec, r)
        else:
            assert not result.params["w"][r].any()  # the unrestricted slope stays zero


# -- records and certificates -------------------------------------------------------------


def test_records_of_a_three_class_shard_carry_loss_scores_and_structure():
    from realspace.core.problem import network_from_params
    from realspace.core.targets import classification_scores, cross_entropy_loss
    from realspace.train import TrainOptions, train_and_record

    opts = TrainOptions(dtype=F64)
    for variant in (dict(), dict(parametrization="restricted")):
        specs = [ce_spec(seed=s, steps=300, weight_decay=1e-3, **variant) for s in range(2)]
        for rec in train_and_record(specs, opts):
            spec = rec.spec
            x, y = make_data(spec)
            net = network_from_params(rec.params, spec.restricted)
            assert rec.loss == pytest.approx(numpy_ce(net, x, y), rel=1e-9)
            assert rec.loss == pytest.approx(cross_entropy_loss(net, x, y), rel=1e-9)
            assert rec.loss < rec.history_loss[0] < np.log(3) * 1.2
            acc, margin = classification_scores(net, x, y)
            assert (rec.accuracy, rec.normalized_margin) == (acc, pytest.approx(margin, rel=1e-12))
            assert rec.accuracy > 0.6
            # same realization, balanced: the same loss under a penalty no larger
            assert rec.loss <= rec.canonical_objective <= rec.objective + 1e-12
            assert rec.canonical_member
            assert rec.margins["member"] == spec.restricted or not spec.restricted
            summary = rec.summary()
            assert summary["accuracy"] == rec.accuracy and summary["loss"] == rec.loss
            assert rec.eval_f.shape == (len(rec.eval_x), 3)


def fd_hessian_ce(p, X, Y, lam, names, theta, h=1e-6):
    """Central differences of the closed-form gradient (P, P) at flat theta (1, P)."""

    def grad_at(th):
        q, i = dict(p), 0
        for k in names:
            size = p[k][0].numel()
            q[k] = th[:, i : i + size].reshape(p[k].shape)
            i += size
        g = cross_entropy_objective(q, X, Y, lam)[2]
        return torch.cat([g[k].reshape(1, -1) for k in names], dim=1)[0]

    eye = torch.eye(theta.shape[1], dtype=F64)
    H = torch.stack([grad_at(theta + h * e) - grad_at(theta - h * e) for e in eye]) / (2 * h)
    return 0.5 * (H + H.T), grad_at


def one_run_result(spec, params):
    from realspace.train.loop import ShardResult

    return ShardResult(
        specs=[spec],
        params={k: np.asarray(v, float)[None] for k, v in params.items()},
        status=np.zeros(1, int),
        steps=np.zeros(1, int),
        diverged_step=-np.ones(1, int),
        history_step=-np.ones((1, 1), int),
        history_loss=np.full((1, 1), np.nan),
        counts={},
        dtype="float64",
    )


def flat(p, names):
    return torch.cat([p[k].reshape(1, -1) for k in names], dim=1)


def test_certificates_match_the_hessian_of_the_closed_form_gradient():
    """The certificate's Hessian (torch.func) against central differences of the closed-form
    gradient, at a trained end point and at two stationary points that differ only in the
    side of the kink every neuron sits on. With every neuron silent (a = 0, c = 0) and e at
    the class log-frequencies (sum_k g_k = 0) the gradient vanishes. Inactive neurons
    (b = -1): the Hessian is lam on (a, c), 0 on b and the softmax covariance on e, a
    weight-decayed local minimum, certified. Active ones (b = +1, rho = 1): (a_i, c_i) are
    coupled through sum_k g_k x_k^T (m, d), which beats a small lam: a saddle, not certified."""
    from realspace.train import TrainOptions, certify, train_shard
    from realspace.train.state import trainable_names

    spec = RunSpec(
        target="mixture", d=2, width=4, n_samples=30, n_classes=3, steps=600, lr=2e-2,
        weight_decay=3e-3, seed=1,
    )  # fmt: skip
    x, y = make_data(spec)
    X, Y = torch.tensor(x)[None], torch.tensor(y)[None]
    names = trainable_names(spec)

    def check(sp, params):
        cert = certify(one_run_result(sp, params))[0]
        p = {k: torch.tensor(np.asarray(v, float))[None] for k, v in params.items()}
        lam = torch.tensor([sp.weight_decay], dtype=F64)
        H, grad_at = fd_hessian_ce(p, X, Y, lam, names, flat(p, names), h=1e-7)
        assert cert["eig_method"] == "dense"
        assert cert["grad_norm"] == pytest.approx(
            float(grad_at(flat(p, names)).norm()), rel=1e-9, abs=1e-14
        )
        if cert["min_kink_distance"] > 1e-4:  # differences do not cross a kink
            assert cert["min_eig"] == pytest.approx(float(torch.linalg.eigvalsh(H)[0]), abs=1e-5)
        return cert

    trained = train_shard([spec], TrainOptions(dtype=F64)).params
    check(spec, {k: v[0] for k, v in trained.items()})

    freq = np.bincount(y.astype(int), minlength=3) / len(y)
    low = RunSpec(**{**spec.to_dict(), "weight_decay": 1e-4})
    N = spec.width
    for side, minimum in ((-1.0, True), (1.0, False)):
        silent = {
            "a": np.zeros((N, 2)),
            "b": np.full(N, side),
            "c": np.zeros((N, 3)),
            "e": np.log(freq),
            "w": np.zeros((3, 2)),
        }
        cert = check(low, silent)
        assert cert["grad_norm"] <= 1e-12
        assert cert["certified"] == minimum
        assert (cert["min_eig"] >= -1e-12) if minimum else (cert["min_eig"] < -1e-3)


def test_vector_reseeds_are_small_balanced_neurons_with_kinks_in_the_cube():
    from realspace.train.project import reseed_draws, seed_tensor

    M, n, d, m, scale = 4, 50, 2, 3, 1e-2
    D = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=F64)
    a, b, c = reseed_draws(seed_tensor(list(range(M)), "cpu"), 7, n, d, D, scale, F64, m)
    assert c.shape == (M, n, m)
    np.testing.assert_allclose(c.norm(dim=-1), scale, rtol=1e-14)
    np.testing.assert_allclose(a.norm(dim=-1), scale, rtol=1e-14)
    assert bool((b.abs() <= D[:, None] * a.abs().sum(-1)).all())
    # directions spread over the sphere: the mean of 200 unit vectors is small
    u = c.reshape(-1, m) / scale
    assert float(u.mean(0).norm()) < 0.3


def test_intrinsic_merges_and_reseeds_during_float32_training_keep_vector_runs_in_the_set():
    from realspace.train import TrainOptions, train_shard

    specs = [
        ce_spec(seed=s, width=10, steps=200, parametrization="restricted", weight_decay=1e-3)
        for s in range(3)
    ]
    opts = TrainOptions(intrinsic_merge_every=20, merge_angle=0.05, snapshot_every=50)
    result = train_shard(specs, opts)
    assert result.dtype == "float32"
    assert sum(result.counts["merge"]) + sum(result.counts["reseed"]) > 0
    for r, spec in enumerate(specs):
        for _, snap in result.snapshots + [(None, result.params)]:
            check_balanced_in_cube(snap, spec, r)
        assert result.history_loss[r, -1] < result.history_loss[r, 0]
