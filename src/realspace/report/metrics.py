"""The report's per-cell aggregates as metrics for the sweep's parent run: names such as
``gap_median/<problem>/<parametrization>`` with step = width, so that a metrics chart
draws each against width. Plain (name, value, step) tuples; logging them is the tracking
layer's job."""

from __future__ import annotations

import re

import pandas as pd

__all__ = ["cell_metrics", "metric_name"]

# columns of stats.cell_stats and stats.census_table logged per cell
CELL_COLUMNS = ("gap_median", "gap_p90", "gap_max", "within_eps", "spurious_share")
CENSUS_COLUMNS = ("dead", "duplicate", "opposite", "effective_width")


def metric_name(*parts) -> str:
    """The parts joined by "/", each with the characters a metric name may not hold
    (anything but letters, digits, _ . - space :) replaced by "_"."""
    return "/".join(re.sub(r"[^A-Za-z0-9_.\- :]", "_", str(p)) for p in parts)


def cell_metrics(cells: pd.DataFrame, census: pd.DataFrame) -> list[tuple[str, float, int]]:
    """(name, value, step) per cell and column: the gap statistics as
    ``<column>/<problem>/<parametrization>``, the census means as
    ``census_<column>/<problem>/<parametrization>``; step = width; NaN values left out."""
    out = []
    for _, r in cells.iterrows():
        for k in CELL_COLUMNS:
            out.append((metric_name(k, r["problem"], r["parametrization"]), r[k], r["width"]))
    for _, r in census.iterrows():
        for k in CENSUS_COLUMNS:
            if k in r:
                name = metric_name("census_" + k, r["problem"], r["parametrization"])
                out.append((name, r[k], r["width"]))
    return [(k, float(v), int(s)) for k, v, s in out if pd.notna(v)]
