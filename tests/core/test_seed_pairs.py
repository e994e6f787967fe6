"""The closest seed pairs without every pair: the same rows as computing and sorting every
pair (written here as it was), bounds that never exceed the exact d_W, and a cell of 10^5
networks in seconds and linear memory."""

import time
import tracemalloc
from itertools import combinations

import numpy as np
import pytest
from netgen import random_net, teacher_cell

from realspace import ShallowNet, sobolev_distance
from realspace.core import nearest
from realspace.core.distances import fibre_distance, param_distance
from realspace.core.inverse import ratios, seed_pair_table


def every_pair_sorted(nets, D, k):
    """The brute force: d_W of every pair, sorted by (d_W, i, j)."""
    pairs = sorted(
        (float(sobolev_distance(nets[i], nets[j], D)), i, j)
        for i, j in combinations(range(len(nets)), 2)
    )
    return pairs[:k]


def seed_pair_table_by_every_pair(nets, D, closest):
    """seed_pair_table as it was before the search: every pair, sorted."""
    rows = []
    for d_w, i, j in every_pair_sorted(nets, D, closest):
        raw = float(param_distance(nets[i], nets[j]))
        can = fibre_distance(nets[i], nets[j], D)
        rows.append(
            {
                "i": i,
                "j": j,
                "d_W": d_w,
                "d_P_raw": raw,
                "d_P_canonical": float(can),
                "canonical_bound": can.bound,
                **{f"{k}_raw": v for k, v in ratios(raw, d_w).items()},
                **{f"{k}_canonical": v for k, v in ratios(float(can), d_w).items()},
            }
        )
    return rows


@pytest.fixture
def small_tree(monkeypatch):
    """The search's sizes shrunk so that a few dozen networks go through every part of it:
    the first search on a sample, sampled splits, windows, chunks of pairs."""
    monkeypatch.setattr(nearest, "LEAF", 3)
    monkeypatch.setattr(nearest, "SAMPLE", 4)
    monkeypatch.setattr(nearest, "SPLIT_SAMPLE", 9)
    monkeypatch.setattr(nearest, "PAIR_CHUNK", 5)


def tied_net(rng, net, D):
    """``net`` with a dead neuron added: the same realization on Q in other parameters."""
    a = rng.standard_normal()
    b = -abs(a) * D - 0.5
    return ShallowNet(
        np.vstack([net.a, [[a]]]), np.append(net.b, b), np.append(net.c, rng.standard_normal()),
        net.e, net.w,
    )  # fmt: skip


def random_cell(rng, n, D, kind=None):
    """A cell of one of several kinds: trained-like (kinks moved or not, sigma small or
    large, copies, unrelated networks, a linear term), unrelated networks of mixed widths,
    realizations repeated in other parameters, or vector outputs."""
    kind = rng.integers(5) if kind is None else kind
    width = int(rng.choice([1, 2, 4, 8]))
    if kind == 0:
        sigma = [(1e-5, 1e-2), (1e-12, 1e-9), (1e-3, 0.5)][rng.integers(3)]
        return teacher_cell(
            rng, n, width, D, sigma=sigma, far=rng.uniform(0, 0.5), copies=rng.uniform(0, 0.4),
            linear=bool(rng.integers(2)), move=bool(rng.integers(3)),
        )  # fmt: skip
    if kind == 1:
        return [
            random_net(rng, int(rng.integers(1, 6)), 1, D, restricted=bool(rng.integers(2)))
            for _ in range(n)
        ]
    if kind == 2:
        base = [random_net(rng, width, 1, D) for _ in range(3)]
        return [tied_net(rng, base[rng.integers(3)], D) for _ in range(n)]
    if kind == 3:
        # kinks on a lattice, some a hair apart (merged or not by the exact computation),
        # some on the ends of Q, neurons without kink (a = 0)
        nets = []
        for _ in range(n):
            t = rng.choice(np.linspace(-D, D, 5), 5) + rng.choice([0, 1e-13, 5e-12, 1e-9], 5)
            a = rng.choice([-1.0, 1.0, 0.0, 3.0], 5)
            b = np.where(a != 0, -a * t, rng.standard_normal(5))
            nets.append(ShallowNet(a[:, None], b, rng.integers(-2, 3, 5) * 0.5, 0.0))
        return nets
    m = int(rng.integers(2, 4))  # vector outputs, d = 1 still exact
    return [
        ShallowNet(
            rng.standard_normal((width, 1)),
            rng.standard_normal(width),
            rng.standard_normal((width, m)),
            rng.standard_normal(m),
            rng.standard_normal((m, 1)) if rng.integers(2) else None,
        )  # fmt: skip
        for _ in range(n)
    ]


