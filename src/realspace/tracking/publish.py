"""Read a sweep from MLflow, build its report, log the report back to the parent run."""

from __future__ import annotations

from pathlib import Path

__all__ = ["publish_report", "default_report_dir"]


def default_report_dir(cfg) -> Path:
    """``reports/<sweep name>`` in the current folder."""
    return Path("reports") / cfg.name


def publish_report(config, tracking_uri: str | None = None, out_dir=None, log: bool = True):
    """Build the report of ``config``'s sweep into ``out_dir`` and (with ``log``) attach it
    to the sweep's parent run with the per-cell metrics. Returns the Report."""
    from ..report import build_report, pick_gallery
    from ..stats import reference_frame, with_problems
    from ..sweep.config import SweepConfig, load_config, parse_config
    from ..sweep.plan import plan_runs
    from .load import _sweep, load_params, load_runs, load_stage

    if not isinstance(config, SweepConfig):
        config = parse_config(config) if isinstance(config, dict) else load_config(config)
    store, parent, _ = _sweep(config, tracking_uri)
    runs = load_runs(config, tracking_uri)
    stages = {
        s: load_stage(config, s, tracking_uri) for s in ("pathology", "seed_pairs", "retrain")
    }
    gallery_params, reference = {}, None
    if len(runs):
        framed = with_problems(runs)
        reference = reference_frame(framed, samples=config.analysis.convex_samples)
        from ..stats import gap_values

        picks = pick_gallery(gap_values(framed, reference))
        if len(picks):
            gallery_params = dict(zip(picks["run_id"], load_params(store, picks), strict=True))
    report = build_report(
        runs,
        stages,
        out_dir or default_report_dir(config),
        config.analysis.gap_eps,
        f"realspace report: sweep {config.name}",
        planned=len(plan_runs(config)),
        gallery_params=gallery_params,
        reference=reference,
    )
    if log:
        store.log_report(parent, report.folder, report.metrics)
    return report
