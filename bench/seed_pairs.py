"""Benchmark: the closest seed pairs of one cell, every pair's d_W sorted (the brute force
``seed_pair_table`` was) against the search by lower bounds (``core.nearest``).

The cell: end points of one d = 1 problem as training leaves them (tests/netgen.py's
``teacher_cell``): a width-N network fitted to sin on [-D, D], its neurons permuted and
every parameter perturbed by a relative sigma log-uniform in [1e-5, 1e-2] per network
(kinks moved), 2 % unrelated networks. Per n: seconds of each (the brute force only up to
``--brute-max``; above, its time estimated from its rate per pair at the largest n it ran,
in parentheses), their ratio, how many exact d_W the search evaluated, and whether both
gave the same rows (same pairs, order and numbers).

    python bench/seed_pairs.py                     # n = 200 .. 10^5, about 1.5 minutes
    python bench/seed_pairs.py --sizes 1000 --brute-max 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from realspace.core.distances import sobolev_distance
from realspace.core.nearest import closest_pairs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from netgen import teacher_cell  # noqa: E402


def every_pair(nets, D, k):
    """The brute force: d_W of every pair, sorted by (d_W, i, j), the first k."""
    pairs = [
        (float(sobolev_distance(nets[i], nets[j], D)), i, j)
        for i in range(len(nets))
        for j in range(i + 1, len(nets))
    ]
    return sorted(pairs)[:k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 500, 1000, 2000, 10**4, 10**5])
    ap.add_argument("--brute-max", type=int, default=500, help="largest n brute-forced")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--D", type=float, default=1.0)
    ap.add_argument("--closest", type=int, default=4)
    args = ap.parse_args()
    print(
        f"one cell: width {args.width}, d = 1, D = {args.D:g}, closest {args.closest}; "
        "a teacher perturbed, 2 % unrelated networks"
    )
    print(f"{'n':>7} {'pairs':>11} {'brute s':>10} {'search s':>9} {'ratio':>8} {'d_W':>6}  same")
    per_pair = None
    for n in args.sizes:
        nets = teacher_cell(np.random.default_rng(n), n, args.width, args.D)
        pairs = n * (n - 1) // 2
        stats = {}
        start = time.perf_counter()
        found = closest_pairs(nets, args.D, args.closest, stats)
        search = time.perf_counter() - start
        if n <= args.brute_max:
            start = time.perf_counter()
            same = "yes" if every_pair(nets, args.D, args.closest) == found else "NO"
            brute = time.perf_counter() - start
            per_pair, shown = brute / pairs, f"{brute:.2f}"
            ratio = f"{brute / search:.0f}x"
        elif per_pair is not None:
            brute, same = per_pair * pairs, "-"
            shown, ratio = f"({brute:.0f})", f"({brute / search:.0f}x)"
        else:
            shown, ratio, same = "-", "-", "-"
        print(
            f"{n:>7} {pairs:>11} {shown:>10} {search:>9.2f} {ratio:>8} "
            f"{stats['evaluated']:>6}  {same}"
        )


if __name__ == "__main__":
    main()
