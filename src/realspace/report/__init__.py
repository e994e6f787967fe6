"""The sweep report: statistics, figures and claim verdicts, as report.md and a
self-contained report.html (figures embedded). Frames in, files out; reading the runs
from MLflow and logging the report back is ``realspace.tracking.publish``."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import stats
from ..inverse import fit_slope
from . import plots
from .claims import claim_verdicts
from .gallery import gallery_items, pick_gallery
from .metrics import cell_metrics

__all__ = ["Report", "build_report", "gallery_items", "pick_gallery"]


@dataclass
class Report:
    folder: Path
    files: list[Path]
    verdicts: list[dict]
    cells: pd.DataFrame
    metrics: list[tuple[str, float, int]] = field(default_factory=list)  # (name, value, step)


def _md_table(df: pd.DataFrame, digits: int = 3) -> str:
    if df.empty:
        return "_(none)_"

    def fmt(v):
        if isinstance(v, float | np.floating):
            return f"{v:.{digits}g}" if np.isfinite(v) else str(v)
        return str(v).replace("|", "/")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows])


def build_report(
    runs: pd.DataFrame,
    stages: dict[str, list[dict]],
    out: str | Path,
    eps: float,
    title: str,
    planned: int | None = None,
    gallery_params: dict[str, dict] | None = None,
    reference: pd.DataFrame | None = None,
) -> Report:
    """Statistics, figures, verdicts; writes report.md, report.html and the PNGs to ``out``.

    ``runs``: load_runs rows; ``stages``: analysis rows by stage; ``reference``: J* and its
    label per row (default: ``stats.reference_frame``); ``gallery_params``: end points by
    run id for the realization gallery (choose them with ``pick_gallery``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = stats.with_problems(runs) if len(runs) else runs
    if len(df):
        ref = reference if reference is not None else stats.reference_frame(df)
        df = stats.gap_values(df, ref)
        cells = stats.cell_stats(df, eps)
        rates = stats.decay_rates(cells)
        c4 = stats.claim4_table(df)
        census = stats.census_table(df)
    else:
        cells = rates = c4 = census = pd.DataFrame()
    path = pd.DataFrame(stages.get("pathology", []))
    pairs = pd.DataFrame(stages.get("seed_pairs", []))
    retrain = pd.DataFrame(stages.get("retrain", []))
    verdicts = claim_verdicts(df, cells, rates, c4, path, pairs, retrain, eps)

    figs = {
        "gap_vs_width.png": plots.gap_vs_width(cells, out / "gap_vs_width.png", eps),
        "spurious_vs_width.png": plots.spurious_vs_width(cells, out / "spurious_vs_width.png"),
        "inverse_stability.png": plots.inverse_stability(
            path, pairs, retrain, out / "inverse_stability.png"
        ),
        "census_vs_width.png": plots.census_vs_width(census, out / "census_vs_width.png"),
        "gallery.png": plots.gallery(
            gallery_items(df, gallery_params or {}) if len(df) else [], out / "gallery.png"
        ),
    }

    sections = _sections(df, cells, rates, c4, census, path, pairs, retrain, verdicts, eps, planned)
    md, body = [f"# {title}\n"], [f"<h1>{html.escape(title)}</h1>"]
    for heading, text, table, fig in sections:
        md.append(f"## {heading}\n")
        body.append(f"<h2>{html.escape(heading)}</h2>")
        if text:
            md.append(text + "\n")
            body.append("".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n")))
        if table is not None:
            md.append(_md_table(table) + "\n")
            body.append(
                table.to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0, classes="t")
            )
        if fig:
            md.append(f"![{heading}]({fig})\n")
            data = base64.b64encode(figs[fig].read_bytes()).decode()
            body.append(f'<img alt="{html.escape(heading)}" src="data:image/png;base64,{data}">')
    (out / "report.md").write_text("\n".join(md))
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table.t{border-collapse:collapse;font-size:12px;margin:1em 0}"
        "table.t td,table.t th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "img{max-width:100%}"
    )
    (out / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )
    metrics = cell_metrics(cells, census)
    files = [out / "report.md", out / "report.html", *figs.values()]
    return Report(out, files, verdicts, cells, metrics)