@pytest.mark.parametrize("seed", range(40))
def test_the_closest_pairs_are_those_of_every_pair_sorted(small_tree, seed):
    rng = np.random.default_rng(seed)
    D = float(rng.choice([0.5, 1.0, 2.0]))
    n = int(rng.choice([0, 1, 2, 3, 7, 20, 45]))
    nets = random_cell(rng, n, D)
    every = every_pair_sorted(nets, D, None)
    for k in (1, 4, int(rng.integers(5, 60)), n * (n - 1) // 2 + 3):
        assert nearest.closest_pairs(nets, D, k) == every[:k]


def test_the_default_sizes_too():
    """Without the shrunk tree: 5000 networks (a first search on a sample, splits chosen
    on samples) against the brute force of d_W on the pairs that decide."""
    rng = np.random.default_rng(0)
    nets = teacher_cell(rng, 5000, 4, 1.0, copies=0.01)
    stats = {}
    got = nearest.closest_pairs(nets, 1.0, 6, stats)
    assert stats["evaluated"] < 5000  # of 12.5 million pairs
    for d, i, j in got:
        assert d == float(sobolev_distance(nets[i], nets[j], 1.0))
    # copies: d_W = 0 exactly, the lowest (i, j) first; nothing below the sixth elsewhere
    assert got == sorted(got) and got[0][0] == 0.0
    check_against_dense_distances(nets[:600], 1.0, k=6)


@pytest.mark.parametrize("seed", range(6))
def test_seed_pair_table_rows_are_those_of_every_pair(seed):
    rng = np.random.default_rng(100 + seed)
    D = float(rng.choice([1.0, 2.0]))
    nets = teacher_cell(
        rng, int(rng.integers(2, 30)), int(rng.choice([2, 4, 8])), D,
        copies=0.2 * (seed % 2), linear=seed % 3 == 0,
    )  # fmt: skip
    for closest in (0, 1, 4, 60):
        got = seed_pair_table(nets, D, closest)
        np.testing.assert_equal(got, seed_pair_table_by_every_pair(nets, D, closest))


def test_seed_pair_table_of_no_pair_and_a_bad_count():
    net = random_net(np.random.default_rng(0), 3, 1)
    assert seed_pair_table([], 1.0) == [] and seed_pair_table([net], 1.0) == []
    with pytest.raises(ValueError, match="closest"):
        seed_pair_table([net, net], 1.0, -1)


def test_copies_and_exact_ties_keep_the_order_of_every_pair(small_tree):
    """Copies of several networks (d_W = 0 among them, equal d_W to everything else) and a
    realization repeated in other parameters: the lowest (i, j) first, as sorting does;
    copies beyond the first k + 1 of a set are never needed."""
    rng = np.random.default_rng(7)
    base = [random_net(rng, 4, 1) for _ in range(4)]
    nets = [base[i] for i in rng.integers(0, 4, 40)] + [tied_net(rng, base[0], 1.0)] * 3
    nets += [tied_net(rng, base[1], 1.0) for _ in range(5)]
    order = rng.permutation(len(nets))
    nets = [nets[i] for i in order]
    every = every_pair_sorted(nets, 1.0, None)
    for k in (1, 3, 10, 200, 2000):
        assert nearest.closest_pairs(nets, 1.0, k) == every[:k]
    # sobolev_distance is symmetric to the last bit (a copy's pairs tie with the first's)
    for f, g in combinations(nets[:12], 2):
        assert float(sobolev_distance(f, g, 1.0)) == float(sobolev_distance(g, f, 1.0))


def test_other_input_dimensions_and_mixed_shapes_compare_every_pair():
    rng = np.random.default_rng(3)
    nets = [random_net(rng, 3, 2) for _ in range(5)]
    assert nearest.closest_pairs(nets, 1.0, 3) == every_pair_sorted(nets, 1.0, 3)
    with pytest.raises(ValueError, match="dimensions"):
        nearest.closest_pairs([random_net(rng, 3, 1), random_net(rng, 3, 2)], 1.0, 1)


def pair_sample(rng, count):
    """(kind, nets, D): adversarial and ordinary pairs, for the bounds (kind as in
    ``random_cell``)."""
    for _ in range(count):
        D = float(rng.choice([0.5, 1.0, 2.0]))
        kind = int(rng.integers(5))
        yield kind, random_cell(rng, 6, D, kind), D


def test_feature_rows_are_f_and_its_slope_at_their_points():
    """Against the network's own evaluation: f at x; f' at y, which lie off every kink by
    the clearance (there f' is the slope of the piece on both sides)."""
    rng = np.random.default_rng(1)
    for _, nets, D in pair_sample(rng, 60):
        if nets[0].outputs > 1:
            continue
        rows, x, y = nearest.bound_features(nets, D, points=rng.uniform(-D, D, 7))
        width = max(net.width for net in nets)
        kinks = np.concatenate(
            [-net.b[net.a[:, 0] != 0] / net.a[net.a[:, 0] != 0, 0] for net in nets]
        )
        gap = np.abs(y[:, None] - kinks[None, :]).min(axis=1, initial=np.inf)
        assert (gap >= (2 * width + 4) * 1e-12 * D).all()
        for net, row in zip(nets, rows, strict=True):
            np.testing.assert_allclose(row[: x.size], net(x[:, None]), rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(
                row[x.size :], net.gradient(y[:, None])[:, 0], rtol=1e-13, atol=1e-13
            )


def test_feature_distance_is_a_lower_bound_on_d_w():
    """||phi_f - phi_g||_inf <= d_W(f, g) up to rounding, at the lattice points and the
    kinks themselves too (where f' is ambiguous, and between kinks 1e-13 apart, a sliver
    the exact computation merges), on random pairs; and it is no vacuous bound."""
    rng = np.random.default_rng(2)
    ratio = []
    for _, nets, D in pair_sample(rng, 150):
        lattice = np.linspace(-D, D, 5)
        kinks = np.concatenate(
            [-net.b / np.where(net.a[:, 0] == 0, 1, net.a[:, 0]) for net in nets]
        )
        rows, _, _ = nearest.bound_features(nets, D, points=np.concatenate([lattice, kinks]))
        for i, j in combinations(range(len(nets)), 2):
            d = float(sobolev_distance(nets[i], nets[j], D))
            bound = np.abs(rows[i] - rows[j]).max()
            assert bound <= d + 1e-12 * (1 + d), (bound, d)
            if d > 0:
                ratio.append(bound / d)
    assert np.median(ratio) > 0.5


def test_the_pair_bound_is_d_w_up_to_rounding_and_never_above():
    rng = np.random.default_rng(4)
    for trial, (kind, nets, D) in enumerate(pair_sample(rng, 150)):
        i, j = np.triu_indices(len(nets), 1)
        bound = nearest.pair_bounds(nets, D, i, j)
        exact = np.array(
            [float(sobolev_distance(nets[a], nets[b], D)) for a, b in zip(i, j, strict=True)]
        )
        assert (bound <= exact + 1e-12 * (1 + exact)).all(), trial
        # without kinks a hair apart (unrelated networks) it is d_W itself
        if kind in (1, 2, 4):
            np.testing.assert_allclose(bound, exact, rtol=1e-12, atol=1e-14)


def dense_distances(nets, D):
    """d_W of every pair i < j from the definition: f - g at both kink sets and the ends of
    Q, f' - g' from the active neurons at the midpoints between them (no kink merged)."""
    a = np.array([net.a[:, 0] for net in nets])
    b = np.array([net.b for net in nets])
    c = np.array([net.c for net in nets])
    w = np.array([net.linear[0] for net in nets])
    e = np.array([net.e for net in nets])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where((a != 0) & (np.abs(-b / a) < D), -b / a, D)
    out = {}
    for i in range(len(nets) - 1):
        j = np.arange(i + 1, len(nets))
        pts = np.sort(np.hstack([np.broadcast_to(t[i], (j.size, t.shape[1])), t[j]]), axis=1)
        pts = np.hstack([np.full((j.size, 1), -D), pts, np.full((j.size, 1), D)])
        mid = (pts[:, 1:] + pts[:, :-1]) / 2

        def value(k, x):
            z = a[k][..., None] * x[:, None, :] + b[k][..., None]
            return (
                (c[k][..., None] * np.maximum(z, 0)).sum(axis=1) + w[k][:, None] * x + e[k][:, None]
            )

        def slope(k, x):
            z = a[k][..., None] * x[:, None, :] + b[k][..., None]
            return (c[k][..., None] * a[k][..., None] * (z > 0)).sum(axis=1) + w[k][:, None]

        fi = np.full(j.size, i)
        d = np.maximum(
            np.abs(value(fi, pts) - value(j, pts)).max(axis=1),
            np.where(np.diff(pts, axis=1) > 0, np.abs(slope(fi, mid) - slope(j, mid)), 0).max(
                axis=1
            ),
        )
        out.update({(i, int(jj)): float(dd) for jj, dd in zip(j, d, strict=True)})
    return out


def check_against_dense_distances(nets, D, k, tol=1e-9):
    """The search's k pairs on ``nets`` against every pair's d_W from the definition: no
    pair outside is closer than the k-th, and none inside farther."""
    got = nearest.closest_pairs(nets, D, k)
    kth = got[-1][0]
    dense = dense_distances(nets, D)
    inside = {(i, j) for _, i, j in got}
    assert all(dense[p] <= kth + tol for p in inside)
    assert all(p in inside for p, d in dense.items() if d < kth - tol)


@pytest.mark.slow  # about 40 s here, most of it building 10^5 networks and tracing memory
def test_a_cell_of_100000_networks():
    """10^5 end points of one cell (width 8, a teacher perturbed, kinks moved): seconds and
    linear memory, where the brute force would take 5 * 10^9 exact d_W (about 12 days).
    Honest checks: every d_W exact; the k-th no larger than the k-th smallest of 10^4
    random pairs; and a random 1500 of them searched alike against every pair."""
    rng = np.random.default_rng(0)
    nets = teacher_cell(rng, 100_000, 8, 1.0)
    tracemalloc.start()
    start = time.perf_counter()
    rows = seed_pair_table(nets, 1.0, closest=4)
    seconds = time.perf_counter() - start  # under tracing: about twice the plain time
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"10^5 networks: {seconds:.1f} s traced, peak {peak / 2**20:.0f} MiB")
    assert peak < 500 * 2**20
    assert seconds < 60
    found = [r["d_W"] for r in rows]
    assert len(rows) == 4 and found == sorted(found)
    for r in rows:
        assert r["d_W"] == float(sobolev_distance(nets[r["i"]], nets[r["j"]], 1.0))
    i, j = rng.integers(0, len(nets), (2, 10_000))
    sampled = sorted(
        float(sobolev_distance(nets[a], nets[b], 1.0)) for a, b in zip(i, j, strict=True) if a != b
    )
    assert all(f <= s for f, s in zip(found, sampled[:4], strict=True))
    subset = [nets[a] for a in rng.choice(len(nets), 1500, replace=False)]
    check_against_dense_distances(subset, 1.0, k=4)
