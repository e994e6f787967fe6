"""Binary classification under the logistic loss: the stacked objective and its gradients
against autograd, accuracy and margin against direct sums, the labels of the
teacher_labels target, kernel routing and the rules a classification run obeys."""

import numpy as np
import pytest
import torch
from factories import sweep_config

from realspace.core.nets import ShallowNet
from realspace.core.problem import init_params, make_data, teacher_net
from realspace.core.spec import RunSpec
from realspace.core.targets import classification_scores, logistic_loss, path_norm
from realspace.train.kernels import choose_objective
from realspace.train.model import logistic_objective

CPU = torch.device("cpu")


def spec_of(**kw):
    spec = dict(target="teacher_labels", d=2, width=6, n_samples=49, teacher_width=3, seed=0)
    spec.update(kw)
    return RunSpec(**spec)


def autograd_logistic(p, X, y, lam):
    """One network's objective and gradients, neuron by neuron, through torch autograd."""
    t = {k: torch.tensor(np.asarray(v, float), requires_grad=True) for k, v in p.items()}
    X, y = torch.tensor(X), torch.tensor(y)
    f = torch.zeros(len(X), dtype=torch.float64)
    for i in range(len(p["c"])):
        f = f + t["c"][i] * torch.clamp(X @ t["a"][i] + t["b"][i], min=0)
    f = f + X @ t["w"] + t["e"]
    # log(1 + exp(-m)) written out, in float64: the margins below stay moderate
    J = torch.log1p(torch.exp(-y * f)).mean() + lam / 2 * (
        (t["c"] ** 2).sum() + (t["a"] ** 2).sum()
    )
    J.backward()
    return float(J.detach()), {k: v.grad.numpy() for k, v in t.items()}


@pytest.mark.parametrize(
    "variant",
    [
        dict(),
        dict(weight_decay=0.1),
        dict(parametrization="restricted", d=3, weight_decay=0.05),
        dict(d=1, n_samples=30, bias=False),
        dict(train_output=False, weight_decay=0.2),
    ],
)
def test_stacked_logistic_gradients_equal_autograd(variant):
    specs = [spec_of(seed=s, **variant) for s in range(3)]
    rng = np.random.default_rng(7)
    ps = []
    for s in specs:
        p = init_params(s)
        p["c"] = p["c"] * 3.0  # margins of order one, on both sides of zero
        p["w"] = rng.standard_normal(p["w"].shape) if s.restricted else p["w"]
        p["e"] = np.array(0.3)
        ps.append(p)
    data = [make_data(s) for s in specs]
    stacked = {k: torch.tensor(np.stack([p[k] for p in ps])) for k in ps[0]}
    X = torch.tensor(np.stack([d[0] for d in data]))
    Y = torch.tensor(np.stack([d[1] for d in data]))
    lam = torch.tensor([s.weight_decay for s in specs], dtype=torch.float64)
    J, L, grads = logistic_objective(stacked, X, Y, lam)
    for m, spec in enumerate(specs):
        J_ref, g_ref = autograd_logistic(ps[m], *data[m], spec.weight_decay)
        assert float(J[m]) == pytest.approx(J_ref, rel=1e-13)
        net = ShallowNet(ps[m]["a"], ps[m]["b"], ps[m]["c"], float(ps[m]["e"]), ps[m]["w"])
        assert float(L[m]) == pytest.approx(logistic_loss(net, *data[m]), rel=1e-13)
        for k in ("a", "b", "c", "e", "w"):
            np.testing.assert_allclose(grads[k][m].numpy(), g_ref[k], rtol=1e-11, atol=1e-14)


def test_logistic_loss_is_stable_at_large_margins():
    """softplus: exp(-m) for m >> 0 and -m for m << 0, where log(1 + exp(-m)) would round
    to 0 or overflow."""
    p = {
        "a": torch.ones(1, 1, 1, dtype=torch.float64),
        "b": torch.zeros(1, 1, dtype=torch.float64),
        "c": torch.ones(1, 1, dtype=torch.float64),
        "e": torch.zeros(1, dtype=torch.float64),
        "w": torch.zeros(1, 1, dtype=torch.float64),
    }
    X = torch.tensor([[[800.0], [40.0]]], dtype=torch.float64)
    for label, expect in ((-1.0, (800.0 + 40.0) / 2), (1.0, np.exp(-40.0) / 2)):
        _, L, g = logistic_objective(p, X, torch.full((1, 2), label), torch.zeros(1))
        assert float(L[0]) == pytest.approx(expect, rel=1e-12)
        assert torch.isfinite(g["c"]).all()


