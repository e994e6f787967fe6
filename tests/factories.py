"""Sweep configurations and synthetic run frames for the tests: one small good document,
varied by each test through its top-level keys and written to YAML where a command reads
a file; and one builder of trained runs' rows, varied by each test through its columns."""

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

# the smallest good document: the keys a sweep must give (the rest have defaults)
GOOD = {"name": "t", "targets": [{"name": "sin"}], "widths": [2, 4]}
# the pieces several sweeps share
SIN_AND_TEACHER = [{"name": "sin"}, {"name": "teacher", "teacher_width": 2}]
LIGHT_ANALYSIS = {"pathology_max_log2": 3, "seed_pairs": 1, "retrain_seeds": 0}


def sweep_config(**overrides) -> dict:
    """The good document with ``overrides`` replacing (or adding) its top-level keys; a
    fresh copy each call, so that a test may change what it got."""
    return copy.deepcopy({**GOOD, **overrides})


def write_config(path: Path, doc: dict) -> Path:
    """``doc`` written to ``path`` as YAML; returns ``path``."""
    path.write_text(yaml.safe_dump(doc))
    return path


def run_frame(cells: dict, *, j_star: float = 0.25, **columns) -> pd.DataFrame:
    """Rows of trained runs as a loaded sweep holds them once its gaps are measured: for
    each (parametrization, width) of ``cells`` its list of per-seed gaps, one row per seed
    0.., cell after cell. Every run is of one regularized problem (sin, weight decay 0.01)
    measured against the exact convex optimum ``j_star`` (objective j_final = j_star +
    gap), converged (grad_norm 1e-9); restricted runs in intrinsic coordinates, unrestricted
    ones with the free linear term (NaN on restricted rows, which have none).

    ``columns`` override or add columns in the order given, as ``DataFrame.assign`` takes
    them (one value, one per row, or a function of the frame so far); None drops one. The
    defaults are what every test's runs share, so that a test names only what it varies."""
    rows = []
    for (par, width), gaps in cells.items():
        restricted = par == "restricted"
        for seed, gap in enumerate(gaps):
            rows.append(
                dict(
                    problem="sin wd=0.01",
                    parametrization=par,
                    restricted_method="intrinsic" if restricted else np.nan,
                    width=width,
                    seed=seed,
                    weight_decay=0.01,
                    reference="convex_exact",
                    gap=float(gap),
                    j_final=j_star + float(gap),
                    grad_norm=1e-9,
                    run_status="converged",
                    linear_term=np.nan if restricted else True,
                )
            )
    df = pd.DataFrame(rows)
    for name, value in columns.items():
        df = df.drop(columns=name) if value is None else df.assign(**{name: value})
    return df
