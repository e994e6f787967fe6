"""Unrestricted runs with a trained linear term (``RunSpec.linear_term``): the restricted
model's function class without its Omega_N constraints (claim 4 compares the two).

Math in float64: the two classes realize the same functions on Q (both ways, random
draws); w trains, with the gradient and the certificate's Hessian of every trainable
parameter, w included, against autograd; a run depends on its spec alone; the plain
unrestricted run keeps its keys and its w = 0; stored end points rebuild the network.
"""

import dataclasses

import numpy as np
import pytest
import torch
from factories import sweep_config
from netgen import plant_degenerate, random_net

from realspace import ShallowNet, canonical_form, in_restricted_set
from realspace.core.problem import network_from_params
from realspace.core.stability import free_neuron_rows, free_neurons
from realspace.sweep import analysis
from realspace.sweep.config import parse_config
from realspace.sweep.plan import plan_runs, run_key
from realspace.train import (
    RunSpec,
    TrainOptions,
    certify,
    init_params,
    make_data,
    train_and_record,
    train_shard,
)
from realspace.train.kernels import choose_objective
from realspace.train.model import realization
from realspace.train.state import Layout, trainable_names

F64 = TrainOptions(dtype=torch.float64)


def linear(**kw) -> RunSpec:
    spec = dict(target="sin", width=4, n_samples=32, steps=60, seed=0, linear_term=True)
    return RunSpec(**{**spec, **kw})


def params_of(net: ShallowNet) -> dict:
    return {"a": net.a, "b": net.b, "c": net.c, "e": np.asarray(net.e), "w": net.linear}


def cube_points(rng, d: int, D: float, net: ShallowNet) -> np.ndarray:
    """Random points of Q = [-D, D]^d, its corners' grid, and in d = 1 the kinks."""
    x = rng.uniform(-D, D, (2000, d))
    if d == 1:
        a = net.a[:, 0]
        t = -net.b[a != 0] / a[a != 0]
        x = np.vstack([x, np.linspace(-D, D, 1001)[:, None], t[np.abs(t) <= D][:, None]])
    else:
        g = np.linspace(-D, D, 21)
        x = np.vstack([x, np.stack(np.meshgrid(*[g] * d), -1).reshape(-1, d)])
    return x


def rel_sup(f, g, x) -> float:
    fx = f(x)
    return float(np.abs(fx - g(x)).max() / max(np.abs(fx).max(), 1e-3))


# ---------------------------------------------------------------------------
# The same function class as the restricted model
# ---------------------------------------------------------------------------
def test_the_linear_term_model_has_the_restricted_models_parameters():
    for kw in (dict(), dict(bias=False), dict(train_output=False), dict(d=3)):
        lin = linear(**kw)
        res = dataclasses.replace(lin, parametrization="restricted")
        assert lin.has_linear and not lin.restricted and res.has_linear
        assert trainable_names(lin) == trainable_names(res)
        assert "w" in trainable_names(lin)
        assert "w" not in trainable_names(dataclasses.replace(lin, linear_term=False))


def test_every_restricted_network_is_a_linear_term_network():
    """A point of Omega_N, read as a linear-term unrestricted run's parameters, realizes
    the same function: through network_from_params and through the trainer's stacked
    realization."""
    rng = np.random.default_rng(7)
    for k in range(60):
        d = int(rng.integers(1, 4))
        D = float(rng.choice([0.5, 1.0, 2.0]))
        net = canonical_form(
            plant_degenerate(rng, random_net(rng, int(rng.integers(1, 12)), d, D, True), D), D
        )
        assert in_restricted_set(net, D), k
        spec = linear(d=d, D=D, width=net.width)
        as_run = network_from_params(params_of(net), spec.has_linear)
        x = cube_points(rng, d, D, net)
        assert rel_sup(net, as_run, x) <= 1e-14, k
        p = {key: torch.tensor(np.array(v))[None] for key, v in params_of(net).items()}
        f, _ = realization(p, torch.as_tensor(x)[None])
        np.testing.assert_allclose(f[0].numpy(), net(x), rtol=1e-12, atol=1e-12)


