import numpy as np
from netgen import plant_degenerate, random_net

from realspace import canonical_form
from realspace.census import degeneracy_census


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
