"""A sweep's runs as a frame: the labels every table groups by.

One row per network (``realspace.tracking.load_runs``): a *problem* is everything but the
parametrization, width and seed; a *cell* is problem x parametrization x width (``CELL``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.spec import RunSpec, shares_data

__all__ = [
    "PROBLEM_AXES",
    "CELL",
    "CENSUS",
    "with_problems",
    "restricted_methods",
    "with_methods",
    "trained_objective",
    "best_in_cell",
    "diverged_runs",
    "shared_data",
    "spec_groups",
    "specs_of",
]


# axes that, besides the target label, tell problems apart when a sweep varies them (the
# label already names weight decay)
PROBLEM_AXES = ("weight_decay", "optimizer", "lr", "steps", "n_samples", "noise", "d")


CELL = ["problem", "parametrization", "width"]


CENSUS = ("dead", "affine", "duplicate", "opposite", "imbalance_mean", "effective_width")


def with_problems(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with a ``problem`` label: the target label (which names a nonzero weight
    decay) and every other axis the frame varies, e.g. ``sin wd=0.01 lr=0.001``."""
    df = df.copy(deep=False)  # a column added, none written into: the caller's is intact
    varying = [a for a in PROBLEM_AXES[1:] if a in df and df[a].nunique() > 1]

    def label(row):
        parts = [str(row["target_label"])]
        for a in varying:
            v = row[a]
            parts.append(f"{a}={v:g}" if isinstance(v, int | float) else f"{a}={v}")
        return " ".join(parts)

    if not len(df):
        df["problem"] = pd.Series(dtype=str)
        return df
    # labelled once per distinct combination (a sweep has a few), not once per row
    axes = ["target_label", *varying]
    codes = df.groupby(axes, dropna=False, sort=False).ngroup().to_numpy()
    first = np.unique(codes, return_index=True)[1]
    labels = df.iloc[first].apply(label, axis=1).to_numpy()
    df["problem"] = labels[codes]
    return df


def restricted_methods(df: pd.DataFrame) -> pd.Series:
    """Each row's restricted method ("" for unrestricted rows). Restricted rows stored
    before the method was a field (no value) were trained by projection."""
    par = df["parametrization"] if "parametrization" in df else pd.Series("", index=df.index)
    given = df["restricted_method"] if "restricted_method" in df else pd.Series(index=df.index)
    given = given.where(given.map(lambda v: isinstance(v, str) and v != ""), "projection")
    return given.where(par == "restricted", "")


def with_methods(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose restricted rows' ``parametrization`` names their method
    (``restricted-intrinsic``) when the frame holds more than one, so that every table
    and figure grouped by parametrization keeps the methods apart; unchanged otherwise."""
    method = restricted_methods(df)
    if method[method != ""].nunique() <= 1:
        return df
    out = df.copy(deep=False)  # whole columns replaced, none written into
    out["parametrization"] = df["parametrization"].where(method == "", "restricted-" + method)
    return out


def trained_objective(df: pd.DataFrame) -> pd.Series:
    """What each run minimized: the objective with weight decay, the loss without."""
    wd = df["weight_decay"] if "weight_decay" in df else pd.Series(0.0, index=df.index)
    return df["objective"].where(wd > 0, df["loss"])


def best_in_cell(df: pd.DataFrame) -> pd.Series:
    """The smallest trained objective in each run's cell, restricted methods apart (the
    fallback reference)."""
    keys = [df[c] for c in CELL] + [restricted_methods(df)]
    return trained_objective(df).groupby(keys).transform("min")


def diverged_runs(df: pd.DataFrame) -> pd.Series:
    """A boolean mask, one per row: the run diverged (all False without ``run_status``)."""
    if "run_status" not in df:
        return pd.Series(False, index=df.index)
    return df["run_status"].eq("diverged")


def shared_data(df: pd.DataFrame) -> pd.Series:
    """Per row, whether the seeds of its cell train on one data set (``spec.shares_data``;
    rows without the columns have the defaults: grid points, no noise)."""

    def col(name, default):
        return df[name] if name in df else pd.Series(default, index=df.index)

    shared = shares_data(col("target", ""), col("sampling", "grid"), col("noise", 0.0))
    return pd.Series(shared, index=df.index)


def spec_groups(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(group of each row, the first row of each group): rows whose RunSpecs differ at
    most by their seed (the networks of one cell), groups numbered in order of first
    appearance. What a statistic that reads no seed computes once per group."""
    fields = [f for f in RunSpec.__dataclass_fields__ if f in df and f != "seed"]
    if not fields:
        return np.zeros(len(df), np.int64), np.zeros(min(len(df), 1), np.int64)
    keys = df[fields]
    if "target_params" in keys:  # dicts do not hash: their sorted items do
        keys = keys.assign(target_params=keys["target_params"].map(_hashable))
    codes = keys.groupby(fields, dropna=False, sort=False).ngroup().to_numpy()
    return codes, np.unique(codes, return_index=True)[1]


def _hashable(v):
    return tuple(sorted(v.items())) if isinstance(v, dict) else v


def specs_of(df: pd.DataFrame) -> list:
    """The RunSpec of each row (read column-wise: a row at a time costs a millisecond,
    20 s on a sweep of 20,000 networks)."""
    fields = [f for f in RunSpec.__dataclass_fields__ if f in df]
    return [RunSpec.from_dict(r) for r in df[fields].to_dict("records")]
