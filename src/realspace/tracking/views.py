"""What MLflow's UI shows of a cell: its networks as an HTML table (``networks.html``,
which the artifact viewer previews) with each network's realization drawn inline, and
one network's realization as an SVG image.

Realizations are recomputed from the stored end points (they are functions of them):
nothing on an evaluation grid is stored.
"""

from __future__ import annotations

import html

import numpy as np

from ..core.problem import network_from_params, target_on
from ..core.spec import RunSpec

__all__ = ["MAX_DRAWN", "MAX_ROWS", "cell_html", "page_order", "realization_svg"]

POINTS = 101  # samples of a drawn realization
MAX_ROWS = 2000  # rows of networks.html (best objective first); the rest are in the tables
MAX_DRAWN = 200  # realizations drawn in networks.html
COLUMNS = (
    "seed",
    "run_status",
    "objective",
    "loss",
    "grad_norm",
    "min_eig",
    "certified",
    "near_kink",
    "steps_taken",
    "census_dead",
    "census_affine",
    "census_duplicate",
    "census_effective_width",
    "run_key",
)


def _curve(spec: RunSpec, params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(x, realization, target) on POINTS points of [-D, D] for a 1-D MSE run, else None."""
    if spec.d != 1 or spec.loss != "mse":
        return None
    x = np.linspace(-spec.D, spec.D, POINTS)[:, None]
    f = network_from_params(params, spec.has_linear)(x)
    return x[:, 0], f, target_on(spec, x)


def _polyline(x, y, lo, hi, w, h, colour, dash=""):
    span = (hi - lo) or 1.0
    px = (x - x[0]) / ((x[-1] - x[0]) or 1.0) * w
    py = h - (np.clip(y, lo, hi) - lo) / span * h
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{colour}" stroke-width="1.2"{extra} points="{pts}"/>'


def _range(g: np.ndarray) -> tuple[float, float]:
    """The drawn y-range: the target's, widened by a quarter on each side (a realization
    outside it is clipped at the border)."""
    lo, hi = float(g.min()), float(g.max())
    pad = 0.25 * ((hi - lo) or 1.0)
    return lo - pad, hi + pad


def realization_svg(
    spec: RunSpec, params: dict, w: int = 160, h: int = 48, target_ref: str | None = None
) -> str:
    """The realization (solid) against the noiseless target (dashed) on [-D, D], as an
    inline SVG image; empty for runs without a 1-D realization. With ``target_ref`` the
    target is drawn by reference to the element of that id (``cell_html`` defines it once
    per cell) instead of again."""
    curve = _curve(spec, params)
    if curve is None:
        return ""
    x, f, g = curve
    lo, hi = _range(g)
    target = (
        f'<use href="#{target_ref}"/>'
        if target_ref
        else _polyline(x, g, lo, hi, w, h, "#999", "3,2")
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}">' + target + _polyline(x, f, lo, hi, w, h, "#1f77b4") + "</svg>"
    )


def _cell(v) -> str:
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, float | np.floating):
        return f"{v:.4g}"
    return html.escape(str(v))


def page_order(df):
    """The rows of ``df`` in ``networks.html``'s order: by objective, NaN last, ties in
    table order (a stable sort: the page's first rows are the same whether it is given a
    whole cell or only those rows)."""
    return df.sort_values("objective", na_position="last", kind="stable")


def cell_html(title: str, df, params: dict[str, dict], total: int | None = None) -> str:
    """``networks.html`` of a cell: its networks sorted by objective (``page_order``; at
    most MAX_ROWS), with the realization of the first MAX_DRAWN drawn against the target.
    ``params``: run key -> end point (a, b, c, e, w); ``total``: the cell's networks,
    where ``df`` holds only its best (default: ``len(df)``)."""
    total = len(df) if total is None else total
    df = page_order(df)
    cols = [c for c in COLUMNS if c in df]
    defs, ref = "", None
    if len(df):  # every network of a cell has the same target: drawn once, used by id
        spec = RunSpec.from_row(df.iloc[0])
        if spec.d == 1 and spec.loss == "mse":
            x = np.linspace(-spec.D, spec.D, POINTS)
            g = target_on(spec, x[:, None])
            line = _polyline(x, g, *_range(g), 160, 48, "#999", "3,2")
            ref = "target"
            defs = (
                '<svg width="0" height="0" style="position:absolute"><defs>'
                + line.replace("<polyline ", f'<polyline id="{ref}" ', 1)
                + "</defs></svg>"
            )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["realization", *cols])
    body = []
    for i, (_, row) in enumerate(df.head(MAX_ROWS).iterrows()):
        svg = ""
        if i < MAX_DRAWN and row["run_key"] in params:
            svg = realization_svg(RunSpec.from_row(row), params[row["run_key"]], target_ref=ref)
        cells = "".join(f"<td>{_cell(row[c])}</td>" for c in cols)
        body.append(f"<tr><td>{svg}</td>{cells}</tr>")
    more = total - min(len(df), MAX_ROWS)
    note = f"<p>{more} more networks in the tables under shards/.</p>" if more else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font:13px sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}"
        "</style></head><body>" + defs + ""
        f"<h3>{html.escape(title)}: {total} networks</h3>"
        "<p>Sorted by objective. Realization (blue) against the noiseless target "
        "(dashed) on [-D, D]. Every network's row, end point and loss curve: "
        "shards/*.parquet and shards/*.npz.</p>"
        f"<table><tr>{head}</tr>{''.join(body)}</table>{note}</body></html>"
    )
