"""The stacked functions of core.stacked against their per-network references, bit for bit,
on stacks of networks with planted degeneracies (netgen.degenerate_stack)."""

import numpy as np
import pytest
from netgen import STACK_KINDS, degenerate_stack

import realspace.core.stacked as stacked
from realspace.core.canonical import affine_shift, canonical_form
from realspace.core.census import degeneracy_census
from realspace.core.nets import ShallowNet
from realspace.core.restricted import restricted_set_margins
from realspace.core.targets import mse, weight_decay_penalty

# (width N, dimension d): widths past 16 put 16 or more neurons into one affine shift,
# where the BLAS dot product sums in blocks instead of one after another
SHAPES = [(1, 1), (4, 1), (8, 1), (40, 1), (5, 2), (3, 3), (12, 2)]


def identical(got, want, what=""):
    """Bit for bit: the same values (NaN where NaN), the same signs (of zeros too) and the
    same kind of number."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype.kind == want.dtype.kind, (what, got.dtype, want.dtype)
    np.testing.assert_array_equal(got, want, err_msg=what)
    if got.dtype.kind == "f":
        number = ~np.isnan(want)
        np.testing.assert_array_equal(np.signbit(got[number]), np.signbit(want[number]), what)


def networks(a, b, c, e, w):
    return [ShallowNet(*p) for p in zip(a, b, c, e, w, strict=True)]


def margins(net, D):
    """restricted_set_margins, whose angles are NaN, with a warning, for a live neuron with
    (a, b) = 0 (a duplicate of padding with its own c): the stacked margins say NaN too."""
    with np.errstate(invalid="ignore"):
        return restricted_set_margins(net, D)


def stacks(N, d, count=3, M=40, seed=0):
    """``count`` stacks of M networks (N, d), every other one without duplicated, edge,
    opposite or origin neurons (which the canonical form merges), on a domain D of 1 or
    2.5."""
    rng = np.random.default_rng([seed, N, d])
    unmerged = tuple(k for k in STACK_KINDS if k not in ("dup", "opp", "origin", "edge"))
    for _ in range(count):
        D = float(rng.choice([1.0, 2.5]))
        one = degenerate_stack(rng, M // 2, N, d, D)
        other = degenerate_stack(rng, M - M // 2, N, d, D, kinds=unmerged)
        mixed = [np.empty((M, *x.shape[1:])) for x in one]
        for x, p, q in zip(mixed, one, other, strict=True):
            x[0::2], x[1::2] = p, q
        yield D, tuple(mixed)


@pytest.fixture
def reference_calls(monkeypatch):
    """How many networks canonical_forms handed to canonical_form (its merge path)."""
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[0])
        return canonical_form(*args, **kwargs)

    monkeypatch.setattr(stacked, "canonical_form", counted)
    return calls


@pytest.mark.parametrize(("N", "d"), SHAPES)
def test_canonical_forms_equal_the_reference_network_by_network(N, d, reference_calls):
    total = 0
    for D, stack in stacks(N, d):
        got = stacked.canonical_forms(*stack, D)
        for m, net in enumerate(networks(*stack)):
            want = canonical_form(net, D)
            for name, value in zip("abcew", got, strict=True):
                identical(value[m], getattr(want, name), f"network {m}: {name}")
        total += len(stack[0])
    # networks with a merge take the reference's path, the others (here at least a
    # quarter) the stacked arithmetic
    assert 0 < len(reference_calls) <= 3 * total // 4 or N == 1


def test_canonical_forms_without_degeneracies_never_need_the_reference(reference_calls):
    for N, d in SHAPES:
        for D, stack in stacks(N, d, count=1):
            stacked.canonical_forms(*stack, D)
    generic = np.random.default_rng(1)
    for N, d in SHAPES:
        a, b, c, e, w = degenerate_stack(generic, 30, N, d, kinds=("generic",))
        got = stacked.canonical_forms(a, b, c, e, w, 1.0)
        for m, net in enumerate(networks(a, b, c, e, w)):
            want = canonical_form(net, 1.0)
            for name, value in zip("abcew", got, strict=True):
                identical(value[m], getattr(want, name), f"{N} {d} network {m}: {name}")
    merged = len(reference_calls)
    assert merged and not [n for n in reference_calls[merged:] if n.width > 0]


def test_canonical_forms_pad_to_a_width_and_refuse_one_too_small():
    rng = np.random.default_rng(2)
    a, b, c, e, w = degenerate_stack(rng, 30, 6, 2, kinds=("generic",))
    for width in (6, 9):
        got = stacked.canonical_forms(a, b, c, e, w, 1.0, width=width)
        for m, net in enumerate(networks(a, b, c, e, w)):
            want = canonical_form(net, 1.0, width=width)
            for name, value in zip("abcew", got, strict=True):
                identical(value[m], getattr(want, name), f"width {width}: {name}")
    need = max(np.count_nonzero(canonical_form(n, 1.0).c) for n in networks(a, b, c, e, w))
    with pytest.raises(ValueError, match="canonical form needs width"):
        stacked.canonical_forms(a, b, c, e, w, 1.0, width=need - 1)
    got = stacked.canonical_forms(a, b, c, e, w, 1.0, width=need)
    assert got[0].shape == (30, need, 2)


@pytest.mark.parametrize(("N", "d"), SHAPES)
def test_margins_equal_the_reference_network_by_network(N, d):
    for D, stack in stacks(N, d):
        a, b, c = stack[:3]
        got = stacked.stacked_margins(a, b, c, D)
        canon = stacked.canonical_forms(*stack, D)
        of_canon = stacked.stacked_margins(*canon[:3], D)
        for m, (net, form) in enumerate(zip(networks(*stack), networks(*canon), strict=True)):
            want = margins(net, D)
            assert list(got) == list(want)
            for k, v in want.items():
                identical(got[k][m], v, f"network {m}: {k}")
            assert of_canon["member"][m] == margins(form, D)["member"]


@pytest.mark.parametrize(("N", "d"), SHAPES)
def test_census_equals_the_reference_network_by_network(N, d):
    for D, stack in stacks(N, d):
        a, b, c = stack[:3]
        canon = stacked.canonical_forms(*stack, D)
        got = stacked.stacked_census(a, b, c, D, stacked.stacked_live(*canon[:3]))
        for m, (net, form) in enumerate(zip(networks(*stack), networks(*canon), strict=True)):
            want = degeneracy_census(net, D, canonical=form)
            assert list(got) == list(want)
            for k, v in want.items():
                identical(got[k][m], v, f"network {m}: {k}")
                assert type(got[k][m].item()) is type(v)


def test_the_census_sees_planted_duplicates_and_opposites():
    rng = np.random.default_rng(3)
    a, b, c, e, w = degenerate_stack(rng, 50, 6, 1, kinds=("generic", "dup", "opp"))
    got = stacked.stacked_census(a, b, c, 1.0, stacked.stacked_live(a, b, c))
    assert got["duplicate"].any() and got["opposite"].any()
    assert (got["duplicate"] == 0).any() and (got["opposite"] == 0).any()


def test_masked_sums_are_the_reference_affine_shifts():
    """sum_i c_i (a_i, b_i) over each network's selected neurons, 0 to 40 of them."""
    rng = np.random.default_rng(4)
    for d in (1, 2, 3):
        M, N = 200, 40
        c, b, a = (
            rng.standard_normal((M, N)),
            rng.standard_normal((M, N)),
            rng.normal(size=(M, N, d)),
        )
        mask = rng.random((M, N)) < rng.random((M, 1))
        mask[0], mask[1] = False, True
        dw = stacked._masked_dot(c, a, mask)
        de = stacked._masked_dot(c, b, mask)
        for m in range(M):
            want_w, want_e = affine_shift(c[m][mask[m]], a[m][mask[m]], b[m][mask[m]])
            identical(dw[m], want_w, f"{d} {m}")
            identical(de[m], want_e, f"{d} {m}")


