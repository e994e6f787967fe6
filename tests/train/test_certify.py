"""The closed-form MSE Hessian against torch.func's, and certificates with either."""

import dataclasses
import importlib
import itertools

import numpy as np
import pytest
import torch
from torch.func import hessian, vmap

from realspace.train import (
    RunSpec,
    TrainOptions,
    certify,
    init_params,
    make_data,
    network_from_params,
    teacher_net,
    train_and_record,
    train_shard,
)
from realspace.train.certify import _single_mse, mse_hessian
from realspace.train.state import trainable_names

# the module, not the function of the same name that realspace.train exports
certify_module = importlib.import_module("realspace.train.certify")


def func_hessian(p, X, y, lam, names):
    """torch.func's Hessian of ``_single_mse``: what the dense MSE path computed before."""
    M = X.shape[0]
    shapes = [tuple(p[k].shape[1:]) for k in names]
    theta = torch.cat([p[k].reshape(M, -1) for k in names], dim=1)
    fixed = {k: v for k, v in p.items() if k not in names}

    def single(th, fx, x, yy, lm):
        return _single_mse(th, fx, x, yy, lm, names, shapes)

    return vmap(hessian(single))(theta, fixed, X, y, lam)


def random_case(spec: RunSpec, M: int, n: int, seed: int):
    """M random networks of ``spec``'s shape (fixed parameters as the trainer fixes them:
    b = e = 0 without bias, c = 1 with fixed output weights, w = 0 unrestricted; the
    random values elsewhere make every term of the Hessian count) and random data."""
    rng = np.random.default_rng(seed)
    N, d = spec.width, spec.d

    def normal(*shape):
        return torch.as_tensor(rng.standard_normal(shape))

    p = {
        "a": normal(M, N, d),
        "b": normal(M, N) if spec.bias else torch.zeros(M, N, dtype=torch.float64),
        "c": normal(M, N) if spec.train_output else torch.ones(M, N, dtype=torch.float64),
        "e": normal(M) if spec.bias else torch.zeros(M, dtype=torch.float64),
        "w": normal(M, d) if spec.restricted else torch.zeros(M, d, dtype=torch.float64),
    }
    lam = torch.full((M,), spec.weight_decay, dtype=torch.float64)
    return p, normal(M, n, d), normal(M, n), lam


@pytest.mark.parametrize(
    "parametrization, bias, train_output, weight_decay, d, width",
    list(
        itertools.product(
            ("unrestricted", "restricted"), (True, False), (True, False), (0.0, 3e-2), (1, 3),
            (1, 5, 16),
        )
    ),
)  # fmt: skip
def test_closed_form_hessian_equals_torch_func(
    parametrization, bias, train_output, weight_decay, d, width
):
    spec = RunSpec(
        parametrization=parametrization,
        bias=bias,
        train_output=train_output,
        weight_decay=weight_decay,
        d=d,
        width=width,
    )
    names = trainable_names(spec)
    p, X, y, lam = random_case(spec, M=4, n=23, seed=width + 10 * d)
    H = mse_hessian(p, X, y, lam, names)
    ref = func_hessian(p, X, y, lam, names)
    assert H.dtype == torch.float64 and H.shape == ref.shape
    assert H.shape[1] == sum(p[k][0].numel() for k in names)
    rel = ((H - ref).abs().amax((1, 2)) / ref.abs().amax((1, 2))).max()
    assert rel <= 1e-12


def certificates_by_func(result, **kw):
    """certify() with the dense MSE Hessian taken by torch.func, as before the closed form."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(certify_module, "mse_hessian", func_hessian)
        return certify(result, **kw)


def shards():
    # trained in float32 as a sweep trains (none certified after 50 steps) ...
    sin = dict(target="sin", d=1, n_samples=64, steps=50, optimizer="adam", lr=1e-2)
    for width, par, wd in (8, "unrestricted", 0.0), (8, "restricted", 1e-3), (3, "restricted", 0):
        specs = [
            RunSpec(**sin, width=width, parametrization=par, weight_decay=wd, seed=s)
            for s in range(12)
        ]
        yield train_shard(specs, TrainOptions(dtype=torch.float32))
    # ... and started at a teacher of the same width (zero loss: certified) next to random
    # starts, in float64 with plain gradient descent so that the teacher starts stay put
    teacher = RunSpec(
        target="teacher", teacher_width=3, width=3, d=2, n_samples=40,
        parametrization="restricted", optimizer="gd", lr=1e-3, steps=5,
    )  # fmt: skip
    specs = [dataclasses.replace(teacher, seed=s) for s in range(8)]
    net = teacher_net(teacher)
    at_teacher = {"a": net.a, "b": net.b, "c": net.c, "e": np.asarray(net.e), "w": net.linear}
    init = [at_teacher if s % 2 else init_params(spec) for s, spec in enumerate(specs)]
    yield train_shard(specs, TrainOptions(dtype=torch.float64), init=init)


def test_certificates_equal_those_with_the_torch_func_hessian():
    decisions = []
    for result in shards():
        new, old = certify(result), certificates_by_func(result)
        assert len(new) == len(old) == len(result.specs)
        for n, o in zip(new, old, strict=True):
            assert n["eig_method"] == o["eig_method"] == "dense"
            assert n["min_eig"] == pytest.approx(o["min_eig"], rel=0, abs=1e-10)
            assert n["certified"] == o["certified"]
            same = {k: v for k, v in n.items() if k != "min_eig"}
            assert same == {k: v for k, v in o.items() if k != "min_eig"}
            decisions.append(n["certified"])
    assert any(decisions) and not all(decisions)  # both decisions were put to the test


def test_certify_uses_the_data_it_is_handed():
    specs = [RunSpec(target="sin", width=4, n_samples=32, steps=20, seed=s) for s in range(5)]
    result = train_shard(specs)
    drawn = [make_data(s) for s in specs]
    assert certify(result, data=drawn) == certify(result)  # the trainer's own data
    # other targets (a shard trained on handed data, as retraining does): the loss is theirs
    other = [(x, np.cos(3 * x[:, 0])) for x, _ in drawn]
    for m, cert in enumerate(certify(result, data=other)):
        net = network_from_params({k: v[m] for k, v in result.params.items()}, False)
        x, y = other[m]
        assert cert["loss"] == pytest.approx(np.mean((net(x) - y) ** 2), rel=1e-12)
    with pytest.raises(ValueError, match="4 data sets for 5 runs"):
        certify(result, data=drawn[:4])


def test_train_and_record_draws_the_data_once(monkeypatch):
    specs = [RunSpec(target="sin", width=4, n_samples=32, steps=20, seed=s) for s in range(3)]
    expected = certify(train_shard(specs))

    def drawn_again(spec):
        raise AssertionError("the trainer or certify drew the data again")

    monkeypatch.setattr(certify_module, "make_data", drawn_again)
    monkeypatch.setattr(importlib.import_module("realspace.train.inputs"), "make_data", drawn_again)
    fields = ("loss", "objective", "grad_norm", "min_eig", "certified", "min_kink_distance")
    got = [{k: getattr(r, k) for k in fields} for r in train_and_record(specs)]
    assert got == [{k: c[k] for k in fields} for c in expected]
