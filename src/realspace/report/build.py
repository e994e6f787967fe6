"""``build_report``: frames in, files out. Computes the evidence, draws the figures,
renders report.md and report.html into one folder and returns what was written with the
verdicts and the per-cell metrics. Every file is renamed into place (a reader never sees
half a report); the folder, when created here, is its owner's alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..files import atomic_write, private_dir
from . import plots
from .evidence import Evidence, collect_evidence
from .gallery import gallery_items
from .metrics import cell_metrics
from .render import render_html, render_markdown
from .sections import FIGURES, report_sections
from .witnesses import best_witness, witness_item, witness_rows

__all__ = ["Report", "build_report", "witness_key"]


@dataclass
class Report:
    """What ``build_report`` wrote and found."""

    folder: Path  # where the files are
    files: list[Path]  # report.md, report.html, then the figures
    verdicts: list[dict]  # one per claim: claim, statement, verdict, evidence
    cells: pd.DataFrame  # stats.cell_stats of the runs
    metrics: list[tuple[str, float, int]] = field(default_factory=list)  # (name, value, step)


def build_report(
    runs: pd.DataFrame,
    stages: dict[str, list[dict]],
    folder: str | Path,
    eps: float,
    title: str,
    planned: int | None = None,
    gallery_params: dict[str, dict] | None = None,
    reference: pd.DataFrame | None = None,
    witness_params: dict[str, dict] | None = None,
) -> Report:
    """Statistics, figures, verdicts; writes report.md, report.html and the PNGs to
    ``folder``.

    ``runs``: load_runs rows; ``stages``: analysis rows by stage; ``eps``: near-optimality
    threshold on the gap; ``planned``: networks the sweep planned; ``reference``: J* and
    its label per row (default: ``stats.reference_frame``); ``gallery_params``: end
    points by run id for the realization gallery (choose them with ``pick_gallery``);
    ``witness_params``: the end point of the best claim-2 witness by run key
    (``witness_key``), drawn when given.
    """
    folder = private_dir(Path(folder))
    ev = collect_evidence(runs, stages, eps, planned=planned, reference=reference)
    figures = _draw_figures(ev, gallery_params or {}, witness_params or {}, folder)
    sections = report_sections(ev)
    _write_text(folder / "report.md", render_markdown(title, sections))
    images = {name: path.read_bytes() for name, path in figures.items()}
    _write_text(folder / "report.html", render_html(title, sections, images))
    files = [folder / "report.md", folder / "report.html", *figures.values()]
    return Report(folder, files, ev.verdicts, ev.cells, cell_metrics(ev.cells, ev.census))


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode()))


def _draw_figures(ev: Evidence, gallery_params: dict, witness_params: dict, folder: Path) -> dict:
    """Each of ``FIGURES`` drawn into ``folder``: its path by file name."""
    gallery = gallery_items(ev.runs, gallery_params) if len(ev.runs) else []
    drawn = {
        "gap_vs_width.png": plots.gap_vs_width(ev.cells, folder / "gap_vs_width.png", ev.eps),
        "spurious_vs_width.png": plots.spurious_vs_width(
            ev.cells, folder / "spurious_vs_width.png"
        ),
        "inverse_stability.png": plots.inverse_stability(
            ev.stability, ev.retrain, ev.pathology, ev.seed_pairs, folder / "inverse_stability.png"
        ),
        "census_vs_width.png": plots.census_vs_width(ev.census, folder / "census_vs_width.png"),
        "gallery.png": plots.gallery(gallery, folder / "gallery.png"),
        "witness.png": plots.witness(
            witness_item(ev.runs, best_witness(ev.witnesses), witness_params),
            folder / "witness.png",
        ),
    }
    assert tuple(drawn) == FIGURES
    return drawn


def witness_key(runs: pd.DataFrame, stages: dict[str, list[dict]]) -> str | None:
    """The run key of the best verified claim-2 witness of ``runs`` (load_runs rows with
    ``problem``), whose end point the witness figure draws; None without one."""
    if not len(runs):
        return None
    best = best_witness(witness_rows(runs, pd.DataFrame(stages.get("witness", []))))
    return None if best is None else str(best["run_key"])