def test_accuracy_and_margin_equal_direct_sums():
    rng = np.random.default_rng(3)
    for restricted in (False, True):
        N, d, n = 5, 2, 40
        a, b, c = rng.standard_normal((N, d)), rng.standard_normal(N), rng.standard_normal(N)
        e, w = 0.2, rng.standard_normal(d)
        net = ShallowNet(a, b, c, e, w if restricted else None)
        x = rng.uniform(-1, 1, (n, d))
        y = rng.choice([-1.0, 1.0], n)
        f = [sum(c[i] * max(a[i] @ xk + b[i], 0.0) for i in range(N)) + e for xk in x]
        f = np.array(f) + (x @ w if restricted else 0.0)
        norm = sum(abs(c[i]) * np.sqrt(a[i] @ a[i] + b[i] ** 2) for i in range(N))
        norm += np.sqrt((w @ w if restricted else 0.0) + e**2)
        acc, margin = classification_scores(net, x, y)
        assert acc == np.mean([yk * fk > 0 for yk, fk in zip(y, f, strict=True)])
        assert margin == pytest.approx(min(y * f) / norm, rel=1e-12)
        assert path_norm(net) == pytest.approx(norm, rel=1e-13)
        # scale-free: the output times 3, one neuron rescaled by 5
        a2, b2, c2 = a.copy(), b.copy(), 3 * c
        a2[0], b2[0], c2[0] = 5 * a[0], 5 * b[0], c2[0] / 5
        scaled = ShallowNet(a2, b2, c2, 3 * e, 3 * w if restricted else None)
        assert classification_scores(scaled, x, y)[1] == pytest.approx(margin, rel=1e-12)


def test_teacher_labels_are_the_signs_of_the_teacher():
    spec = spec_of(n_samples=200, sampling="uniform")
    x, y = make_data(spec)
    f = teacher_net(spec)(x)
    assert set(np.unique(y)) == {-1.0, 1.0}
    np.testing.assert_array_equal(y, np.where(f >= 0, 1.0, -1.0))
    # the teacher itself classifies its labels perfectly
    assert classification_scores(teacher_net(spec), x, y)[0] == 1.0


def test_the_logistic_loss_trains_with_the_dense_kernel_only():
    spec = spec_of()
    for kernel in ("auto", "dense"):
        objective, name = choose_objective(kernel, spec, CPU)
        assert name == "dense"
    for kernel in ("prefix", "fused"):
        with pytest.raises(ValueError, match="written for MSE"):
            choose_objective(kernel, spec_of(d=1), CPU)


def test_classification_label_noise_is_a_flip_probability():
    for bad in (1.0, 1.5):
        with pytest.raises(ValueError, match="flip probability"):
            spec_of(noise=bad)
    clean, noisy = (
        make_data(spec_of(n_samples=4000)),
        make_data(spec_of(n_samples=4000, noise=0.25)),
    )
    np.testing.assert_array_equal(clean[0], noisy[0])  # the same points, other labels
    share = np.mean(clean[1] != noisy[1])
    assert abs(share - 0.25) < 3 * np.sqrt(0.25 * 0.75 / len(clean[1]))


def flat_gradient(p, X, Y, lam, names, theta):
    """The closed-form gradient in the trainable parameters ``names`` at flat theta (1, P)."""
    q, i = dict(p), 0
    for k in names:
        size = p[k][0].numel()
        q[k] = theta[:, i : i + size].reshape(p[k].shape)
        i += size
    g = logistic_objective(q, X, Y, lam)[2]
    return torch.cat([g[k].reshape(1, -1) for k in names], dim=1)[0]


def fd_hessian(p, X, Y, lam, names, theta, h=1e-6):
    """Central differences of the closed-form gradient, column by column (P, P)."""
    eye = torch.eye(theta.shape[1], dtype=torch.float64)
    cols = [
        flat_gradient(p, X, Y, lam, names, theta + h * e)
        - flat_gradient(p, X, Y, lam, names, theta - h * e)
        for e in eye
    ]
    return torch.stack(cols) / (2 * h)


def test_a_classification_shard_trains_certifies_and_records_its_scores():
    from realspace.core.problem import network_from_params
    from realspace.train import TrainOptions, train_and_record
    from realspace.train.state import trainable_names

    specs = [
        spec_of(seed=s, steps=400, lr=3e-2, weight_decay=1e-3, parametrization=par)
        for s in range(2)
        for par in ("unrestricted", "restricted")
    ]
    opts = TrainOptions(dtype=torch.float64, kernel="dense")
    for rec in train_and_record([s for s in specs if not s.restricted], opts) + train_and_record(
        [s for s in specs if s.restricted], opts
    ):
        spec = rec.spec
        x, y = make_data(spec)
        net = network_from_params(rec.params, spec.restricted)
        assert rec.loss == pytest.approx(logistic_loss(net, x, y), rel=1e-9)
        assert rec.loss < rec.history_loss[0]  # it learned
        acc, margin = classification_scores(net, x, y)
        assert (rec.accuracy, rec.normalized_margin) == (acc, pytest.approx(margin, rel=1e-12))
        assert rec.accuracy >= 0.8
        summary = rec.summary()
        assert summary["accuracy"] == rec.accuracy
        # same realization, balanced: the same loss under a penalty no larger
        assert rec.loss <= rec.canonical_objective <= rec.objective + 1e-12
        # the certificate's Hessian against central differences of the closed-form gradient
        names = trainable_names(spec)
        p = {k: torch.tensor(np.asarray(v, float))[None] for k, v in rec.params.items()}
        X, Y = torch.tensor(x)[None], torch.tensor(y)[None]
        lam = torch.tensor([spec.weight_decay], dtype=torch.float64)
        theta = torch.cat([p[k].reshape(1, -1) for k in names], dim=1)

        H = fd_hessian(p, X, Y, lam, names, theta)
        assert rec.eig_method == "dense"
        assert rec.min_eig == pytest.approx(
            float(torch.linalg.eigvalsh(0.5 * (H + H.T))[0]), abs=1e-6
        )
        assert rec.grad_norm == pytest.approx(
            float(flat_gradient(p, X, Y, lam, names, theta).norm()), rel=1e-9, abs=1e-14
        )


