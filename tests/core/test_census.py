import numpy as np
import pytest
from netgen import plant_degenerate, random_net

from realspace import canonical_form
from realspace.core.census import degeneracy_census


def test_census_with_the_canonical_form_passed_equals_the_census_without():
    rng = np.random.default_rng(31)
    for k in range(300):
        d = int(rng.integers(1, 4))
        D = float(rng.choice([0.5, 1.0, 2.0]))
        net = random_net(rng, int(rng.integers(1, 30)), d, D, restricted=bool(k % 2))
        if k % 3:
            net = plant_degenerate(rng, net, D)
        alone = degeneracy_census(net, D)
        given = degeneracy_census(net, D, canonical=canonical_form(net, D))
        assert given == alone, k


def _small_intrinsic(seed):
    from realspace.core.spec import RunSpec

    return RunSpec(
        target="sin",
        width=24,
        n_samples=64,
        steps=300,
        lr=2e-2,
        seed=seed,
        parametrization="restricted",
        restricted_method="intrinsic",
    )


def test_restricted_end_points_read_zero_in_the_census():
    from realspace import in_restricted_set
    from realspace.train import network_from_params, train_shard

    specs = [_small_intrinsic(s) for s in range(3)]
    result = train_shard(specs)
    for m, spec in enumerate(specs):
        net = network_from_params({k: v[m] for k, v in result.params.items()}, True)
        assert in_restricted_set(net, spec.D)
        census = degeneracy_census(net, spec.D)
        for k in ("dead", "affine", "duplicate", "opposite"):
            assert census[k] == 0.0, (k, census)
        assert census["imbalance_max"] <= 1e-12


def test_census_imbalance_is_that_of_the_restricted_set():
    from realspace import ShallowNet

    # balanced as R1 says (|c| = ||a||_2), with a bias: no imbalance
    net = ShallowNet(np.array([[3.0, 4.0]]), np.array([2.0]), np.array([-5.0]), 0.0, np.zeros(2))
    assert degeneracy_census(net, 1.0)["imbalance_max"] == 0.0
    twice = ShallowNet(np.array([[3.0, 4.0]]), np.array([2.0]), np.array([10.0]), 0.0, np.zeros(2))
    assert degeneracy_census(twice, 1.0)["imbalance_max"] == pytest.approx(np.log(2))


def test_census_and_merge_share_one_angle():
    from realspace import ShallowNet
    from realspace.core.restricted import MERGE_ANGLE

    t = 0.5 * MERGE_ANGLE  # two kinks closer than the merge angle: duplicates
    a = np.array([[1.0], [np.cos(t)]])
    b = np.array([0.2, 0.2 * np.cos(t) + np.sin(t)])
    net = ShallowNet(a, b, np.array([1.0, 1.0]), 0.0, np.zeros(1))
    assert degeneracy_census(net, 1.0)["duplicate"] == 1.0
    t = 2 * MERGE_ANGLE
    far = ShallowNet(
        np.array([[1.0], [np.cos(t)]]),
        np.array([0.2, 0.2 * np.cos(t) + np.sin(t)]),
        np.array([1.0, 1.0]),
        0.0,
        np.zeros(1),
    )
    assert degeneracy_census(far, 1.0)["duplicate"] == 0.0
