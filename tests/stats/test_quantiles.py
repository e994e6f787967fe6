"""Order-statistic confidence bounds on quantiles against the binomial distribution itself:
each rank found by exact enumeration (rational arithmetic with math.comb), never by the
quantile function the module calls."""

from fractions import Fraction
from math import comb

import numpy as np

from realspace.stats.quantiles import median_bounds, quantile_lower_bound, quantile_upper_bound

SIZES = (1, 2, 5, 9, 16, 30, 47)
QUANTILES = (0.125, 0.5, 0.75, 0.9)
LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)  # not only the default 0.95: a dropped level shows


def at_most(n: int, q: float, j: int) -> Fraction:
    """P(Bin(n, q) <= j), exactly (q as the rational number its float is)."""
    p = Fraction(q)
    return sum((comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(j + 1)), Fraction(0))


def upper_rank(n: int, q: float, conf: float) -> int | None:
    """The smallest k in 1..n with P(Bin(n, q) <= k - 1) >= conf: fewer than k of n draws
    fall below the q-quantile with probability >= conf, so x_(k) lies above it. None if
    no k <= n reaches the level."""
    level = Fraction(conf)
    return next((k for k in range(1, n + 1) if at_most(n, q, k - 1) >= level), None)


def lower_rank(n: int, q: float, conf: float) -> int | None:
    """The largest j in 1..n with P(Bin(n, q) >= j) = 1 - P(Bin <= j - 1) >= conf: at least
    j draws fall below the q-quantile with probability >= conf, so x_(j) lies below it."""
    level = Fraction(conf)
    return next((j for j in range(n, 0, -1) if 1 - at_most(n, q, j - 1) >= level), None)


def draws(n: int, seed: int = 0) -> np.ndarray:
    """n distinct values in shuffled order; the k-th smallest is 10 k + 0.5."""
    return np.random.default_rng(seed).permutation(10.0 * np.arange(1, n + 1) + 0.5)


def order_statistic(k: int | None, missing: float) -> float:
    return missing if k is None else 10.0 * k + 0.5


def test_the_upper_bound_is_the_order_statistic_of_the_binomial_rank():
    """Every n, q and level of the grid: x_(k) with k the exact smallest rank, inf where even
    x_(n) does not reach the level. The grid holds both outcomes and a rank equal to n."""
    seen = set()
    for n in SIZES:
        x = draws(n, seed=n)
        for q in QUANTILES:
            for conf in LEVELS:
                k = upper_rank(n, q, conf)
                seen.add("none" if k is None else "n" if k == n else "inner")
                got = quantile_upper_bound(x, q, conf)
                assert got == order_statistic(k, np.inf), (n, q, conf, k)
    assert seen == {"none", "n", "inner"}


def test_the_lower_bound_is_the_order_statistic_of_the_binomial_rank():
    """The mirror: x_(j) with j the exact largest rank at least j draws fall below the
    quantile with probability >= conf, -inf where even x_(1) does not reach the level."""
    seen = set()
    for n in SIZES:
        x = draws(n, seed=n + 1)
        for q in QUANTILES:
            for conf in LEVELS:
                j = lower_rank(n, q, conf)
                seen.add("none" if j is None else "1" if j == 1 else "inner")
                got = quantile_lower_bound(x, q, conf)
                assert got == order_statistic(j, -np.inf), (n, q, conf, j)
    assert seen == {"none", "1", "inner"}


def test_median_bounds_at_the_default_and_other_levels():
    """median_bounds is the pair of one-sided median bounds at one level; by default 95 %,
    where n = 16 gives x_(5) and x_(12)."""
    x = draws(16, seed=3)
    assert median_bounds(x) == (10.0 * 5 + 0.5, 10.0 * 12 + 0.5)
    for n in (9, 16, 25):
        x = draws(n, seed=n)
        for conf in (0.7, 0.9, 0.95, 0.99):
            want = (
                order_statistic(lower_rank(n, 0.5, conf), -np.inf),
                order_statistic(upper_rank(n, 0.5, conf), np.inf),
            )
            assert median_bounds(x, conf) == want, (n, conf)
    # the two ranks differ from the default level's at 70 %: the level reaches both bounds
    assert median_bounds(draws(16), 0.7) != median_bounds(draws(16))


def test_the_default_level_is_95_percent():
    x = draws(30, seed=7)
    for q in (0.1, 0.5, 0.8):
        assert quantile_upper_bound(x, q) == order_statistic(upper_rank(30, q, 0.95), np.inf)
        assert quantile_lower_bound(x, q) == order_statistic(lower_rank(30, q, 0.95), -np.inf)


def test_the_smallest_rank_where_the_level_sits_an_ulp_below_a_cdf_value():
    """n = 10, q = 0.01, conf one ulp below the float P(Bin <= 6): exactly, P(Bin <= 6) >=
    conf > P(Bin <= 5), so the rank is 7. The floating-point inverse cdf overshoots there
    (scipy's binom.ppf answers 7 where 6 suffices, a rank of 8); the bound must still be
    x_(7), not x_(8)."""
    from scipy.stats import binom

    conf = float(np.nextafter(binom.cdf(6, 10, 0.01), 0.0))
    assert upper_rank(10, 0.01, conf) == 7
    assert int(binom.ppf(conf, 10, 0.01)) + 1 == 8  # the edge this case exists for
    assert quantile_upper_bound(draws(10), 0.01, conf) == 10.0 * 7 + 0.5


def test_missing_values_are_dropped_and_too_few_draws_give_no_bound():
    """NaN and None (a missing value in an object column) are not draws: the bounds are
    those of the remaining values. No draws at all: no bound, at any level."""
    x = draws(16, seed=5)
    holes = np.insert(x.astype(object), [0, 4, 9], [np.nan, None, np.nan]).tolist()
    assert median_bounds(holes, 0.9) == median_bounds(x, 0.9)
    assert quantile_upper_bound(holes, 0.75, 0.9) == order_statistic(upper_rank(16, 0.75, 0.9), 0)
    assert quantile_lower_bound(holes, 0.25, 0.9) == order_statistic(lower_rank(16, 0.25, 0.9), 0)
    for empty in ([], [np.nan, np.nan]):
        assert quantile_upper_bound(empty, 0.5, 0.5) == np.inf
        assert quantile_lower_bound(empty, 0.5, 0.5) == -np.inf
        assert median_bounds(empty) == (-np.inf, np.inf)