@pytest.mark.parametrize("shared", [True, False])
def test_realization_and_mse_objective_equal_the_reference(shared):
    rng = np.random.default_rng(5)
    for N, d in SHAPES:
        a, b, c, e, w = degenerate_stack(rng, 20, N, d)
        M, n = len(a), 33
        x = rng.uniform(-1, 1, (n, d) if shared else (M, n, d))
        y = rng.standard_normal((M, n))
        lam = rng.choice([0.0, 1e-3, 0.1], M)
        f = stacked.stacked_realization(a, b, c, e, w, x)
        J = stacked.stacked_mse_objective(a, b, c, e, w, x, y, lam)
        for m, net in enumerate(networks(a, b, c, e, w)):
            xm = x if shared else x[m]
            identical(f[m], net(xm), f"{N} {d} network {m}")
            identical(J[m], mse(net, xm, y[m]) + weight_decay_penalty(net, lam[m]), f"{m}")


def test_unstacked_networks_are_the_networks_built_one_by_one():
    rng = np.random.default_rng(6)
    a, b, c, e, w = degenerate_stack(rng, 5, 3, 2)
    for linear in (w, None):
        nets = ShallowNet.unstack(a, b, c, e, linear)
        for m, net in enumerate(nets):
            want = ShallowNet(a[m], b[m], c[m], e[m], None if linear is None else w[m])
            assert type(net.e) is float and repr(net) == repr(want)
            for name in "abcw":
                got, ref = getattr(net, name), getattr(want, name)
                assert (got is None) == (ref is None)
                if ref is not None:
                    identical(got, ref, name)
                    assert not got.flags.writeable and got.flags.c_contiguous
    vector = ShallowNet.unstack(a, b, np.ones((5, 3, 4)), np.zeros((5, 4)), np.zeros((5, 4, 2)))
    assert vector[2].outputs == 4 and vector[2].e.shape == (4,)
    with pytest.raises(ValueError, match="w must have shape"):
        ShallowNet.unstack(a, b, c, e, w[:, :1])
    a[3, 1, 0] = np.inf
    with pytest.raises(ValueError, match="a contains NaN"):
        ShallowNet.unstack(a, b, c, e, w)
