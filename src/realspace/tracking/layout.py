"""The MLflow layout of a sweep: which runs exist, what they are called and what they hold.

- one experiment per sweep name (``connection`` opens it), tagged so that MLflow's UI
  opens it on its runs;
- one parent run per sweep, found again by the tag ``realspace.sweep_key`` and tagged
  with the layout version (``realspace.layout``); at the end it holds the sweep's totals
  as metrics, and the report under ``report/`` with per-cell metrics charted by width;
  it also holds the drivers' lease (``lease``: params ``realspace.lease.<n>``, tag
  ``realspace.lease``);
- one *cell run* per cell (the networks that differ only by seed), a child of the parent
  tagged ``realspace.cell``: the cell's spec as params, its networks' tables and arrays
  under ``shards/`` (``tables``), and once every network of the cell is in: aggregates
  as metrics and ``networks.html``, the cell's table with each network's realization
  (``views``), then FINISHED;
- on request (``tracking.network_runs``; by default for sweeps of at most
  64 networks) one run per network, a child of its cell run, with
  the spec as params, the end-point numbers and loss curve as metrics, and its end point
  and realization as artifacts; written when the cell closes, FINISHED last;
- one child run per analysis unit, tagged ``realspace.stage``, with its inputs as params,
  per numeric column the median as a metric, and its rows as ``table.json``.

Which networks are trained is told by the cells' tables alone (``tables``); every run
becomes FINISHED only after all of its data is written, so FINISHED means complete.

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
from ..core.spec import target_label

__all__ = [
    "CELL_TAG",
    "KEY_TAG",
    "LAYOUT",
    "LAYOUT_TAG",
    "PARENT_TAG",
    "SHARD_TAG",
    "STAGE_TAG",
    "SWEEP_TAG",
    "git_commit",
    "metrics",
    "now_ms",
    "parent_tags",
    "provenance_tags",
    "cell_metrics",
    "cell_params",
    "cell_run",
    "network_metrics",
    "network_run",
    "stage_metrics",
    "stage_params",
    "stage_tags",
]

KEY_TAG = "realspace.run_key"
SWEEP_TAG = "realspace.sweep_key"
PARENT_TAG = "mlflow.parentRunId"
STAGE_TAG = "realspace.stage"  # analysis children (pathology | seed_pairs | retrain)
SHARD_TAG = "realspace.shard"  # network runs: the shard that trained them
NODE_TAG = "realspace.node"  # network runs: the Ray node that trained them
CELL_TAG = "realspace.cell"  # cell runs: the cell key (``sweep.plan.cell_key``)
LAYOUT_TAG = "realspace.layout"  # parent runs: how the sweep is laid out
LAYOUT = "2"  # 1 (realspace 0.1): a run per network, through the driver; 2: cell runs
VERSION_TAG = "realspace.version"
COMMIT_TAG = "realspace.git_commit"
# MLflow 3's UI treats experiments as GenAI apps (a traces overview) unless told otherwise:
# the experiment's kind says what it holds, and a link names the machine-learning view
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


# every link into MLflow's UI names its machine-learning view: MLflow 3.17 otherwise opens
# a page reached by a link in its GenAI navigation ("Evaluations", Traces, Judges), even
# for an experiment tagged as model development (checked in a browser)
ML_VIEW = "workflowType=machine_learning"


def experiment_url(base_url: str, experiment_id: str) -> str:
    """The MLflow UI page of a sweep's experiment: its runs table (without the workflow
    parameter MLflow 3.17 opens the GenAI overview, "Traces: 0")."""
    page = f"/#/experiments/{experiment_id}/runs?{ML_VIEW}"
    return base_url.rstrip("/") + page


def run_url(base_url: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI page of one run (a sweep's parent, a cell, a network, a unit), in
    the machine-learning view ("Runs" in the breadcrumb, the model-training side bar)."""
    page = f"/#/experiments/{experiment_id}/runs/{run_id}?{ML_VIEW}"
    return base_url.rstrip("/") + page


def ui_base(tracking_uri: str) -> str | None:
    """The address of the UI that an MLflow tracking server at ``tracking_uri`` serves
    (the server is its own UI), without credentials; None for a store that is not a
    server (SQLite, a database: `realspace ui` serves those)."""
    from urllib.parse import urlsplit, urlunsplit

    scheme, sep, rest = tracking_uri.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    # the credentials end at the last "@" (a password may hold "/" or "?", which would
    # otherwise end the authority early and leave a piece of it in the path)
    parts = urlsplit(f"{scheme}://{rest.rsplit('@', 1)[-1]}")
    try:
        port = parts.port
    except ValueError:  # not a URL after all: no link rather than a wrong one
        return None
    if not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


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
    """A parent run's tags: the sweep key it is found by, the layout, provenance, any
    ``extra``."""
    return {SWEEP_TAG: sweep_key, LAYOUT_TAG: LAYOUT, **provenance_tags(), **(extra or {})}


