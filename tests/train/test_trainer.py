import dataclasses
import re

import numpy as np
import pytest
import torch

from realspace import in_restricted_set
from realspace.train import (
    RunSpec,
    RunStatus,
    TrainOptions,
    certify,
    init_params,
    make_data,
    network_from_params,
    teacher_rows,
    train_and_record,
    train_shard,
)
from realspace.train.model import gaussian_objective, mse_objective, mse_objective_1d
from realspace.train.project import rebalance

F64 = TrainOptions(dtype=torch.float64)


def base(**kw):
    spec = dict(target="sin", width=8, n_samples=64, steps=150, lr=1e-2, seed=0)
    spec.update(kw)
    return RunSpec(**spec)


def rel_err(x, y):
    return np.abs(x - y).max() / max(np.abs(y).max(), 1e-12)


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "variant",
    [
        dict(),
        dict(
            parametrization="restricted",
            optimizer="sgd",
            lr=5e-3,
            batch_size=16,
            target="teacher",
            d=2,
            n_samples=100,
        ),
    ],
)
def test_a_run_alone_equals_the_run_in_a_shard_of_512(variant):
    lr = variant.get("lr", 1e-2)
    specs = [base(**{**variant, "seed": s, "lr": lr * (1 + s % 3)}) for s in range(513)]
    if "batch_size" in variant:
        specs = specs[:129]  # minibatch + projections: a smaller shard keeps the test fast
    target = specs[len(specs) // 2]
    alone = train_shard([target])
    shard = train_shard(specs)
    m = len(specs) // 2
    for k in ("a", "b", "c", "e", "w"):
        assert rel_err(shard.params[k][m], alone.params[k][0]) <= 1e-6, k
    assert shard.status[m] == alone.status[0]


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(target="teacher", d=3, width=7, sampling="uniform"),
        dict(target="spirals", d=2, n_classes=3, width=5),
        dict(target="gaussian", d=3, teacher_width=2, bias=False, train_output=False),
        dict(bias=False, width=3),
    ],
)
def test_a_shard_starts_where_each_run_alone_starts(kw):
    """``init_shard`` (the trainer's start) is ``init_params`` of each run, bit for bit,
    whatever the shard's other runs (per-run domains and scales included)."""
    from realspace.core.problem import init_shard

    specs = [base(**kw, seed=s, D=1 + s % 3, init_scale=0.5 + s % 2) for s in range(40)]
    one = [init_params(s) for s in specs]
    stacked = init_shard(specs)
    for k in ("a", "b", "c", "e", "w"):
        np.testing.assert_array_equal(stacked[k], np.stack([p[k] for p in one]), err_msg=k)


@pytest.mark.parametrize(
    "kw", [dict(), dict(d=3, target="teacher"), dict(n_classes=3, d=2, target="spirals")]
)
def test_a_network_starts_as_science_md_says(kw):
    """init_params against its formulas, drawn from the run's own stream in order:
    a ~ N(0, I/d) init_scale, kinks through uniform points p of Q (b = -<a, p>),
    c ~ N(0, I_m/N) init_scale, e = w = 0."""
    from realspace.core.problem import STREAM_INIT, rng_for

    spec = base(**kw, seed=11, width=6, D=1.5, init_scale=0.7)
    N, d, m = spec.width, spec.d, spec.outputs
    rng = rng_for(11, STREAM_INIT)
    a = rng.standard_normal((N, d)) * 0.7 / np.sqrt(d)
    p = rng.uniform(-1.5, 1.5, (N, d))
    c = rng.standard_normal((N, m) if m > 1 else N) * 0.7 / np.sqrt(N)
    got = init_params(spec)
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_allclose(got["b"], -np.einsum("id,id->i", a, p), rtol=1e-15, atol=1e-15)
    np.testing.assert_array_equal(got["c"], c)
    assert not np.any(got["e"]) and not np.any(got["w"])
    assert got["e"].shape == ((m,) if m > 1 else ()) and got["w"].shape == (
        (m, d) if m > 1 else (d,)
    )


