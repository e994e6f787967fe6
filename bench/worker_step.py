"""Benchmark: a worker's step on tiny shards, the code of a git revision against this tree's,
side by side, stage by stage, with a check that both build the same records and rows.

    python bench/worker_step.py --baseline REV [--networks 4096] [--rounds 5]

For each shard shape (target sin, d = 1, 64 grid points, 50 Adam steps, float32, one torch
thread; widths 4 and 8; unrestricted, and restricted with the intrinsic method) a child
process trains a shard of --networks networks and times each stage of the worker step as
``train_and_record`` and the table writer run them, in CPU time of the process (on a
shared machine wall time mostly measures the neighbours):

  data     ``_shard_data``: each run's (X, y), one per distinct data set;
  train    ``train_shard``;
  polish   ``polish`` (nothing to polish here: the specs ask for none);
  certify  ``certify``, handed the data;
  records  ``build_records``, then ``build_records`` twice more (the best of the three
           counts: the step is short and the neighbours noisy);
  rows     the table rows and arrays of the piece (``piece_rows``, ``piece_arrays``; not
           the file writes).

Children run the code of revision REV (its ``src``, exported to a temporary folder) and of
this tree alternately, --rounds times each; per stage the median over rounds prints, in
microseconds per network, before and after, with their ratio, and the step's total.

Each child also hashes everything it built: every field of every record (the eval-grid
fields excepted: they are computed when read, by unchanged code), every table row and
every array, floats by their exact repr (signs of zeros included), arrays by their bytes.
The script checks that the digests of the two sides agree shape by shape.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(4, "unrestricted"), (4, "restricted"), (8, "unrestricted"), (8, "restricted")]
STAGES = ("data", "train", "polish", "certify", "records", "rows")


def _feed(h, v) -> None:
    """Hash v exactly: dicts in their order, networks array by array, floats by repr."""
    import numpy as np

    from realspace.core.nets import ShallowNet

    if isinstance(v, dict):
        h.update(b"{")
        for k, x in v.items():
            h.update(repr(k).encode())
            _feed(h, x)
        h.update(b"}")
    elif isinstance(v, list | tuple):
        h.update(b"[")
        for x in v:
            _feed(h, x)
        h.update(b"]")
    elif isinstance(v, ShallowNet):
        for x in (v.a, v.b, v.c, v.e, v.w):
            _feed(h, x)
    elif isinstance(v, np.ndarray):
        h.update(f"{v.dtype}{v.shape}".encode())
        h.update(np.ascontiguousarray(v).tobytes())
    else:
        h.update(f"{type(v).__name__}:{v!r};".encode())


def child(width: int, par: str, networks: int) -> dict:
    """One shard of one shape: CPU seconds per stage and the digest of what it built."""
    import dataclasses

    import torch

    from realspace.core.spec import RunSpec
    from realspace.tracking.tables import piece_arrays, piece_rows
    from realspace.train import RunRecord, TrainOptions, build_records, certify, polish, train_shard
    from realspace.train import _shard_data as shard_data

    torch.set_num_threads(1)
    spec = dict(target="sin", d=1, n_samples=64, optimizer="adam", steps=50, width=width)
    specs = [RunSpec(**spec, parametrization=par, seed=s) for s in range(networks)]
    options = TrainOptions(dtype=torch.float32)
    train_shard(specs[:8], options)  # first calls (imports, kernels) not timed
    seconds = {}

    def timed(stage, fn, repeats=1):
        best = float("inf")
        for _ in range(repeats):
            start = time.process_time()
            out = fn()
            best = min(best, time.process_time() - start)
        seconds[stage] = best
        return out

    data = timed("data", lambda: shard_data(specs))
    result = timed("train", lambda: train_shard(specs, options, data=data))
    result, polished = timed("polish", lambda: polish(result, data))
    certificates = timed("certify", lambda: certify(result, data=data))
    records = timed("records", lambda: build_records(result, certificates, data, polished), 3)
    keys = [f"run-{m}" for m in range(networks)]
    rows, arrays = timed(
        "rows", lambda: (piece_rows(keys, records, "shard", None), piece_arrays(keys, records))
    )
    h = hashlib.sha256()
    names = [f.name for f in dataclasses.fields(RunRecord) if not f.name.startswith(("_", "eval"))]
    for r in records:
        _feed(h, {k: getattr(r, k) for k in names})
    _feed(h, rows)
    _feed(h, arrays)
    return {"seconds": seconds, "digest": h.hexdigest()}


def run_child(src: Path, width: int, par: str, networks: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(width), par, "--networks", str(networks)],
        env={**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--baseline", help="git revision whose code is 'before'")
    ap.add_argument("--networks", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--child", nargs=2, metavar=("WIDTH", "PARAMETRIZATION"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], args.networks)))
        return
    if not args.baseline:
        ap.error("--baseline REV is required")
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.baseline, "src"],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        sides = {"before": Path(tmp) / "src", "after": ROOT / "src"}
        runs = {(side, shape): [] for side in sides for shape in SHAPES}
        for r in range(args.rounds):
            for shape in SHAPES:
                for side, src in sides.items():
                    runs[side, shape].append(run_child(src, *shape, args.networks))
            print(f"round {r + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    print(
        f"worker step, one shard of {args.networks} networks (sin, d=1, 64 points, 50 Adam "
        f"steps, float32, 1 thread): CPU us per network, median of {args.rounds} rounds, "
        f"before = {args.baseline}, after = this tree, alternated"
    )
    head = (
        f"{'width':>5} {'parametrization':<15} {'stage':<8} {'before':>8} {'after':>8} {'ratio':>6}"
    )
    print(head)
    same = True
    for shape in SHAPES:
        per_net = {}
        for side in sides:
            got = runs[side, shape]
            per_net[side] = {
                s: statistics.median(1e6 * g["seconds"][s] / args.networks for g in got)
                for s in STAGES
            }
            per_net[side]["total"] = statistics.median(
                1e6 * sum(g["seconds"].values()) / args.networks for g in got
            )
        for stage in (*STAGES, "total"):
            b, a = per_net["before"][stage], per_net["after"][stage]
            ratio = f"{b / a:6.1f}" if a > 0 else f"{'-':>6}"
            print(f"{shape[0]:>5} {shape[1]:<15} {stage:<8} {b:8.1f} {a:8.1f} {ratio}")
        digests = {g["digest"] for side in sides for g in runs[side, shape]}
        same &= len(digests) == 1
        print(f"{'':>22}records, rows and arrays: {'identical' if len(digests) == 1 else 'DIFFER'}")
    if not same:
        sys.exit("the two sides built different records")


if __name__ == "__main__":
    main()