# -- cell runs ----------------------------------------------------------------------
def cell_run(parent_id: str, key: str, spec, name: str) -> dict[str, str]:
    """A cell run's tags (its name is chosen by ``cell_names``)."""
    return {
        PARENT_TAG: parent_id,
        CELL_TAG: key,
        "target": target_label(spec),
        "parametrization": spec.parametrization,
        "width": str(spec.width),
        **provenance_tags(),
    }


def cell_names(specs: dict[str, object]) -> dict[str, str]:
    """Cell key -> run name, e.g. ``sin-r-w16``; the optimizer, learning rate and step
    budget (and a restricted run's method) are added where two cells would otherwise share
    a name."""
    base = {k: f"{target_label(s)}-{s.parametrization[0]}-w{s.width}" for k, s in specs.items()}
    seen: dict[str, int] = {}
    for name in base.values():
        seen[name] = seen.get(name, 0) + 1
    out = {}
    for k, s in specs.items():
        name = base[k]
        if seen[name] > 1:
            name += f"-{s.optimizer}-lr{s.lr:g}-{s.steps}st"
            name += f"-{s.restricted_method}" if s.restricted_method else ""
        out[k] = name
    return out


def cell_params(spec, seeds: int) -> dict[str, str]:
    """A cell run's params: its spec's flat form without the seed, and how many seeds."""
    flat = {k: v for k, v in spec.flat().items() if k != "seed"}
    return {**flat, "seeds": str(seeds)}


CELL_QUANTILES = {"objective": ("min", "median", "p90"), "loss": ("median",)}


def cell_metrics(df) -> list[tuple[str, float, int]]:
    """A closed cell's metrics from its table: how many networks (and how many
    diverged, certified), the objective's min / median / p90 and the median loss over
    the networks that did not diverge, the median gradient norm, the census means."""
    ok = df[df["run_status"] != "diverged"]
    out = [
        ("networks", len(df), 0),
        ("diverged", int((df["run_status"] == "diverged").sum()), 0),
        ("certified", int(df["certified"].astype(bool).sum()), 0),
    ]
    stat = {"min": np.min, "median": np.median, "p90": lambda v: np.quantile(v, 0.9)}
    for col, names in CELL_QUANTILES.items():
        vals = ok[col].to_numpy(float)
        vals = vals[np.isfinite(vals)]
        if len(vals):
            out += [(f"{col}_{n}", float(stat[n](vals)), 0) for n in names]
    if len(ok):
        out.append(("grad_norm_median", float(np.nanmedian(ok["grad_norm"])), 0))
    out += [(f"{c}_mean", float(df[c].mean()), 0) for c in df if c.startswith("census_")]
    return out


# -- network runs -----------------------------------------------------------------------
def network_run(cell_id: str, row) -> tuple[str, dict[str, str]]:
    """(run name, tags) of a network run, e.g. ``sin-u-w16-s0``."""
    tags = {
        PARENT_TAG: cell_id,
        KEY_TAG: row["run_key"],
        SHARD_TAG: row["shard"],
        "parametrization": row["parametrization"],
        "width": str(row["width"]),
        "seed": str(row["seed"]),
        "target": row["target_label"],
        "status": row["run_status"],
        "certified": str(bool(row["certified"])),
        "dtype": row["dtype"],
        "device": row["device"],
        **provenance_tags(),
    }
    if row.get("node"):
        tags[NODE_TAG] = row["node"]
    name = f"{tags['target']}-{row['parametrization'][0]}-w{row['width']}-s{row['seed']}"
    return name, tags


def network_metrics(row, curve: dict) -> list[tuple[str, float, int]]:
    """A network run's metrics as (name, value, step): the end-point numbers at step 0,
    and the loss curve ``train_objective`` at <= CURVE_POINTS of its steps."""
    out = []
    for k, v in row.items():
        name = "steps" if k == "steps_taken" else k
        if name in METRIC_KEYS or k.startswith(("census_", "proj_")):
            out.append((name, float(v), 0))
    steps, loss = curve["history_step"], curve["history_loss"]
    keep = np.flatnonzero(np.isfinite(loss))
    if len(keep) > CURVE_POINTS:
        keep = keep[np.unique(np.linspace(0, len(keep) - 1, CURVE_POINTS).astype(int))]
    out += [("train_objective", float(loss[i]), int(steps[i])) for i in keep]
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