def test_a_teacher_is_drawn_once_per_problem_and_cannot_be_changed():
    from realspace.core.targets import random_teacher
    from realspace.train import teacher_net

    spec = base(target="teacher", d=2, teacher_width=3, teacher_seed=5)
    teacher = teacher_net(spec)
    assert teacher_net(dataclasses.replace(spec, seed=9, width=2)) is teacher
    assert teacher_net(dataclasses.replace(spec, teacher_seed=6)) is not teacher
    fresh = random_teacher(3, 2, 1.0, np.random.default_rng(5), outputs=1)
    for k in ("a", "b", "c", "e", "w"):
        np.testing.assert_array_equal(getattr(teacher, k), getattr(fresh, k), err_msg=k)
    with pytest.raises(ValueError, match="read-only"):
        teacher.a[0, 0] = 1.0


def test_same_spec_same_result_and_seed_matters():
    r1, r2 = train_shard([base(seed=3)]), train_shard([base(seed=3)])
    r3 = train_shard([base(seed=4)])
    assert np.array_equal(r1.params["a"], r2.params["a"])
    assert not np.allclose(r1.params["a"], r3.params["a"])


def pair_kernel(u, v):
    """E[rho(<u,x>) rho(<v,x>)] through arccos, for one non-parallel pair."""
    nu, nv = u.norm(), v.norm()
    t = torch.arccos(torch.clamp(u @ v / (nu * nv), -1, 1))
    return nu * nv * (torch.sin(t) + (np.pi - t) * torch.cos(t)) / (2 * np.pi)


def reference_gaussian_loss(W, V):
    """(1/2) E[(sum rho(<w_i,x>) - sum rho(<v_j,x>))^2], pair by pair; E[rho(<w,x>)^2] = |w|^2/2."""
    total = sum(0.5 * (w @ w) for w in W) + sum(0.5 * (v @ v) for v in V)
    for i in range(len(W)):
        total = total + sum(2 * pair_kernel(W[i], W[j]) for j in range(i + 1, len(W)))
        total = total - sum(2 * pair_kernel(W[i], v) for v in V)
    for i in range(len(V)):
        total = total + sum(2 * pair_kernel(V[i], V[j]) for j in range(i + 1, len(V)))
    return 0.5 * total


# ---------------------------------------------------------------------------
# Gradients against per-network autograd (float64), every variant
# ---------------------------------------------------------------------------
def autograd_mse(spec, params, x, y):
    t = {k: torch.tensor(np.asarray(v, float), requires_grad=True) for k, v in params.items()}
    X, Y = torch.tensor(x), torch.tensor(y)
    f = torch.zeros(len(x), dtype=torch.float64)
    for i in range(spec.width):  # neuron by neuron: nothing shared with the stacked code
        f = f + t["c"][i] * torch.clamp(X @ t["a"][i] + t["b"][i], min=0)
    f = f + X @ t["w"] + t["e"]
    J = ((f - Y) ** 2).mean() + spec.weight_decay / 2 * ((t["c"] ** 2).sum() + (t["a"] ** 2).sum())
    J.backward()
    return float(J.detach()), {k: v.grad.numpy() for k, v in t.items()}


