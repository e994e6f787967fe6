"""Multiclass classification under the cross-entropy (vector outputs, m >= 3 classes): the
stacked objective and its gradients against autograd, kernel routing, training end to
end (unrestricted and restricted), records and certificates."""

import numpy as np
import pytest
import torch

from realspace.problem import init_params, make_data
from realspace.spec import RunSpec
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
def test_stacked_cross_entropy_gradients_equal_autograd(variant):
    specs = [spec_of(seed=s, **variant) for s in range(3)]
    ps, data, stacked, X, Y, lam = stacked_case(specs)
    J, L, grads = cross_entropy_objective(stacked, X, Y, lam)
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
