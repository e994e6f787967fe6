"""Distribution-free confidence bounds on quantiles from order statistics (claim 4).

For n independent draws of a continuous distribution with q-quantile xi_q, the number of
draws below xi_q is Binomial(n, q). So the k-th smallest draw x_(k) is at least xi_q with
probability P(Bin(n, q) < k): the smallest such k with probability >= conf makes x_(k) a
one-sided upper confidence bound of level conf; mirrored, a lower one. No assumption on
the distribution's shape, and O(n log n) (a sort).

The math: docs/science.md#the-claims-and-their-verdicts.
"""

from __future__ import annotations

import numpy as np

__all__ = ["quantile_upper_bound", "quantile_lower_bound", "median_bounds"]


def _rank(n: int, q: float, conf: float) -> int | None:
    """The smallest k (1-based) with P(Bin(n, q) <= k - 1) >= conf, None if none <= n."""
    from scipy.stats import binom

    k = int(binom.ppf(conf, n, q)) + 1  # P(Bin <= k - 1) >= conf
    while k > 1 and binom.cdf(k - 2, n, q) >= conf:  # ppf's float edge: the smallest k
        k -= 1
    return k if k <= n else None


def quantile_upper_bound(values, q: float, conf: float = 0.95) -> float:
    """A one-sided upper confidence bound of level ``conf`` on the q-quantile of the
    distribution ``values`` are drawn from: x_(k), k the smallest rank with
    P(Bin(n, q) < k) >= conf. inf when n is too small for that level (n = 0 included);
    NaN values are dropped."""
    x = np.sort(np.asarray(values, dtype=float))
    x = x[~np.isnan(x)]
    k = _rank(x.size, q, conf) if x.size else None
    return float(x[k - 1]) if k is not None else float("inf")


def quantile_lower_bound(values, q: float, conf: float = 0.95) -> float:
    """A one-sided lower confidence bound of level ``conf`` on the q-quantile: the upper
    bound of the (1 - q)-quantile of -values, negated. -inf when n is too small."""
    return -quantile_upper_bound(-np.asarray(values, dtype=float), 1.0 - q, conf)


def median_bounds(values, conf: float = 0.95) -> tuple[float, float]:
    """(lower, upper): one-sided bounds of level ``conf`` each on the median (the sign
    test's order statistics). n = 16 at 95 %: x_(5) and x_(12)."""
    return quantile_lower_bound(values, 0.5, conf), quantile_upper_bound(values, 0.5, conf)
