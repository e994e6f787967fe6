"""The realization gallery: which runs to draw, and their networks rebuilt from the
stored end-point parameters (realization, target and kinks on the evaluation grid; for a
classifier in the plane, its decision regions and training points) as panels for
``plots.gallery``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import stats
from ..core.choices import CLASSIFICATION_TARGETS
from ..core.problem import eval_grid, make_data, network_from_params, target_on

__all__ = ["pick_gallery", "gallery_items"]


def pick_gallery(df: pd.DataFrame) -> pd.DataFrame:
    """Runs to draw: per d = 1 problem on data, the median-gap run of the narrowest and the
    widest width, in each parametrization; per classification problem in the plane, that
    of the widest width (at most 8 in all, d = 1 first)."""
    line = df[(df["d"] == 1) & (df["target"] != "gaussian")]
    plane = df[(df["d"] == 2) & df["target"].isin(CLASSIFICATION_TARGETS)]
    picks = []
    for keep, widths in ((line, lambda g: {g.min(), g.max()}), (plane, lambda g: {g.max()})):
        for _, g in keep.groupby(["problem", "parametrization"]):
            for w in sorted(widths(g["width"])):
                cell = g[g["width"] == w].sort_values("gap")
                picks.append(cell.iloc[len(cell) // 2])
    return pd.DataFrame(picks[:8])


def gallery_items(df: pd.DataFrame, params: dict[str, dict], limit: int = 6) -> list[dict]:
    """Gallery panels for the rows of ``df`` (load_runs rows with ``problem`` and ``gap``)
    whose end points ``params`` holds by run key; at most ``limit``. A d = 1 run gives a
    dict with x, f, target, kinks and title; a classifier in the plane one with kind
    "regions", its predicted class on the evaluation grid (``grid``, ``predicted``), its
    training points and labels (``points``, ``labels``) and title."""
    items = []
    # the rows drawn, in the frame's order, before any row is built: a row of a sweep's
    # frame is a Series of its 80 columns, and a sweep has millions
    for _, row in df[df["run_key"].isin(list(params))].head(limit).iterrows():
        spec = stats.specs_of(row.to_frame().T)[0]
        net = network_from_params(params[row["run_key"]], spec.has_linear)
        if spec.d == 2:
            items.append(_regions(spec, net, row))
            continue
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


def _regions(spec, net, row) -> dict:
    """The decision regions of a classifier in the plane: class argmax_j f_j (m >= 3) or
    1[f > 0] (m = 2) on the 101 x 101 evaluation grid, and the training data with labels
    as class indices."""
    grid = eval_grid(2, spec.D)
    f = net(grid)
    predicted = np.argmax(f, axis=1) if f.ndim == 2 else (f > 0).astype(int)
    x, y = make_data(spec)
    labels = y.astype(int) if spec.n_classes > 2 else (y > 0).astype(int)
    return {
        "kind": "regions",
        "grid": grid,
        "predicted": predicted,
        "points": x,
        "labels": labels,
        "classes": spec.n_classes,
        "title": f"{row['problem']} {spec.parametrization} N={spec.width} seed {spec.seed}\n"
        f"gap {row['gap']:.2e}, accuracy {row.get('accuracy', np.nan):.2f}",
    }
