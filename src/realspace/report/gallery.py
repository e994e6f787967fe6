"""The realization gallery: which runs to draw, and their networks rebuilt from the
stored end-point parameters (realization, target and kinks on the evaluation grid) as
panels for ``plots.gallery``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stats
from ..problem import eval_grid, network_from_params, target_on

__all__ = ["pick_gallery", "gallery_items"]


def pick_gallery(df: pd.DataFrame) -> pd.DataFrame:
    """Runs to draw: per d = 1 MSE problem, the median-gap run of the narrowest and the
    widest width, in each parametrization (at most 8)."""
    keep = df[(df["d"] == 1) & (df["target"] != "gaussian")]
    picks = []
    for _, g in keep.groupby(["problem", "parametrization"]):
        for w in sorted({g["width"].min(), g["width"].max()}):
            cell = g[g["width"] == w].sort_values("gap")
            picks.append(cell.iloc[len(cell) // 2])
    return pd.DataFrame(picks[:8])


def gallery_items(df: pd.DataFrame, params: dict[str, dict], limit: int = 6) -> list[dict]:
    """Gallery panels (dicts with x, f, target, kinks, title) for the rows of ``df``
    (load_runs rows with ``problem`` and ``gap``, d = 1 MSE) whose end points ``params``
    holds by run key; at most ``limit``."""
    items = []
    for _, row in df.iterrows():
        if row["run_key"] not in params or len(items) >= limit:
            continue
        spec = stats.specs_of(row.to_frame().T)[0]
        net = network_from_params(params[row["run_key"]], spec.restricted)
        x = eval_grid(1, spec.D)
        a, b = net.a[:, 0], net.b
        live = (a != 0) & (net.c != 0)
        kinks = -b[live] / a[live]
        items.append(
            {
                "x": x[:, 0],
                "f": net(x),
                "target": target_on(spec, x),
                "kinks": kinks[np.abs(kinks) < spec.D],  # those inside [-D, D]
                "title": f"{row['problem']} {spec.parametrization} N={spec.width} "
                f"seed {spec.seed}\ngap {row['gap']:.2e}",
            }
        )
    return items