def test_every_linear_term_network_has_a_canonical_form_in_omega():
    """Random linear-term networks, with dead, affine, zero, duplicate and opposite neurons
    planted: each has a canonical form in Omega_N of its width with the same realization
    on Q to 1e-10 relative."""
    rng = np.random.default_rng(11)
    worst = 0.0
    for k in range(300):
        d = int(rng.integers(1, 4))
        D = float(rng.choice([0.5, 1.0, 2.0]))
        net = plant_degenerate(rng, random_net(rng, int(rng.integers(1, 24)), d, D, True), D)
        spec = linear(d=d, D=D, width=net.width)
        run = network_from_params(params_of(net), spec.has_linear)
        assert np.array_equal(run.linear, net.w)  # the stored w is the network's
        canon = canonical_form(run, D)
        assert canon.width == run.width and in_restricted_set(canon, D), k
        worst = max(worst, rel_sup(run, canon, cube_points(rng, d, D, run)))
    assert worst <= 1e-10


# ---------------------------------------------------------------------------
# w trains
# ---------------------------------------------------------------------------
def test_w_trains_and_fits_what_the_plain_network_cannot():
    """|x| = 2 rho(x) - x: one neuron and a slope. One plain neuron is constant on one side
    of its kink (best MSE about 0.02 on [-1, 1]); with w it fits exactly."""
    x = np.linspace(-1.0, 1.0, 64)[:, None]
    data = [(x, np.abs(x[:, 0]))] * 4
    specs = [linear(width=1, n_samples=64, steps=3000, lr=2e-2, seed=s) for s in range(4)]
    lin = train_shard(specs, F64, data=data)
    plain = train_shard([dataclasses.replace(s, linear_term=False) for s in specs], F64, data=data)

    def losses(result, linear_part):
        nets = [
            network_from_params({k: v[m] for k, v in result.params.items()}, linear_part)
            for m in range(len(specs))
        ]
        return np.array([np.mean((n(x) - np.abs(x[:, 0])) ** 2) for n in nets])

    fit = losses(lin, True)
    assert losses(plain, False).min() > 1e-2
    assert (fit < 1e-6).sum() >= 2  # most seeds fit (one may lose its kink)
    # the fits carry the slope in w: 2 rho(x) - x or 2 rho(-x) + x
    np.testing.assert_allclose(np.abs(lin.params["w"][fit < 1e-6, 0]), 1.0, atol=1e-3)
    assert np.all(plain.params["w"] == 0.0)  # the plain network's w is fixed at 0


@pytest.mark.parametrize(
    "kw",
    [
        dict(d=1),  # the prefix-sum kernel
        dict(d=2, target="teacher"),  # dense
        dict(d=2, target="teacher_labels"),  # logistic, dense
        dict(d=1, bias=False, train_output=False, weight_decay=0.1),
    ],
)
def test_the_flat_gradient_includes_w_and_equals_autograd(kw):
    """The trainer's flat gradient (every trainable parameter in Layout order, w last)
    from the kernel it picks on a CPU, against autograd of the objective written out."""
    specs = [linear(weight_decay=kw.pop("weight_decay", 0.03), **kw, seed=s) for s in range(3)]
    spec = specs[0]
    objective, _ = choose_objective("auto", spec, torch.device("cpu"))
    rng = np.random.default_rng(5)
    ps = []
    for s in specs:
        p = init_params(s)
        p["w"] = rng.standard_normal(p["w"].shape)
        p["e"] = np.asarray(0.2 if s.bias else 0.0)
        ps.append(p)
    data = [make_data(s) for s in specs]
    stacked = {k: torch.tensor(np.stack([p[k] for p in ps])) for k in ps[0]}
    X = torch.tensor(np.stack([d[0] for d in data]))
    Y = torch.tensor(np.stack([d[1] for d in data]))
    lam = torch.tensor([s.weight_decay for s in specs], dtype=torch.float64)
    layout = Layout.of(spec, stacked)
    assert layout.names[-1] == "w"
    _, _, grads = objective(stacked, X, Y, lam)
    flat = layout.flat(grads)

    for m, s in enumerate(specs):
        t = {k: torch.tensor(np.asarray(v, float), requires_grad=True) for k, v in ps[m].items()}
        x, y = torch.tensor(data[m][0]), torch.tensor(data[m][1])
        f = t["e"] + x @ t["w"]
        for i in range(s.width):
            f = f + t["c"][i] * torch.clamp(x @ t["a"][i] + t["b"][i], min=0)
        if s.loss == "logistic":
            loss = torch.nn.functional.softplus(-y * f).mean()
        else:
            loss = ((f - y) ** 2).mean()
        J = loss + s.weight_decay / 2 * ((t["c"] ** 2).sum() + (t["a"] ** 2).sum())
        J.backward()
        ref = torch.cat([t[k].grad.reshape(-1) for k in layout.names])
        assert float(ref[-s.d :].abs().max()) > 1e-3  # w's gradient is not trivially 0
        np.testing.assert_allclose(flat[m].numpy(), ref.numpy(), rtol=1e-11, atol=1e-13)


