"""Compare one sweep's end points in two tracking stores: the same run keys, the same losses.

    python bench/compare_sweeps.py configs/default.yaml sqlite:///A/mlruns.db sqlite:///B/mlruns.db

Used to show that a change of code that must not change results (a refactor) did not:
both stores hold the sweep of the same config, trained before and after the change. Prints
the keys found in one store only and the largest absolute and relative differences of the
end-point loss and objective over the common keys; exits 1 unless the keys are equal and
every difference is within ``--rtol`` (default 0: bit for bit).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from realspace.tracking import load_runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rtol", type=float, default=0.0)
    args = ap.parse_args()
    a = load_runs(args.config, args.before).set_index("run_key")
    b = load_runs(args.config, args.after).set_index("run_key")
    only_a, only_b = sorted(set(a.index) - set(b.index)), sorted(set(b.index) - set(a.index))
    common = a.index.intersection(b.index)
    print(f"runs: {len(a)} before, {len(b)} after, {len(common)} common")
    print(f"keys only before: {len(only_a)}, only after: {len(only_b)}")
    ok = not only_a and not only_b
    for col in ("loss", "objective"):
        x = a.loc[common, col].to_numpy(float)
        y = b.loc[common, col].to_numpy(float)
        diff = np.abs(x - y)
        rel = diff / np.maximum(np.abs(x), 1e-300)
        same = int(np.sum(x == y))
        print(
            f"{col}: {same} of {len(common)} identical; max |diff| {diff.max(initial=0):.3g}, "
            f"max relative {rel.max(initial=0):.3g}"
        )
        ok = ok and bool(np.all(rel <= args.rtol))
    print("same end points" if ok else "DIFFERENT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