def test_the_classification_target_adds_no_field_to_run_keys():
    """teacher_labels is a target name: its runs' keys differ from the regression teacher's
    on the same teacher, and the specs of every other target keep their dicts (their keys
    are pinned in test_plan)."""
    from realspace.sweep.plan import run_key

    a, b = spec_of(), spec_of(target="teacher")
    assert a.to_dict().keys() == b.to_dict().keys()
    assert run_key(a) != run_key(b)
    assert run_key(RunSpec()) == "f8522908a61582d77c7efa37"


def test_a_sweep_file_takes_the_classification_target_and_refuses_certain_flips():
    from realspace.sweep.config import SweepConfig

    base = sweep_config(name="c", widths=[4], input_dim=2, targets=[{"name": "teacher_labels"}])
    assert SweepConfig(**base).targets[0].name == "teacher_labels"
    with pytest.raises(ValueError, match="flip probability"):
        SweepConfig(**base, data={"noise": 1.0})
    with pytest.raises(ValueError, match="flip probability"):
        SweepConfig(**{**base, "targets": [{"name": "teacher_labels", "noise": 1.0}]})


def _descend(net, x, y, lam, restricted, steps=3000, lr=1e-3):
    """The objective after float64 Adam from ``net``'s own parameters (torch autograd)."""
    X, Y = torch.tensor(x), torch.tensor(y)
    p = {
        k: torch.tensor(np.asarray(v, float), requires_grad=True)
        for k, v in dict(a=net.a, b=net.b, c=net.c, e=net.e).items()
    }
    if restricted:
        p["w"] = torch.tensor(net.linear, requires_grad=True)
    opt = torch.optim.Adam(list(p.values()), lr=lr)

    def objective():
        f = torch.relu(X @ p["a"].T + p["b"]) @ p["c"] + p["e"]
        if restricted:
            f = f + X @ p["w"]
        penalty = 0.5 * lam * ((p["c"] ** 2).sum() + (p["a"] ** 2).sum())
        return torch.nn.functional.softplus(-Y * f).mean() + penalty

    with torch.no_grad():
        best = float(objective())
    for _ in range(steps):
        opt.zero_grad()
        J = objective()
        J.backward()
        opt.step()
        best = min(best, J.item())
    return best


@pytest.mark.slow
@pytest.mark.parametrize(
    "target, k, seed, lam",
    # where Clarabel reported an inaccurate optimum 1.2e-5 and 9.3e-4 too high (measured
    # with a cone row per data point; with the hull's rows it now finishes there)
    [("teacher_labels", 4, 2, 1e-2), ("spirals", 4, 0, 1e-3)],
)
def test_the_logistic_reference_is_accurate_where_the_interior_point_method_is_not(
    target, k, seed, lam
):
    """The reference must be a minimum: descending from the network rebuilt from it
    gains at most solver tolerance."""
    from realspace.convex import convex_optimum

    x, y = make_data(RunSpec(target=target, d=2, n_samples=36, teacher_width=k, teacher_seed=seed))
    opt = convex_optimum(x, y, lam, loss="logistic")
    assert _descend(opt.net, x, y, lam, restricted=False) >= opt.value - 1e-6


@pytest.mark.slow
def test_the_logistic_program_falls_back_to_scs_where_the_interior_point_method_stalls():
    """36 of a teacher's labels at lam = 1e-3: Clarabel stops with insufficient progress
    (measured); the fallback's value must be attained by the network rebuilt from it."""
    from realspace.convex import convex_optimum
    from realspace.core.targets import weight_decay_penalty

    x, y = make_data(RunSpec(target="teacher_labels", d=2, n_samples=36, teacher_width=3))
    lam = 1e-3
    opt = convex_optimum(x, y, lam, loss="logistic")
    net = opt.net
    attained = logistic_loss(net, x, y) + weight_decay_penalty(net, lam)
    assert attained == pytest.approx(opt.value, rel=1e-5, abs=1e-7)
    assert 0 < opt.value < np.log(2)  # better than the zero network, above zero loss