# ---------------------------------------------------------------------------
# The certificate's Hessian includes w
# ---------------------------------------------------------------------------
def autograd_certificate(spec: RunSpec, params: dict, names) -> tuple[float, float, int]:
    """Gradient norm and smallest Hessian eigenvalue of the run's full-batch objective over
    the parameters ``names`` (the others fixed), by torch.autograd.functional, float64."""
    x, y = (torch.tensor(v) for v in make_data(spec))
    fixed = {k: torch.tensor(np.asarray(v, float)) for k, v in params.items()}
    shapes = [fixed[k].shape for k in names]
    theta0 = torch.cat([fixed[k].reshape(-1) for k in names])

    def J(theta):
        p, i = dict(fixed), 0
        for k, shape in zip(names, shapes, strict=True):
            size = int(np.prod(shape))
            p[k] = theta[i : i + size].reshape(shape)
            i += size
        f = torch.relu(x @ p["a"].T + p["b"]) @ p["c"] + x @ p["w"] + p["e"]
        if spec.loss == "logistic":
            loss = torch.nn.functional.softplus(-y * f).mean()
        else:
            loss = ((f - y) ** 2).mean()
        return loss + spec.weight_decay / 2 * ((p["c"] ** 2).sum() + (p["a"] ** 2).sum())

    theta = theta0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(J(theta), theta)
    H = torch.autograd.functional.hessian(J, theta0)
    return float(g.norm()), float(torch.linalg.eigvalsh(H)[0]), theta0.numel()


@pytest.mark.parametrize(
    "kw, dense",
    [
        (dict(d=2, target="teacher", n_samples=40, weight_decay=1e-3), True),  # closed form
        (dict(d=2, target="teacher", n_samples=40), False),  # Lanczos, torch.func products
        (dict(d=2, target="teacher_labels", n_samples=40, weight_decay=1e-2), True),  # func
    ],
)
def test_the_certificate_includes_w(kw, dense):
    specs = [linear(width=3, steps=40, seed=s, **kw) for s in range(3)]
    result = train_shard(specs, F64)
    P = sum(int(np.prod(result.params[k].shape[1:])) for k in trainable_names(specs[0]))
    options = {} if dense else {"dense_max_params": 0, "lanczos_steps": P}
    names = trainable_names(specs[0])
    assert names[-1] == "w"
    for m, cert in enumerate(certify(result, **options)):
        params = {k: v[m] for k, v in result.params.items()}
        gnorm, min_eig, n = autograd_certificate(specs[m], params, names)
        assert cert["n_params"] == n == P
        assert cert["eig_method"] == ("dense" if dense else "lanczos")
        assert cert["grad_norm"] == pytest.approx(gnorm, rel=1e-10)
        assert cert["min_eig"] == pytest.approx(min_eig, rel=1e-8, abs=1e-10)
        # w's block counts: the certificate without it is another
        g_no_w, eig_no_w, _ = autograd_certificate(specs[m], params, names[:-1])
        assert abs(g_no_w - gnorm) > 1e-6 * gnorm or abs(eig_no_w - min_eig) > 1e-6


# ---------------------------------------------------------------------------
# A run depends on its spec alone
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [dict(), dict(d=2, target="teacher", n_samples=60, batch_size=16, optimizer="sgd", lr=5e-3)],
)
def test_a_linear_term_run_alone_equals_the_run_in_a_shard(kw):
    lr = kw.pop("lr", 1e-2)
    specs = [linear(width=8, steps=120, **kw, seed=s, lr=lr * (1 + s % 3)) for s in range(129)]
    m = 64
    alone, shard = train_shard([specs[m]]), train_shard(specs)
    for k in ("a", "b", "c", "e", "w"):
        ref = alone.params[k][0]
        err = np.abs(shard.params[k][m] - ref).max() / max(np.abs(ref).max(), 1e-12)
        assert err <= 1e-6, k
    assert np.abs(alone.params["w"]).max() > 1e-3  # w moved
    assert shard.status[m] == alone.status[0]