@pytest.mark.parametrize(
    "variant",
    [
        dict(),
        dict(bias=False),
        dict(train_output=False),
        dict(parametrization="restricted", d=3, target="bump"),
        dict(weight_decay=0.1, d=2, target="teacher"),
        dict(width=12, n_samples=12),  # N = n: the two layouts have one shape
        dict(d=17, target="teacher", sampling="uniform", width=18, n_samples=20),  # bmm
    ],
)
@pytest.mark.parametrize("neuron_major", [False, True])  # the graph kernel's layout
def test_stacked_mse_gradients_equal_autograd(variant, neuron_major):
    specs = [base(seed=s, **variant) for s in range(4)]
    ps = [init_params(s) for s in specs]
    for p in ps:
        p["w"] = (
            np.random.default_rng(1).standard_normal(p["w"].shape)
            if specs[0].restricted
            else p["w"]
        )
        p["e"] = np.array(0.3)
    data = [make_data(s) for s in specs]
    stacked = {k: torch.tensor(np.stack([p[k] for p in ps])) for k in ps[0]}
    X = torch.tensor(np.stack([d[0] for d in data]))
    Y = torch.tensor(np.stack([d[1] for d in data]))
    lam = torch.tensor([s.weight_decay for s in specs], dtype=torch.float64)
    J, _, grads = mse_objective(stacked, X, Y, lam, neuron_major=neuron_major)
    for m, spec in enumerate(specs):
        J_ref, g_ref = autograd_mse(spec, ps[m], *data[m])
        assert float(J[m]) == pytest.approx(J_ref, rel=1e-13)
        for k in ("a", "b", "c", "e", "w"):
            np.testing.assert_allclose(grads[k][m].numpy(), g_ref[k], rtol=1e-11, atol=1e-13)


