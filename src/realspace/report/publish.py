"""Read a sweep from MLflow, build its report, log the report back to the parent run."""

from __future__ import annotations

from pathlib import Path

__all__ = ["UNREAD", "publish", "publish_report", "default_report_dir"]

# columns of a sweep's tables that no statistic, table or figure of the report reads:
# where and how each network was trained and the end-point checks the report does not
# tabulate. Left unread, the report of 10^6 tiny networks holds 0.45 kB a network, not
# 0.66 kB (a test checks that the report is the same without them).
UNREAD = (
    "node",
    "shard",
    "device",
    "dtype",
    "eig_method",
    "min_eig",
    "min_kink_distance",
    "diverged_step",
    "polish_iterations",
    "steps_taken",
    "census_imbalance_max",
    "proj_folded",
    "proj_kink",
    "proj_merge",
    "proj_reseed",
    "margin_max_imbalance",
    "margin_min_abs_c",
    "margin_min_kink_margin",
    "margin_min_angle_same",
    "margin_min_angle_opposite",
    "margin_min_hyperplane_angle",
    "margin_n_live",
    "margin_n_padding",
    "margin_R1",
    "margin_R2",
    "margin_R3",
    "margin_R4",
    "margin_member",
)


def default_report_dir(cfg) -> Path:
    """``reports/<sweep name>`` in the current folder."""
    return Path("reports") / cfg.name


def publish_report(config, tracking_uri: str | None = None, out_dir=None, log: bool = True):
    """Build the report of ``config``'s sweep into ``out_dir`` and (with ``log``) attach it
    to the sweep's parent run with the per-cell metrics. Returns the Report. Raises
    LookupError when the store or the sweep's parent run does not exist."""
    from ..tracking.reader import SweepReader

    return publish(SweepReader(config, tracking_uri), out_dir, log)


def publish(reader, out_dir=None, log: bool = True):
    """``publish_report`` from an open SweepReader: everything is read through it, so
    the store is opened, the sweep planned and its children listed once."""
    from ..stats import gap_values, reference_frame, with_problems
    from ..sweep.analysis import STAGES
    from . import build_report, pick_gallery
    from .build import witness_key

    cfg = reader.config
    runs = reader.runs(omit=UNREAD)
    stages = {s: reader.stage(s) for s in STAGES}
    gallery_params, witness_params, reference = {}, {}, None
    if len(runs):
        framed = with_problems(runs)
        reference = reference_frame(framed, samples=cfg.analysis.convex_samples)
        picks = pick_gallery(gap_values(framed, reference))
        if len(picks):
            gallery_params = dict(zip(picks["run_key"], reader.params(picks), strict=True))
        best = witness_key(framed, stages)
        if best is not None:
            witness_params = {best: reader.params_by_key([best])[0]}
    report = build_report(
        runs,
        stages,
        out_dir or default_report_dir(cfg),
        cfg.analysis.gap_eps,
        f"realspace report: sweep {cfg.name}",
        planned=len(reader.planned),
        gallery_params=gallery_params,
        reference=reference,
        witness_params=witness_params,
    )
    if log:
        reader.store.log_report(reader.parent, report.folder, report.metrics)
    return report
