"""Intrinsic coordinates of Omega_N (train/intrinsic.py) and the merges and reseeds of the
restricted trainer. Math in float64."""

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from realspace import in_restricted_set
from realspace.core.restricted import MERGE_ANGLE, restricted_set_margins
from realspace.train import RunSpec, TrainOptions, intrinsic, network_from_params, train_shard
from realspace.train.model import mse_objective, realization
from realspace.train.project import COUNTERS, merge_close, reseed_draws

F64 = torch.float64


def coordinates(rng, M, N, d, kappa_scale=3.0):
    """Random coordinates: directions of any length, kinks anywhere, amplitudes of both
    signs over several decades."""
    v = rng.standard_normal((M, N, d)) * rng.uniform(0.1, 10, (M, N, 1))
    r = rng.choice([-1, 1], (M, N)) * 10 ** rng.uniform(-3, 1, (M, N))
    return {
        "v": torch.tensor(v),
        "kappa": torch.tensor(rng.standard_normal((M, N)) * kappa_scale),
        "r": torch.tensor(r),
        "e": torch.tensor(rng.standard_normal(M)),
        "w": torch.tensor(rng.standard_normal((M, d))),
    }


def numpy_params(p, m):
    return {k: v[m].detach().numpy() for k, v in p.items()}


@pytest.mark.parametrize("d", [1, 2, 3])
def test_every_point_of_the_coordinates_is_in_the_restricted_set(d):
    rng = np.random.default_rng(d)
    M, N = 200, 9
    D = torch.tensor(rng.uniform(0.5, 3, M))
    q = coordinates(rng, M, N, d)
    p = intrinsic.realize(q, D)
    for m in range(M):
        net = network_from_params(numpy_params(p, m), True)
        margins = restricted_set_margins(net, float(D[m]))
        assert margins["member"], margins
        assert margins["max_imbalance"] <= 1e-14
        assert margins["n_live"] == N


def test_kinks_far_out_stay_strictly_inside_the_cube():
    kappa = torch.tensor([-1e6, -1e3, -30.0, 30.0, 1e3, 1e6], dtype=F64)
    tau, _ = intrinsic.kink_position(kappa)
    assert bool((tau.abs() < 1).all())
    tau32, _ = intrinsic.kink_position(torch.tensor([-1e3, 30.0, 1e3]))
    assert bool((tau32.abs() < 1).all())


@pytest.mark.parametrize("d", [1, 2])
def test_realization_equals_the_network_built_from_it(d):
    rng = np.random.default_rng(10 + d)
    M, N = 20, 7
    D = torch.tensor(rng.uniform(0.5, 2, M))
    q = coordinates(rng, M, N, d)
    p = intrinsic.realize(q, D)
    X = torch.tensor(rng.uniform(-1, 1, (M, 300, d))) * D[:, None, None]
    f, _ = realization(p, X)
    tau, _ = intrinsic.kink_position(q["kappa"])
    for m in range(M):
        x = X[m].numpy()
        net = network_from_params(numpy_params(p, m), True)
        np.testing.assert_allclose(net(x), f[m].numpy(), rtol=1e-12, atol=1e-12)
        # the stated form: r |r| rho(<a^, x> - tau D ||a^||_1) + <w, x> + e
        v = q["v"][m].numpy()
        ah = v / np.linalg.norm(v, axis=1, keepdims=True)
        r, t = q["r"][m].numpy(), tau[m].numpy()
        z = x @ ah.T - t * float(D[m]) * np.abs(ah).sum(1)
        g = np.maximum(z, 0) @ (r * np.abs(r)) + x @ q["w"][m].numpy() + float(q["e"][m])
        np.testing.assert_allclose(g, f[m].numpy(), rtol=1e-12, atol=1e-12)