def test_a_shard_does_not_mix_the_plain_and_the_linear_model():
    with pytest.raises(ValueError, match="one shape"):
        train_shard([linear(), linear(linear_term=False, seed=1)])


def test_the_gaussian_model_reads_no_linear_term():
    """The population model has no affine part: like a restricted run, a gaussian run
    reads linear_term False, so a sweep with linear_term: true plans its gaussian runs
    with the keys they had without it."""
    kw = dict(target="gaussian", d=3, teacher_width=2, width=2, bias=False, train_output=False)
    spec = RunSpec(**kw, linear_term=True)
    assert not spec.linear_term and not spec.has_linear
    assert run_key(spec) == run_key(RunSpec(**kw))


# ---------------------------------------------------------------------------
# Keys, and the plain unrestricted run unchanged
# ---------------------------------------------------------------------------
DOC = sweep_config(
    name="linear-term", widths=[2], seeds=2, optimizer={"steps": 20}, data={"n_samples": 16}
)


def test_keys_of_the_plain_runs_do_not_change():
    assert RunSpec().to_dict() == RunSpec(linear_term=False).to_dict()
    assert "linear_term" not in RunSpec().to_dict()
    assert run_key(RunSpec(linear_term=True)) != run_key(RunSpec())
    # restricted runs read False: their keys stay whatever the switch says
    res = RunSpec(parametrization="restricted")
    assert dataclasses.replace(res, linear_term=True).to_dict() == res.to_dict()

    plain = {r.spec: r.key for r in plan_runs(parse_config(DOC))}
    same = {r.spec: r.key for r in plan_runs(parse_config({**DOC, "linear_term": False}))}
    assert plain == same
    lin = plan_runs(parse_config({**DOC, "linear_term": True}))
    for r in lin:
        assert r.spec.linear_term == (r.spec.parametrization == "unrestricted")
        assert (r.key in plain.values()) == r.spec.restricted


def test_analysis_units_keep_their_keys_and_seed_pairs_read_w(monkeypatch):
    import realspace.core.inverse as inverse

    base = analysis.plan_analysis(parse_config(DOC), plan_runs(parse_config(DOC)))
    off = parse_config({**DOC, "linear_term": False})
    assert [u.key for u in analysis.plan_analysis(off, plan_runs(off))] == [u.key for u in base]
    assert all("linear" not in u.inputs for u in base)
    on = parse_config({**DOC, "linear_term": True})
    pairs = [u for u in analysis.plan_analysis(on, plan_runs(on)) if u.stage == "seed_pairs"]
    assert {u.inputs["restricted"]: u.inputs.get("linear", False) for u in pairs} == {
        False: True,
        True: False,
    }

    seen = []
    monkeypatch.setattr(
        inverse, "seed_pair_table", lambda nets, D, closest: seen.extend(nets) or []
    )
    p = params_of(random_net(np.random.default_rng(0), 3, 1, restricted=True))
    unit = next(u for u in pairs if not u.inputs["restricted"])
    analysis.compute_unit("seed_pairs", unit.inputs, [p, p])
    assert all(np.array_equal(n.linear, p["w"]) for n in seen) and len(seen) == 2


def test_plain_unrestricted_runs_keep_w_exactly_zero():
    """Bit-identical to before for the plain model: w is not trained (not in the flat
    parameters, so the optimizer's state and every update are those of before) and stays
    exactly 0; its records read the network without a linear part."""
    spec = RunSpec(target="sin", width=4, n_samples=32, steps=50)
    assert trainable_names(spec) == ("a", "b", "e", "c")
    (rec,) = train_and_record([spec])
    assert np.all(rec.params["w"] == 0.0) and rec.network.w is None


