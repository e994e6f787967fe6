"""The report's statistics on 10^5 seeds per cell: memory linear in the runs, no table
pairing, merging or comparing a cell's seeds with each other."""

import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from factories import run_frame

from realspace.report.evidence import collect_evidence


def as_loaded(cells, **columns):
    """``run_frame`` rows as ``load_runs`` returns them (before stats labels problems and
    measures gaps), each with a run key; the trained objective is ``j_final``."""
    return run_frame(
        cells,
        problem=None,
        reference=None,
        gap=None,
        loss=lambda df: df["j_final"] - 0.01,
        objective=lambda df: df["j_final"],
        certified=lambda df: df["seed"] % 3 == 0,
        near_kink=lambda df: df["seed"] % 7 == 0,
        objective_before_polish=lambda df: df["j_final"] * 1.001,
        **columns,
    )


def sweep(rng, seeds) -> pd.DataFrame:
    """Three problems of ``seeds`` seeds per cell: sin with weight decay in both
    parametrizations at one width (claims 1 and 4, the census, the canonical forms), the
    Gaussian teacher-student problem and a classification problem in the plane."""
    gaps = {par: rng.exponential(2e-4, seeds) for par in ("unrestricted", "restricted")}
    sin = as_loaded(
        {(par, 8): g for par, g in gaps.items()},
        target="sin",
        target_label="sin wd=0.01",
        d=1,
        canonical_objective=lambda df: df["j_final"] * (1 + 1e-7 * (df["seed"] % 2)),
        canonical_member=lambda df: df["parametrization"] == "unrestricted",
        census_dead=lambda df: (df["seed"] % 5) / 8,
        census_effective_width=7.0,
    )
    gaussian = as_loaded(
        {("unrestricted", 6): rng.exponential(1e-2, seeds)},
        target="gaussian",
        target_label="gaussian k=4",
        weight_decay=0.0,
        d=2,
        teacher_width=4,
        teacher_seed=0,
        linear_term=np.nan,
    )
    mixture = as_loaded(
        {("unrestricted", 4): rng.exponential(1e-3, seeds)},
        target="mixture",
        target_label="mixture wd=0.01",
        d=2,
        n_classes=2,
        accuracy=lambda df: 1 - (df["seed"] % 4) / 100,
        normalized_margin=lambda df: 0.1 + (df["seed"] % 10) / 100,
    )
    runs = pd.concat([sin, gaussian, mixture], ignore_index=True)
    return runs.assign(run_key=[f"k{i}" for i in range(len(runs))])


# 10^5: about 25 s here, building the frame and tracing memory
@pytest.mark.parametrize("seeds", [10_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_the_report_statistics_of_many_seeds_per_cell_fit_in_linear_memory(seeds):
    runs = sweep(np.random.default_rng(0), seeds)
    sin = runs["target"] == "sin"
    ref = pd.DataFrame(
        {"j_star": np.where(sin, 0.25, np.nan), "reference": np.where(sin, "convex_exact", "")},
        index=runs.index,
    )
    tracemalloc.start()
    start = time.perf_counter()
    ev = collect_evidence(runs, {}, 1e-4, reference=ref)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{len(runs)} runs: {seconds:.1f} s traced, peak {peak / 2**20:.0f} MiB")
    assert peak < 500 * 2**20
    # every table saw each cell's 10^5 seeds once
    assert (ev.cells["runs"] == seeds).all() and len(ev.cells) == 4
    assert ev.near_optimality.set_index("parametrization")["runs"].to_dict() == {
        "restricted": seeds,
        "unrestricted": seeds,
    }
    assert ev.paired["pairs"].tolist() == [seeds]
    assert ev.claim4[["width", "method"]].values.tolist() == [[8, "intrinsic"]]
    assert ev.expressivity.set_index("problem")["runs"].to_dict() == {"sin wd=0.01 d=1": seeds}
    assert ev.spurious["runs"].tolist() == [seeds]
    assert ev.classification["runs"].tolist() == [seeds]
    assert len(ev.census) == 4 and len(ev.rates) == 4


def test_no_statistic_names_a_column_the_report_leaves_unread():
    """``publish.UNREAD`` is a list of columns the report does not read from a sweep's
    tables (to hold less at scale): no module of the statistics or the report names one
    (as a string), so none of them can be missing one. The report built with and without
    them is compared on a real sweep in the flow's tests."""
    import re
    from pathlib import Path

    import realspace.report
    import realspace.stats
    from realspace.report.publish import UNREAD

    folders = [Path(m.__file__).parent for m in (realspace.stats, realspace.report)]
    named = {}
    for path in (p for f in folders for p in sorted(f.glob("*.py"))):
        if path.name == "publish.py":
            continue
        text = path.read_text()
        for column in UNREAD:
            if re.search(rf"[\"']{re.escape(column)}[\"']", text):
                named.setdefault(column, []).append(path.name)
    assert named == {}
    assert len(set(UNREAD)) == len(UNREAD) > 0
