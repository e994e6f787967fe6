"""The sweep report: statistics, figures and claim verdicts, as report.md and a
self-contained report.html (figures embedded). Frames in, files out; reading the runs
from MLflow and logging the report back is ``realspace.report.publish``.

Modules, by job:

- ``build``: ``build_report``, which runs the others and writes the files;
- ``evidence``: every table the report states, computed once (``Evidence``);
- ``claims``: the verdicts on the four claims and the rules behind them;
- ``sections``: the prose, table and figure of each section;
- ``render``: Markdown and self-contained HTML;
- ``plots``: the figures;
- ``gallery``: the runs drawn in the realization gallery, rebuilt from their end points;
- ``metrics``: the per-cell aggregates as (name, value, step) for the parent run.

The math: docs/science.md#statistics.
"""

from .build import Report, build_report
from .claims import claim_verdicts
from .evidence import Evidence, collect_evidence
from .gallery import gallery_items, pick_gallery
from .metrics import cell_metrics

__all__ = [
    "Report",
    "build_report",
    "Evidence",
    "collect_evidence",
    "claim_verdicts",
    "pick_gallery",
    "gallery_items",
    "cell_metrics",
]