# ---------------------------------------------------------------------------
# Records, stored end points and analysis stages read w
# ---------------------------------------------------------------------------
def test_records_and_stored_end_points_rebuild_the_linear_network(tmp_path):
    from realspace import stats
    from realspace.tracking.tables import (
        Piece,
        piece_arrays,
        piece_name,
        piece_rows,
        put_piece,
        read_arrays,
        read_table,
    )
    from realspace.tracking.views import _curve

    specs = [linear(width=3, steps=80, seed=s) for s in range(2)]
    records = train_and_record(specs, F64)
    x = np.linspace(-1.0, 1.0, 501)[:, None]
    for rec in records:
        net = rec.network
        assert np.array_equal(net.w, rec.params["w"]) and np.abs(net.w).max() > 1e-3
        # the canonical form (claim 4's) realizes the trained network, w included
        assert rec.canonical_member
        np.testing.assert_allclose(rec.canonical(x), net(x), rtol=0, atol=1e-10)
        np.testing.assert_allclose(rec.eval_f, net(rec.eval_x), rtol=0, atol=0)
        xs, f, _ = _curve(rec.spec, rec.params)
        np.testing.assert_allclose(f, net(xs[:, None]), rtol=0, atol=1e-15)

    plain = train_and_record([dataclasses.replace(specs[0], linear_term=False)], F64)
    keys = ["lin-0", "lin-1", "plain"]
    recs = records + plain
    uri = f"file://{tmp_path}"
    name = piece_name(keys)
    put_piece(None, "run", uri, name, piece_rows(keys, recs, "s", None), piece_arrays(keys, recs))
    piece = Piece("run", uri, name)
    df, ends = read_table(None, piece), read_arrays(None, piece)
    for spec, (_, row), rec in zip(stats.specs_of(df), df.iterrows(), recs, strict=True):
        assert spec == rec.spec
        end = ends[row["run_key"]]
        np.testing.assert_array_equal(end["w"], rec.params["w"])
        again = network_from_params(end, spec.has_linear)
        np.testing.assert_array_equal(again(x), rec.network(x))


def test_stability_rows_of_a_linear_network():
    """Claim 3's free-neuron rows take the trained w: g = R Theta + s rho(...) keeps it
    (d_W = delta exactly), and a neuron affine on Q is free when w can absorb it."""
    D = 1.0
    live = dict(a=[[1.0], [-1.5]], b=[0.3, -0.3], c=[0.8, -1.1])
    # the third neuron is affine on Q (kink at -2): free only with a linear part
    a, b, c = live["a"] + [[1.0]], live["b"] + [2.0], live["c"] + [0.5]
    theta = ShallowNet(a, b, c, 0.1, [0.7])
    assert free_neurons(theta, D).tolist() == [False, False, True]
    assert free_neurons(ShallowNet(a, b, c, 0.1), D).tolist() == [False, False, False]
    rows = free_neuron_rows(theta, D, deltas=(1e-1, 1e-3))
    assert [r["d_W"] for r in rows] == pytest.approx([1e-1, 1e-3], rel=1e-12)

    spec = linear(width=3)
    p = params_of(theta)
    unit = {"kinds": ["add"], "deltas": [1e-1, 1e-3], "specs": [spec.to_dict()], "keys": ["k"]}
    got = analysis.compute_unit("stability", unit, [p])
    assert [r["d_W"] for r in got] == pytest.approx([1e-1, 1e-3], rel=1e-12)
    plain = dataclasses.replace(spec, linear_term=False)
    assert analysis.compute_unit("stability", {**unit, "specs": [plain.to_dict()]}, [p]) == []


def test_witness_and_retraining_read_the_linear_network(monkeypatch):
    import realspace.core.witness as witness
    import realspace.train.retrain as retrain

    spec = linear(width=3, n_samples=16)
    p = params_of(random_net(np.random.default_rng(3), 3, 1, restricted=True))

    seen = []

    class Found:
        def to_row(self):
            return {}

    def fake_witness(net, *args, **kwargs):
        seen.append(net)
        return Found()

    monkeypatch.setattr(witness, "find_witness", fake_witness)
    unit = {"specs": [spec.to_dict()], "keys": ["k"]}
    analysis.compute_unit("witness", unit, [p])
    assert np.array_equal(seen[0].linear, p["w"])

    trained = []
    real = retrain.train_shard

    def spy(specs, options=None, init=None, data=None):
        trained.append((specs[0], init[0]))
        return real(specs, options, init=init, data=data)

    monkeypatch.setattr(retrain, "train_shard", spy)
    rows = retrain.retrain_table(spec, p, "unrestricted", ["add"], [1e-2], 5, 1e-4)
    run, init = trained[0]
    assert run.linear_term and "w" in trainable_names(run)
    np.testing.assert_array_equal(init["w"], p["w"])
    assert rows and rows[0]["floor_fit_d_inf"] < 1e-2  # the control starts at R(Gamma)