def _sections(df, cells, rates, c4, census, path, pairs, retrain, verdicts, eps, planned):
    n = len(df)
    done = f"{n} of {planned} planned networks" if planned else f"{n} networks"
    summary = (
        f"{done} finished. Gap = J(end point) - J*, where J is the trained objective (the "
        f"loss, plus the weight-decay penalty when lam > 0) and J* the best reference that "
        f"applies (its label is in each row). Near-optimal: gap <= eps = {eps:g}. Training "
        "ran in the dtype recorded with each run (float32 by default); every statistic here "
        "is computed in float64."
    )
    claims = pd.DataFrame(
        [
            {"claim": v["claim"], "verdict": v["verdict"], "statement": v["statement"]}
            for v in verdicts
        ]
    )
    evidence = "\n\n".join(
        f"Claim {v['claim']} ({v['verdict']}): {v['evidence']}" for v in verdicts
    )
    cols = [
        "problem",
        "parametrization",
        "width",
        "runs",
        "reference",
        "j_star",
        "gap_median",
        "gap_p90",
        "gap_max",
        "within_eps",
        "certified",
        "spurious_share",
    ]
    sec = [
        ("Summary", summary, None, None),
        ("Claims", evidence, claims, None),
        (
            "Near-optimality",
            "Per cell; the band in the figure is the 10-90 % range over seeds.",
            cells[cols] if len(cells) else pd.DataFrame(),
            "gap_vs_width.png",
        ),
        (
            "Gap decay with width",
            "Least-squares exponent p of median gap ~ width^p (widths with a positive median gap).",
            rates,
            None,
        ),
        (
            "Spurious minima",
            "Certified = gradient norm and negative curvature below tolerance "
            "(float64); spurious = certified with gap > eps.",
            None,
            "spurious_vs_width.png",
        ),
        ("Claim 4: restricted vs unrestricted", None, c4, None),
        (
            "Degeneracy census",
            "Mean shares of neurons over seeds; effective width = live "
            "neurons of the canonical form.",
            census,
            "census_vs_width.png",
        ),
    ]
    if not path.empty:
        slopes = pd.DataFrame(
            [
                {
                    "family": f,
                    "r_half_raw ~ n^p": fit_slope(g["n"], g["r_half_raw"], tail=0.5),
                    "r_half_Omega ~ n^p": fit_slope(g["n"], g["r_half_canonical"], tail=0.5),
                    "r_one_raw ~ n^p": fit_slope(g["n"], g["r_one_raw"], tail=0.5),
                    "r_half_raw(d_inf) ~ n^p": fit_slope(g["n"], g["r_half_raw_inf"], tail=0.5),
                    "r_half_raw at max n": g.loc[g["n"].idxmax(), "r_half_raw"],
                    "r_half_Omega at max n": g.loc[g["n"].idxmax(), "r_half_canonical"],
                }
                for f, g in path.groupby("family")
            ]
        )
        sec.append(
            (
                "Inverse stability: pathologies",
                "D = 2, n = 2^1 .. 2^max; exponents fitted in log-log.",
                slopes,
                "inverse_stability.png",
            )
        )
    if not pairs.empty:
        sec.append(
            (
                "Inverse stability: seed pairs",
                "The closest pairs (in W^1,inf) of each "
                "cell: raw d_P vs the fibre distance on Omega_N.",
                pairs.describe().T.reset_index().rename(columns={"index": "column"}),
                None,
            )
        )
    if not retrain.empty:
        summ = (
            retrain.groupby(["parametrization", "kind", "delta"])[
                ["d_W", "d_P", "r_half", "fit_d_inf"]
            ]
            .median()
            .reset_index()
        )
        sec.append(
            (
                "Inverse stability: retraining",
                "Median over retrained networks. Moving a "
                "kink changes f' by |c a| on a sliver, so its d_W does not follow delta.",
                summ,
                None,
            )
        )
    sec.append(("Realizations", None, None, "gallery.png"))
    return sec