def test_coordinates_of_a_network_in_the_set_give_it_back():
    rng = np.random.default_rng(3)
    D = torch.tensor(rng.uniform(0.5, 2, 30))
    q = coordinates(rng, 30, 6, 2)
    p = intrinsic.realize(q, D)
    back = intrinsic.realize(intrinsic.to_coordinates(p, D), D)
    for k in p:
        np.testing.assert_allclose(back[k].numpy(), p[k].numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("lam", [0.0, 0.05])
def test_pulled_back_gradient_equals_autograd(d, lam):
    rng = np.random.default_rng(20 + d)
    M, N, n = 6, 5, 40
    D = torch.tensor(rng.uniform(0.5, 2, M))
    q = {k: v.requires_grad_() for k, v in coordinates(rng, M, N, d, 1.0).items()}
    X = torch.tensor(rng.uniform(-1, 1, (M, n, d))) * D[:, None, None]
    y = torch.tensor(rng.standard_normal((M, n)))
    lams = torch.full((M,), lam, dtype=F64)
    J, _, grads = mse_objective(intrinsic.realize(q, D), X, y, lams)
    auto = torch.autograd.grad(J.sum(), [q[k] for k in intrinsic.COORDS])
    closed = intrinsic.pullback({k: v.detach() for k, v in q.items()}, grads, D)
    for k, g in zip(intrinsic.COORDS, auto, strict=True):
        np.testing.assert_allclose(closed[k].detach().numpy(), g.numpy(), rtol=1e-10, atol=1e-12)
    if d == 1:  # a neuron keeps its orientation: v does not move
        assert float(closed["v"].detach().abs().max()) == 0.0


def small(**kw):
    spec = dict(
        target="sin",
        width=8,
        n_samples=64,
        steps=200,
        lr=2e-2,
        parametrization="restricted",
        restricted_method="intrinsic",
    )
    return RunSpec(**{**spec, **kw})


@pytest.mark.parametrize("target, d", [("sin", 1), ("teacher", 2)])
def test_a_training_run_never_leaves_the_restricted_set(monkeypatch, target, d):
    """Every state the optimizer visits (read where its gradient is taken) is in Omega_N."""
    specs = [small(seed=s, target=target, d=d, n_samples=64 if d == 1 else 100) for s in range(3)]
    seen = []
    pullback = intrinsic.pullback

    def watched(q, g, D):
        nets = intrinsic.realize({k: v.detach().clone() for k, v in q.items()}, D)
        seen.append({k: v.numpy() for k, v in nets.items()})
        return pullback(q, g, D)

    monkeypatch.setattr(intrinsic, "pullback", watched)
    result = train_shard(specs, TrainOptions(dtype=F64))
    assert len(seen) == specs[0].steps
    assert sum(result.counts["kink"]) == 0  # nothing clamped
    for params in seen + [result.params]:
        for m, spec in enumerate(specs):
            net = network_from_params({k: v[m] for k, v in params.items()}, True)
            assert in_restricted_set(net, spec.D), restricted_set_margins(net, spec.D)


def test_intrinsic_training_lowers_the_loss_in_float32_and_is_reproducible():
    specs = [small(seed=s, steps=300) for s in range(3)]
    one = train_shard(specs)
    two = train_shard(specs[1:2])
    np.testing.assert_allclose(one.params["c"][1], two.params["c"][0], rtol=1e-6, atol=1e-7)
    first, best = one.history_loss[:, 0], np.nanmin(one.history_loss, axis=1)
    assert bool((best < 0.2 * first).all())


def test_merges_during_training_are_counted_and_end_points_stay_in_the_set():
    specs = [small(seed=s, width=32, steps=120, lr=5e-2) for s in range(2)]
    opts = TrainOptions(intrinsic_merge_every=10, merge_angle=0.05)  # a wide angle: merges
    result = train_shard(specs, opts)
    assert int(result.counts["merge"].sum()) > 0
    assert bool((result.counts["reseed"] > 0).all())  # merged-away neurons come back
    for m, spec in enumerate(specs):
        net = network_from_params({k: v[m] for k, v in result.params.items()}, True)
        assert in_restricted_set(net, spec.D)


def planted(rng, M, N, d, spread):
    """Networks whose neurons come in near-parallel and near-antiparallel pairs."""
    a = rng.standard_normal((M, N, d))
    b = rng.uniform(-0.5, 0.5, (M, N)) * np.abs(a).sum(-1)
    half = N // 2
    scale = rng.uniform(0.3, 3, (M, half))
    sign = rng.choice([-1.0, 1.0], (M, half))
    a[:, half : 2 * half] = sign[..., None] * scale[..., None] * a[:, :half]
    b[:, half : 2 * half] = sign * scale * b[:, :half]
    a[:, half:] += spread * rng.standard_normal((M, N - half, d))
    b[:, half:] += spread * rng.standard_normal((M, N - half))
    c = rng.standard_normal((M, N))
    return {
        "a": torch.tensor(a),
        "b": torch.tensor(b),
        "c": torch.tensor(c),
        "e": torch.tensor(rng.standard_normal(M)),
        "w": torch.tensor(rng.standard_normal((M, d))),
    }


@pytest.mark.parametrize("d", [1, 2])
def test_merges_move_the_realization_within_their_bound(d):
    rng = np.random.default_rng(40 + d)
    M, N, D = 30, 8, 1.5
    p = planted(rng, M, N, d, 1e-4)
    Dt = torch.full((M,), D, dtype=F64)
    counts = {k: torch.zeros(M, dtype=torch.int64) for k in COUNTERS}
    live = torch.ones(M, N, dtype=torch.bool)
    m = merge_close(p["a"], p["b"], p["c"], p["e"], p["w"], live, counts, 1e-3, Dt)
    a, b, c, e, w, freed, survivor, bound = m.a, m.b, m.c, m.e, m.w, m.freed, m.survivor, m.bound
    assert int(counts["merge"].sum()) > 0 and int((counts["merge"] > 0).sum()) == M
    assert not bool((freed & survivor).any())
    after = {"a": a * ~freed[..., None], "b": b * ~freed, "c": c * ~freed, "e": e, "w": w}
    x = rng.uniform(-D, D, (4000, d))
    for m in range(M):
        f = network_from_params(numpy_params(p, m), True)(x)
        g = network_from_params(numpy_params(after, m), True)(x)
        moved = float(np.abs(f - g).max())
        assert moved <= float(bound[m]) * (1 + 1e-9) + 1e-12, (m, moved, float(bound[m]))
        assert float(bound[m]) < 1e-2  # pairs within 1e-3 rad: a small bound


def test_exactly_collinear_pairs_merge_without_moving_the_realization():
    rng = np.random.default_rng(5)
    p = planted(rng, 10, 6, 2, 0.0)
    counts = {k: torch.zeros(10, dtype=torch.int64) for k in COUNTERS}
    bound = merge_close(
        p["a"],
        p["b"],
        p["c"],
        p["e"],
        p["w"],
        torch.ones(10, 6, dtype=torch.bool),
        counts,
        MERGE_ANGLE,
        torch.ones(10, dtype=F64),
    ).bound
    assert float(bound.max()) <= 1e-12
    assert int(counts["merge"].sum()) == 30


@pytest.mark.parametrize("d", [1, 3])
def test_reseeded_neurons_move_the_realization_within_their_bound(d):
    M, N, scale = 16, 50, 1e-2
    D = torch.tensor(np.linspace(0.5, 2, M))
    seeds = torch.arange(M, dtype=torch.int64) * 7919
    a, b, c = reseed_draws(seeds, 3, N, d, D, scale, F64)
    np.testing.assert_allclose(c.abs().numpy(), scale)
    np.testing.assert_allclose(a.norm(dim=-1).numpy(), scale, rtol=1e-12)
    reach = D[:, None] * a.abs().sum(-1)
    assert bool((b.abs() < reach).all())  # kinks inside Q
    rng = np.random.default_rng(0)
    for m in range(M):
        x = rng.uniform(-1, 1, (2000, d)) * float(D[m])
        z = x @ a[m].numpy().T + b[m].numpy()
        each = np.abs(c[m].numpy() * np.maximum(z, 0)).max(axis=0)
        assert float(each.max()) <= 2 * np.sqrt(d) * float(D[m]) * scale**2


def test_changed_neurons_start_with_fresh_moments_and_others_keep_theirs():
    from realspace.train.omega import fresh_moments
    from realspace.train.state import Layout

    M, N, d = 2, 4, 3
    q = coordinates(np.random.default_rng(0), M, N, d)
    spec = small(d=d)
    layout = Layout.of(spec, q, intrinsic.coordinate_names(True, True))
    state = {"m": torch.ones(M, layout.flat(q).shape[1], dtype=F64)}
    reset = torch.zeros(M, N, dtype=torch.bool)
    reset[1, 2] = True
    fresh = layout.views(fresh_moments(state, reset, layout, q)["m"], {})
    for k in ("v", "kappa", "r"):
        assert float(fresh[k][1, 2].abs().sum()) == 0.0
        assert float(fresh[k].sum()) == fresh[k].numel() - (d if k == "v" else 1)
    assert bool((fresh["e"] == 1).all()) and bool((fresh["w"] == 1).all())


def test_an_unknown_restricted_method_is_refused():
    with pytest.raises(ValueError, match="restricted_method must be one of"):
        RunSpec(parametrization="restricted", restricted_method="clamp")


def test_records_carry_the_canonical_forms_objective_and_membership():
    from realspace.train import train_and_record

    specs = [
        RunSpec(target="sin", width=8, n_samples=64, steps=150, seed=s, weight_decay=wd)
        for s, wd in ((0, 0.0), (1, 0.01))
    ]
    for rec in train_and_record(specs):
        assert rec.canonical_member
        assert rec.canonical_objective <= rec.objective * (1 + 1e-9) + 1e-12
        if rec.spec.weight_decay == 0:
            assert rec.canonical_objective == pytest.approx(rec.objective, rel=1e-8)
        assert {"canonical_objective", "canonical_member"} <= set(rec.summary())


def test_recorded_states_are_the_same_merged_a_few_networks_at_a_time(monkeypatch):
    from realspace.train import omega

    specs = [small(seed=s, steps=60) for s in range(5)]
    whole = train_shard(specs, TrainOptions(merge_angle=0.05))  # wide: some merges
    monkeypatch.setattr(omega, "RECORD_PAIRS", 2 * 8 * 8)  # two networks per slice
    sliced = train_shard(specs, TrainOptions(merge_angle=0.05))
    for k in whole.params:
        np.testing.assert_array_equal(sliced.params[k], whole.params[k])
    np.testing.assert_array_equal(sliced.counts["merge"], whole.counts["merge"])
    assert int(whole.counts["merge"].sum()) > 0


def test_gap_merges_keep_the_objective_on_the_data_and_free_neurons():
    """Kinks between the same two samples, one sign: merged without moving the
    realization at any sample, nor the penalty lam sum |gamma| (float64)."""
    rng = np.random.default_rng(7)
    M, N, n = 6, 48, 30
    q = coordinates(rng, M, N, 1, kappa_scale=1.0)
    D = torch.full((M,), 1.5, dtype=F64)
    xs = torch.sort(torch.tensor(rng.uniform(-1.5, 1.5, (M, n))), dim=1).values
    live = torch.tensor(rng.uniform(size=(M, N)) > 0.1)
    merged, freed, survivor = intrinsic.gap_merges(q, xs, D, live)
    assert int(freed.sum()) > M and not bool((freed & ~live).any())
    assert not bool((freed & survivor).any())
    after = dict(merged, r=torch.where(freed, 0.0, merged["r"]))
    f0, _ = realization(intrinsic.realize(q, D), xs[..., None])
    f1, _ = realization(intrinsic.realize(after, D), xs[..., None])
    assert float((f0 - f1).abs().max()) < 1e-12 * float(f0.abs().max())
    np.testing.assert_allclose((after["r"] ** 2).sum(1), (q["r"] ** 2).sum(1), rtol=1e-12)

    # brute force: no two neurons left live in one gap with one sign; survivors' kinks in
    # the gap their group shared
    def t(c):
        return torch.sign(c["v"][..., 0]) * intrinsic.kink_position(c["kappa"])[0] * 1.5

    for m in range(M):
        keep = (live[m] & ~freed[m]).nonzero().flatten().tolist()
        gaps = torch.searchsorted(xs[m], t(after)[m]).tolist()
        groups = [(gaps[i], bool(after["r"][m, i] > 0)) for i in keep]
        assert len(groups) == len(set(groups))
        was = torch.searchsorted(xs[m], t(q)[m])
        assert bool((torch.tensor(gaps)[survivor[m]] == was[survivor[m]]).all())


def test_gap_merges_during_training_recycle_neurons_and_stay_in_the_set():
    specs = [small(seed=s, width=32, steps=200, n_samples=32) for s in range(2)]
    opts = TrainOptions(intrinsic_merge_every=10, intrinsic_merge="gaps")
    result = train_shard(specs, opts)
    assert bool((result.counts["merge"] > 0).all())
    assert bool((result.counts["reseed"] >= result.counts["merge"]).all())
    for m, spec in enumerate(specs):
        net = network_from_params({k: v[m] for k, v in result.params.items()}, True)
        assert in_restricted_set(net, spec.D)
    with pytest.raises(ValueError, match="d = 1"):
        train_shard([small(d=2, target="teacher")], opts)


def test_insertions_go_where_a_new_neuron_lowers_the_loss_fastest():
    """Brute force over every gap: the rate of the loss in the amplitude of a new neuron
    there, by finite differences in float64, with the affine part at its least-squares
    optimum (as training keeps it near)."""
    rng = np.random.default_rng(3)
    M, N, n = 3, 5, 40
    D = torch.full((M,), 1.0, dtype=F64)
    xs = torch.sort(torch.tensor(rng.uniform(-1, 1, (M, n))), dim=1).values
    ys = torch.sin(3 * xs) + 0.3 * xs
    q = coordinates(rng, M, N, 1, kappa_scale=0.5)
    freed = torch.zeros(M, N, dtype=torch.bool)
    freed[:, 1] = True
    q["r"] = torch.where(freed, 0.0, q["r"])
    # the affine part at its least-squares optimum for the other neurons
    f0, _ = realization(intrinsic.realize(dict(q, w=0 * q["w"], e=0 * q["e"]), D), xs[..., None])
    A = torch.stack([xs, torch.ones_like(xs)], -1)
    coef = torch.linalg.lstsq(A, (ys - f0)[..., None]).solution[..., 0]
    q["w"], q["e"] = coef[:, :1], coef[:, 1]

    def loss(c):
        f, _ = realization(intrinsic.realize(c, D), xs[..., None])
        return ((f - ys) ** 2).mean(1)

    placed = intrinsic.insertions(q, (xs, ys), D, freed, 1e-4)
    tau, _ = intrinsic.kink_position(placed["kappa"][:, 1])
    t_placed = torch.sign(placed["v"][:, 1, 0]) * tau
    mids = 0.5 * (xs[:, 1:] + xs[:, :-1])
    h = 1e-4
    for m in range(M):
        rates = []
        for t in mids[m].tolist():
            c = {k: v.clone() for k, v in q.items()}
            c["v"][m, 1, 0], c["kappa"][m, 1] = 1.0, t / np.sqrt(1 - t * t)
            c["r"][m, 1] = np.sqrt(h)  # gamma = h
            rates.append(float((loss(c)[m] - loss(q)[m]) / h))
        best = int(np.argmax(np.abs(rates)))
        assert float(t_placed[m]) == pytest.approx(float(mids[m, best]), abs=1e-12)
        assert float(loss(placed)[m]) < float(loss(q)[m])  # its sign lowers the loss
        net = network_from_params(
            {k: v[m].numpy() for k, v in intrinsic.realize(placed, D).items()}, True
        )
        assert in_restricted_set(net, 1.0)


@given(
    d=st.integers(1, 4),
    n=st.integers(1, 6),
    data=st.data(),
)
@settings(max_examples=150, deadline=None)
def test_the_intrinsic_map_lands_in_the_restricted_set_for_any_coordinates(d, n, data):
    """Hypothesis over coordinates: any nonzero direction, kink coordinate and amplitude
    (several decades, both signs) gives a network that satisfies R1-R4 (float64), unless
    two neurons share a hyperplane exactly, which the strategy makes improbable."""
    finite = dict(allow_nan=False, allow_infinity=False)
    comp = st.floats(-10, 10, **finite).filter(lambda x: abs(x) > 1e-3)
    v = np.array(
        data.draw(st.lists(st.lists(comp, min_size=d, max_size=d), min_size=n, max_size=n))
    )
    kappa = np.array(data.draw(st.lists(st.floats(-1e3, 1e3, **finite), min_size=n, max_size=n)))
    amp = st.floats(-2.0, 1.0, **finite).map(lambda e: 10.0**e)
    r = np.array(data.draw(st.lists(amp, min_size=n, max_size=n)))
    r *= np.array(data.draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n)))
    D = data.draw(st.floats(0.25, 4.0, **finite))
    q = {
        "v": torch.tensor(v[None]),
        "kappa": torch.tensor(kappa[None]),
        "r": torch.tensor(r[None]),
        "e": torch.zeros(1, dtype=F64),
        "w": torch.zeros(1, d, dtype=F64),
    }
    net = network_from_params(numpy_params(intrinsic.realize(q, torch.tensor([D])), 0), True)
    hyperplanes = np.hstack([net.a, net.b[:, None]])
    hyperplanes /= np.linalg.norm(hyperplanes, axis=1, keepdims=True)
    cos = np.abs(hyperplanes @ hyperplanes.T)[np.triu_indices(n, 1)]
    assume(not (cos > 1 - 1e-12).any())  # an exact (anti)parallel pair: R3/R4 exclude it
    margins = restricted_set_margins(net, D)
    assert margins["member"], margins
    assert margins["max_imbalance"] <= 1e-13