def test_stacked_gaussian_gradient_equals_autograd():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 5, 4))
    V = rng.standard_normal((3, 2, 4))
    Wt = torch.tensor(W, requires_grad=True)
    Vt = torch.tensor(V)
    L = torch.stack([reference_gaussian_loss(Wt[m], Vt[m]) for m in range(3)])
    L.sum().backward()
    p = {"a": torch.tensor(W), "c": torch.ones(3, 5, dtype=torch.float64)}
    _, loss, grads = gaussian_objective(p, Vt, torch.zeros(3, dtype=torch.float64))
    np.testing.assert_allclose(loss.numpy(), L.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grads["a"].numpy(), Wt.grad.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# Gaussian teacher-student: the teacher is a certified global minimum
# ---------------------------------------------------------------------------
def gaussian_spec(**kw):
    spec = dict(
        target="gaussian",
        d=4,
        teacher_width=3,
        width=3,
        bias=False,
        train_output=False,
        optimizer="gd",
        lr=1.0,
        steps=4000,
        seed=0,
        teacher_seed=5,
    )
    spec.update(kw)
    return RunSpec(**spec)


def test_teacher_start_is_zero_loss_and_certified():
    spec = gaussian_spec(steps=1)
    p = init_params(spec)
    p["a"] = teacher_rows(spec)
    rec = train_and_record([spec], F64, init=[p])[0]
    assert rec.loss < 1e-14 and rec.grad_norm < 1e-12
    assert rec.min_eig > 0 and rec.certified


def test_perturbed_teacher_start_converges_back():
    spec = gaussian_spec()
    p = init_params(spec)
    p["a"] = teacher_rows(spec) + 0.05 * np.random.default_rng(1).standard_normal((3, 4))
    rec = train_and_record([spec], F64, init=[p])[0]
    assert rec.loss < 1e-10
    assert rec.certified
    np.testing.assert_allclose(rec.params["a"], teacher_rows(spec), atol=1e-4)


# ---------------------------------------------------------------------------
# Restricted parametrization
# ---------------------------------------------------------------------------
def test_every_recorded_restricted_state_is_in_the_restricted_set():
    specs = [
        base(seed=s, parametrization="restricted", target=t, d=d, steps=200, lr=2e-2)
        for s in range(6)
        for t, d in (("sin", 1), ("teacher", 2))
    ]
    for group in (specs[0::2], specs[1::2]):
        result = train_shard(group, TrainOptions(snapshot_every=20, merge_every=10))
        assert len(result.snapshots) == 10
        states = [snap for _, snap in result.snapshots] + [result.params]
        for params in states:
            for m, spec in enumerate(group):
                net = network_from_params({k: v[m] for k, v in params.items()}, True)
                assert in_restricted_set(net, spec.D), (spec, net)


def test_rebalancing_never_changes_the_realization():
    rng = np.random.default_rng(0)
    M, N, d = 50, 12, 3
    p = {
        "a": torch.tensor(rng.standard_normal((M, N, d)) * rng.uniform(0.01, 10, (M, N, 1))),
        "b": torch.tensor(rng.standard_normal((M, N))),
        "c": torch.tensor(rng.standard_normal((M, N)) * rng.uniform(0.01, 10, (M, N))),
        "e": torch.tensor(rng.standard_normal(M)),
        "w": torch.tensor(rng.standard_normal((M, d))),
    }
    q = rebalance(p, torch.ones(M, dtype=torch.bool))
    x = rng.uniform(-1, 1, (500, d))
    for m in range(M):
        f = network_from_params({k: v[m].numpy() for k, v in p.items()}, True)
        g = network_from_params({k: v[m].numpy() for k, v in q.items()}, True)
        assert rel_err(g(x), f(x)) <= 1e-10
        np.testing.assert_allclose(np.abs(g.c), np.linalg.norm(g.a, axis=1), rtol=1e-14)


# a width-5 network on Q = [-1, 1] with one of each projection event planted (d = 1):
PLANTED = {
    "a": np.array([[1.0], [2.0], [1.0], [-1.0], [0.5]]),
    "b": np.array([0.2, 0.4, -3.0, 0.5, 0.1]),
    "c": np.array([1.0, 0.5, 0.7, -0.8, 0.0]),
    "e": np.zeros(()),
    "w": np.zeros(1),
}
# neuron 1 is neuron 0 scaled by 2, one hyperplane (a merge, which frees neuron 1); the kink
# of neuron 2 sits at x = 3, outside the cube (a kink clamp); neuron 4 has c = 0 (a fold,
# which frees it); neuron 3 is generic. Two freed neurons: two reseeds.
PLANTED_COUNTS = {"folded": 1, "kink": 1, "merge": 1, "reseed": 2}


@pytest.mark.parametrize("method", ["projection", "intrinsic"])
def test_projection_counts_are_recorded(method):
    """A restricted run started from a network with one planted duplicate pair, one kink
    outside the cube and one silent neuron records exactly those events: the first
    projection (step 0) takes the start into Omega_N, and a gradient tolerance no
    gradient meets stops the run there, so no later step adds any."""
    spec = base(
        width=5,
        parametrization="restricted",
        restricted_method=method,
        grad_tol=1e9,
    )
    rec = train_and_record([spec], F64, init=[PLANTED])[0]
    assert rec.steps == 0 and rec.status == "converged"
    assert rec.projections == PLANTED_COUNTS
    unres = train_and_record([base(steps=10)])[0]
    assert unres.projections == dict.fromkeys(PLANTED_COUNTS, 0)


# ---------------------------------------------------------------------------
# Stopping, divergence, checkpoints
# ---------------------------------------------------------------------------
def test_per_run_budgets_and_finished_networks_stop_changing():
    specs = [base(seed=1, steps=40), base(seed=1, steps=150), base(seed=2, steps=90)]
    shard = train_shard(specs)
    assert shard.steps.tolist() == [40, 150, 90]
    short = train_shard([specs[0]])
    np.testing.assert_allclose(shard.params["a"][0], short.params["a"][0], rtol=1e-6)


def test_gradient_tolerance_and_plateau_stop_networks():
    specs = [
        base(seed=0, grad_tol=1e9),
        base(seed=0, plateau_patience=5, plateau_rel_tol=0.9),
        base(seed=0),
    ]
    rec = train_and_record(specs)
    assert [r.status for r in rec] == ["converged", "plateau", "budget"]
    assert rec[0].steps == 0 and 0 < rec[1].steps < 150 and rec[2].steps == 150


def test_divergence_is_isolated():
    specs = [base(seed=s) for s in range(5)]
    specs[2] = base(seed=2, optimizer="gd", lr=1e6)
    specs = [dataclasses.replace(s, optimizer="gd", lr=s.lr if s.seed == 2 else 0.1) for s in specs]
    shard = train_shard(specs)
    assert shard.status[2] == RunStatus.DIVERGED and shard.diverged_step[2] >= 0
    assert np.all(np.isfinite(shard.params["a"][2]))  # the last finite state is kept
    for m in (0, 1, 3, 4):
        solo = train_shard([specs[m]])
        assert shard.status[m] == solo.status[0]
        np.testing.assert_allclose(shard.params["a"][m], solo.params["a"][0], rtol=1e-6)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("dtype, exact", [(torch.float64, True), (torch.float32, False)])
@pytest.mark.parametrize(
    "variant", [dict(), dict(parametrization="restricted", batch_size=16, optimizer="sgd")]
)
def test_checkpoint_resume_equals_uninterrupted(tmp_path, dtype, exact, variant):
    specs = [base(seed=s, steps=200, **variant) for s in range(4)]
    full = train_shard(specs, TrainOptions(dtype=dtype))
    ck = tmp_path / "shard.pt"
    opts = TrainOptions(dtype=dtype, checkpoint=ck, checkpoint_every=30)

    def crash(step, total, active):
        if step >= 112:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_shard(specs, opts, progress=crash)
    assert ck.exists()
    resumed = train_shard(specs, opts)
    for k in full.params:
        if exact:
            assert np.array_equal(resumed.params[k], full.params[k]), k
        else:
            assert rel_err(resumed.params[k], full.params[k]) <= 1e-6, k
    assert np.array_equal(resumed.steps, full.steps)
    np.testing.assert_array_equal(resumed.history_step, full.history_step)


def test_checkpoint_of_another_shard_is_refused(tmp_path):
    ck = tmp_path / "s.pt"
    train_shard([base(steps=5)], TrainOptions(checkpoint=ck))
    with pytest.raises(ValueError, match="different shard"):
        train_shard([base(steps=5, seed=9)], TrainOptions(checkpoint=ck))


def test_checkpoint_with_other_fields_is_refused(tmp_path):
    ck = tmp_path / "s.pt"
    train_shard([base(steps=5)], TrainOptions(checkpoint=ck))
    saved = torch.load(ck, weights_only=True)
    saved["state"] = saved.pop("opt_state")  # the field's name before the loop state had one
    torch.save(saved, ck)
    with pytest.raises(ValueError, match="another version"):
        train_shard([base(steps=5)], TrainOptions(checkpoint=ck))


# ---------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------
def dense_reference_min_eig(spec, params):
    names = (
        ["a"]
        + (["b", "e"] if spec.bias else [])
        + (["c"] if spec.train_output else [])
        + (["w"] if spec.restricted else [])
    )
    if spec.loss == "mse":
        x, y = (torch.tensor(v) for v in make_data(spec))
    V = torch.tensor(teacher_rows(spec))
    shapes = [np.shape(params[k]) for k in names]

    def J(theta):
        p, i = {k: torch.tensor(np.asarray(v, float)) for k, v in params.items()}, 0
        for k, s in zip(names, shapes, strict=True):
            size = int(np.prod(s))
            p[k] = theta[i : i + size].reshape(s)
            i += size
        if spec.loss == "mse":
            f = torch.relu(x @ p["a"].T + p["b"]) @ p["c"] + x @ p["w"] + p["e"]
            return ((f - y) ** 2).mean() + spec.weight_decay / 2 * (
                (p["c"] ** 2).sum() + (p["a"] ** 2).sum()
            )
        return reference_gaussian_loss(p["a"], V)

    theta = torch.cat([torch.tensor(np.asarray(params[k], float)).reshape(-1) for k in names])
    H = torch.autograd.functional.hessian(J, theta).numpy()
    return np.linalg.eigvalsh(H)[0]


@pytest.mark.parametrize(
    "spec",
    [
        base(width=4, steps=300, lr=3e-2),
        base(width=3, d=2, target="teacher", teacher_width=2, steps=300, weight_decay=1e-3),
        base(width=5, parametrization="restricted", steps=200, bias=True),
        gaussian_spec(width=4, steps=300, lr=0.5, teacher_width=2, d=3),
    ],
)
def test_hessian_eigenvalue_matches_dense_eigensolver(spec):
    specs = [dataclasses.replace(spec, seed=s) for s in range(3)]
    result = train_shard(specs, F64)
    dense = certify(result, dense_max_params=10_000)
    lanczos = certify(result, dense_max_params=0)
    for m, s in enumerate(specs):
        ref = dense_reference_min_eig(s, {k: v[m] for k, v in result.params.items()})
        assert dense[m]["min_eig"] == pytest.approx(ref, abs=1e-8 * max(1, abs(ref)) + 1e-9)
        assert lanczos[m]["min_eig"] == pytest.approx(ref, abs=1e-6 * max(1, abs(ref)))
        assert "lanczos" in lanczos[m]["eig_method"]


def test_kink_proximity_is_flagged():
    spec = base(width=2, steps=1, lr=1e-12, sampling="grid", n_samples=11)
    p = init_params(spec)
    p["a"], p["b"] = np.array([[1.0], [2.0]]), np.array([0.0, 0.3])  # x = 0 is a grid point
    rec = train_and_record([spec], F64, init=[p])[0]
    assert rec.near_kink and rec.min_kink_distance < 1e-9


# ---------------------------------------------------------------------------
# Records and input checks
# ---------------------------------------------------------------------------
def test_record_contents():
    rec = train_and_record([base(d=2, target="teacher", steps=250)])[0]
    assert rec.history_loss.size <= 200 and rec.history_step[0] == 0
    assert np.all(np.diff(rec.history_step) > 0)
    assert rec.eval_f.shape == (101 * 101,) and rec.eval_grad.shape == (101 * 101, 2)
    assert rec.canonical.restricted and rec.dtype == "float32"
    s = rec.summary()
    assert s["status"] == "budget" and s["steps"] == 250 and "margin_min_kink_margin" in s


def test_eval_grid_fields_are_computed_when_read_and_equal_the_eager_ones():
    import pickle

    from realspace.core.problem import eval_grid, target_on

    specs = [base(steps=20, seed=s) for s in range(2)] + [base(steps=20, seed=2, d=2)]
    recs = train_and_record(specs[:2]) + train_and_record(specs[2:])
    for rec in recs:
        unread = pickle.loads(pickle.dumps(rec))  # as a worker sends it: no arrays yet
        assert not any(k.startswith("_eval") for k in vars(unread))
        net, x = rec.network, eval_grid(rec.spec.d, rec.spec.D)
        for r in (rec, unread):
            np.testing.assert_array_equal(r.eval_x, x)
            np.testing.assert_array_equal(r.eval_f, net(x))
            np.testing.assert_array_equal(r.eval_grad, net.gradient(x))
            np.testing.assert_array_equal(r.eval_target, target_on(rec.spec, x))
    # one grid and one target array for the runs that share them, neither writable
    assert recs[0].eval_x is recs[1].eval_x and recs[0].eval_target is recs[1].eval_target
    assert not recs[0].eval_x.flags.writeable and not recs[0].eval_target.flags.writeable
    # values given to the constructor are kept as given
    given = dataclasses.replace(recs[0], eval_f=np.zeros(3), eval_x=None)
    assert given.eval_x is None and given.eval_f.tolist() == [0.0, 0.0, 0.0]
    gauss = train_and_record([gaussian_spec(width=2, steps=5, d=2)])[0]
    assert gauss.eval_x is None and gauss.eval_f is None and gauss.eval_target is None


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(width=0), "width must be in (0, 1048576], got 0"),
        (dict(target="nope"), "unknown target"),
        (dict(optimizer="lbfgs"), "optimizer must be"),
        (dict(lr=-1.0), "lr must be > 0"),
        (dict(target="gaussian"), "no biases"),
        (dict(target_params=(("freq", 2.0), ("phase", 1.0))), "parameters"),
    ],
)
def test_bad_specs_are_refused(kw, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        base(**kw)


def test_mixed_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        train_shard([base(width=4), base(width=5)])


@pytest.mark.parametrize("kind", ["gd", "sgd", "adam"])
def test_stacked_optimizers_equal_torch_optim(kind):
    """Per-network hyperparameters inside one shard reproduce torch.optim run network by network."""
    specs = [
        base(
            seed=s,
            optimizer=kind,
            lr=lr,
            momentum=mu,
            beta1=b1,
            weight_decay=wd,
            steps=60,
            d=2,
            target="teacher",
        )
        for s, (lr, mu, b1, wd) in enumerate([(1e-2, 0.9, 0.9, 0.0), (3e-2, 0.5, 0.8, 1e-2)])
    ]
    shard = train_shard(specs, F64)
    for m, spec in enumerate(specs):
        p0 = init_params(spec)
        x, y = (torch.tensor(v) for v in make_data(spec))
        t = {
            k: torch.tensor(np.asarray(p0[k], float), requires_grad=True)
            for k in ("a", "b", "c", "e")
        }
        if kind == "gd":
            opt = torch.optim.SGD(t.values(), lr=spec.lr)
        elif kind == "sgd":
            opt = torch.optim.SGD(t.values(), lr=spec.lr, momentum=spec.momentum)
        else:
            opt = torch.optim.Adam(
                t.values(), lr=spec.lr, betas=(spec.beta1, spec.beta2), eps=spec.eps
            )
        for _ in range(spec.steps):
            opt.zero_grad()
            f = torch.relu(x @ t["a"].T + t["b"]) @ t["c"] + t["e"]
            J = ((f - y) ** 2).mean() + spec.weight_decay / 2 * (
                (t["c"] ** 2).sum() + (t["a"] ** 2).sum()
            )
            J.backward()
            opt.step()
        for k in t:
            np.testing.assert_allclose(
                shard.params[k][m], t[k].detach().numpy(), rtol=1e-9, atol=1e-12
            )


def test_one_dimensional_kernel_equals_dense_kernel():
    """The prefix-sum objective of d = 1 against the dense one, float64, with neurons of
    every kind (rising, falling, a = 0 always on, a = 0 never on) and minibatches."""
    rng = np.random.default_rng(0)
    M, N, n = 7, 13, 50
    x = np.sort(rng.uniform(-1, 1, (M, n)), axis=1)
    p = {
        "a": rng.standard_normal((M, N, 1)),
        "b": rng.standard_normal((M, N)),
        "c": rng.standard_normal((M, N)),
        "e": rng.standard_normal(M),
        "w": rng.standard_normal((M, 1)),
    }
    p["a"][:, :2] = 0.0
    p["b"][:, 0], p["b"][:, 1] = 0.7, -0.7
    p = {k: torch.tensor(v) for k, v in p.items()}
    X, Y = torch.tensor(x[..., None]), torch.tensor(rng.standard_normal((M, n)))
    lam = torch.tensor(rng.uniform(0, 0.1, M))
    J1, L1, g1 = mse_objective_1d(p, X, Y, lam)
    J2, L2, g2 = mse_objective(p, X, Y, lam)
    np.testing.assert_allclose(J1.numpy(), J2.numpy(), rtol=1e-12)
    for k in g2:
        np.testing.assert_allclose(g1[k].numpy(), g2[k].numpy(), rtol=1e-10, atol=1e-12)
    a = train_shard([base(seed=1, batch_size=16)], TrainOptions(dtype=torch.float64))
    b = train_shard(
        [base(seed=1, batch_size=16)], TrainOptions(dtype=torch.float64, kernel="dense")
    )
    for k in a.params:
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-9, atol=1e-12)
