"""The MLflow layout of a sweep: which runs exist, what they are called and what they hold.

- one experiment per sweep name (``connection`` opens it);
- one parent run per sweep, found again by the tag ``realspace.sweep_key``; at the end
  it holds the sweep's totals as metrics, and the report under ``report/``;
- one child run per network (tag ``mlflow.parentRunId``), identified by the tag
  ``realspace.run_key``, with params (the RunSpec's flat form), tags, metrics (end-point
  numbers and the subsampled loss curve) and artifacts (see ``artifacts``);
- one child run per analysis unit, tagged ``realspace.stage``, with its inputs as params,
  per numeric column the median as a metric, and its rows as ``table.json``;
- a child becomes FINISHED only after all of its data is written (one batched call for
  params, tags and metrics, then the artifact files), so FINISHED means complete and
  anything else is left over from an interrupted attempt.

This module says what goes into each run (names, tags, params, metrics), without a
client; ``runs.SweepStore`` finds, creates and writes the runs.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import numpy as np

from .. import __version__
from ..spec import target_label

__all__ = [
    "KEY_TAG",
    "PARENT_TAG",
    "SHARD_TAG",
    "STAGE_TAG",
    "SWEEP_TAG",
    "git_commit",
    "metrics",
    "now_ms",
    "parent_tags",
    "provenance_tags",
    "record_metrics",
    "record_params",
    "record_run",
    "stage_metrics",
    "stage_params",
    "stage_tags",
]

KEY_TAG = "realspace.run_key"
SWEEP_TAG = "realspace.sweep_key"
PARENT_TAG = "mlflow.parentRunId"
STAGE_TAG = "realspace.stage"  # analysis children (pathology | seed_pairs | retrain)
SHARD_TAG = "realspace.shard"  # training children: the shard that trained them
NODE_TAG = "realspace.node"  # training children: the Ray node that trained them
VERSION_TAG = "realspace.version"
COMMIT_TAG = "realspace.git_commit"
# MLflow 3's UI treats experiments as GenAI apps (a traces overview) unless told otherwise:
# the experiment's kind says what it holds, and a link names the machine-learning view
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def experiment_url(base_url: str, experiment_id: str) -> str:
    """The MLflow UI page of a sweep's experiment: its runs table (without the workflow
    parameter MLflow 3.17 opens the GenAI overview, "Traces: 0")."""
    page = f"/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return base_url.rstrip("/") + page


# end-point numbers logged as metrics (with the census_* and proj_* counts); the rest of a
# record's summary (margins, kink distance, ...) is in its record.json
METRIC_KEYS = (
    "loss",
    "diverged_step",
    "objective",
    "grad_norm",
    "min_eig",
    "certified",
    "near_kink",
    "steps",
    "margin_min_kink_margin",
    "margin_min_hyperplane_angle",
    "margin_max_imbalance",
)
CURVE_POINTS = 50
PARAM_CHARS = 6000  # MLflow's cap on a param value


@cache
def git_commit() -> str | None:
    """The commit of the realspace checkout, when it is one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance_tags(commit: bool = True) -> dict[str, str]:
    """The realspace version and, with ``commit``, the git commit when there is one (the
    parent and the training children carry it; analysis children only the version)."""
    tags = {VERSION_TAG: __version__}
    if commit and git_commit():
        tags[COMMIT_TAG] = git_commit()
    return tags


def now_ms() -> int:
    """MLflow's clock: milliseconds since the epoch."""
    return int(time.time() * 1000)


def metrics(items: Iterable[tuple[str, float, int]], now: int | None = None) -> list:
    """MLflow Metrics from (name, value, step), non-finite values left out (MLflow would
    store them, and every reader would have to skip them)."""
    from mlflow.entities import Metric

    now = now_ms() if now is None else now
    return [Metric(k, float(v), now, int(step)) for k, v, step in items if np.isfinite(float(v))]


def parent_tags(sweep_key: str, extra: dict | None = None) -> dict[str, str]:
    """A parent run's tags: the sweep key it is found by, provenance, any ``extra``."""
    return {SWEEP_TAG: sweep_key, **provenance_tags(), **(extra or {})}


# -- training children ------------------------------------------------------------------
def record_run(parent_id: str, key: str, shard_id: str, record, node: str | None = None):
    """(run name, tags) of a training child, e.g. ``sin-u-w16-s0``."""
    spec = record.spec
    tags = {
        PARENT_TAG: parent_id,
        KEY_TAG: key,
        SHARD_TAG: shard_id,
        "parametrization": spec.parametrization,
        "width": str(spec.width),
        "seed": str(spec.seed),
        "target": target_label(spec),
        "status": record.status,
        "certified": str(record.certified),
        "dtype": record.dtype,
        "device": record.device,
        **provenance_tags(),
    }
    if node:
        tags[NODE_TAG] = node
    name = f"{tags['target']}-{spec.parametrization[0]}-w{spec.width}-s{spec.seed}"
    return name, tags


def record_params(record) -> dict[str, str]:
    """A training child's params: its spec's flat form (``RunSpec.from_flat`` reads it)."""
    return record.spec.flat()


def record_metrics(record) -> list[tuple[str, float, int]]:
    """A training child's metrics as (name, value, step): the end-point numbers at step
    0, and the loss curve ``train_objective`` at <= CURVE_POINTS of its steps (the full
    curve of <= 200 points is in params.npz)."""
    out = [
        (k, v, 0)
        for k, v in record.summary().items()
        if k in METRIC_KEYS or k.startswith(("census_", "proj_"))
    ]
    keep = np.flatnonzero(np.isfinite(record.history_loss))
    if len(keep) > CURVE_POINTS:
        keep = keep[np.unique(np.linspace(0, len(keep) - 1, CURVE_POINTS).astype(int))]
    out += [("train_objective", record.history_loss[i], record.history_step[i]) for i in keep]
    return out


# -- analysis children ------------------------------------------------------------------
def stage_tags(parent_id: str, key: str, stage: str) -> dict[str, str]:
    """An analysis child's tags (found by its run key, like a training child)."""
    return {
        PARENT_TAG: parent_id,
        KEY_TAG: key,
        STAGE_TAG: stage,
        **provenance_tags(commit=False),
    }


def stage_params(inputs: dict) -> dict[str, str]:
    """An analysis unit's inputs as params: scalars as they print, a mapping spread as
    ``<name>.<key>``, lists comma-joined (after the rest), each cut to MLflow's cap."""
    flat: dict[str, str] = {}
    for k, v in inputs.items():
        if isinstance(v, dict):
            flat.update({f"{k}.{kk}": str(vv) for kk, vv in v.items()})
        elif not isinstance(v, list):
            flat[k] = str(v)
    flat.update({k: ",".join(map(str, v)) for k, v in inputs.items() if isinstance(v, list)})
    return {k: v[:PARAM_CHARS] for k, v in flat.items()}


def _is_number(v) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)


def stage_metrics(rows: list[dict]) -> list[tuple[str, float, int]]:
    """An analysis unit's metrics: ``median_<column>`` of every numeric column (its
    finite values), in column-name order."""
    out = []
    for k in sorted({k for r in rows for k, v in r.items() if _is_number(v)}):
        vals = np.array([float(r[k]) for r in rows if _is_number(r.get(k))])
        vals = vals[np.isfinite(vals)]
        if len(vals):
            out.append((f"median_{k}", float(np.median(vals)), 0))
    return out
