"""Reading a sweep back from MLflow, in bulk: one DataFrame row per network."""

from __future__ import annotations

import json
import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from ..spec import RunSpec
from .artifacts import local_dir
from .layout import KEY_TAG, STAGE_TAG
from .runs import SweepStore

__all__ = [
    "load_runs",
    "load_stage",
    "load_params",
    "load_params_by_id",
    "read_artifact",
    "spec_of",
]

_SPEC_TYPES = {f.name: type(f.default) for f in fields(RunSpec)}


def _typed(name: str, value: str):
    kind = _SPEC_TYPES.get(name)
    if kind is bool:
        return value == "True"
    if kind is int:
        return int(value)
    if kind is float:
        return float(value)
    return value


def _sweep(config, tracking_uri: str | None):
    """(store, parent run id, planned keys) of a config (a SweepConfig, dict or path)."""
    from ..sweep.config import SweepConfig, load_config, parse_config
    from ..sweep.plan import plan_runs, sweep_key
    from .connection import resolve_tracking_uri

    if not isinstance(config, SweepConfig):
        config = parse_config(config) if isinstance(config, dict) else load_config(config)
    from .secrets import reveal_uri

    uri = reveal_uri(resolve_tracking_uri(tracking_uri, config.tracking.uri))
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        # opening would create an empty database: say what is missing instead
        raise LookupError(f"no tracking store at {uri}; run the sweep first")
    store = SweepStore(uri, config.tracking.experiment or config.name, create=False)
    parent = store.find_parent(sweep_key(config))
    if parent is None:
        raise LookupError(f"sweep {config.name!r} has no runs in {uri}; run it first")
    return store, parent, {r.key for r in plan_runs(config)}


def load_runs(config, tracking_uri: str | None = None, planned_only: bool = True) -> pd.DataFrame:
    """The trained networks of a sweep: one row per FINISHED child run.

    ``config``: the sweep (path, dict or SweepConfig); the tracking store is resolved as
    for ``realspace sweep``. Columns: ``run_id``, ``run_key``, ``artifact_uri``, every
    RunSpec field (typed; ``target_params`` a dict), ``target_label``, ``run_status``
    (converged | plateau | budget | diverged), and the logged end-point metrics (``loss``,
    ``objective``, ``grad_norm``, ``min_eig``, ``certified``, ``census_*``, ``steps_taken``,
    ...).
    ``planned_only`` keeps the runs the config plans now (a sweep's store may hold runs
    of earlier versions of its config).
    """
    store, parent, planned = _sweep(config, tracking_uri)
    rows = []
    for run in store.child_runs(parent, finished_only=True):
        tags = run.data.tags
        if tags.get(STAGE_TAG) or KEY_TAG not in tags:
            continue
        if planned_only and tags[KEY_TAG] not in planned:
            continue
        spec, target_params = {}, {}
        for k, v in run.data.params.items():
            if k.startswith("target_params."):
                target_params[k.split(".", 1)[1]] = float(v)
            elif k in _SPEC_TYPES:
                spec[k] = _typed(k, v)
        spec["target_params"] = target_params
        rows.append(
            {
                "run_id": run.info.run_id,
                "run_key": tags[KEY_TAG],
                "artifact_uri": run.info.artifact_uri,
                "target_label": tags.get("target", spec.get("target")),
                "run_status": tags.get("status"),
                **spec,
                # a metric named like a spec field (``steps``: the steps taken, against the
                # budget) is renamed ``<name>_taken`` rather than overwrite the spec
                **{
                    (f"{k}_taken" if k in _SPEC_TYPES else k): v
                    for k, v in run.data.metrics.items()
                    if k != "train_objective"
                },
            }
        )
    df = pd.DataFrame(rows)
    if len(df) and "certified" in df:
        df["certified"] = df["certified"].astype(bool)
    return (
        df.sort_values(["target_label", "parametrization", "width", "seed"]).reset_index(drop=True)
        if len(df)
        else df
    )


def spec_of(row) -> RunSpec:
    """The RunSpec of a load_runs row."""
    data = {k: row[k] for k in _SPEC_TYPES if k in row}
    data["target_params"] = tuple(sorted(dict(row["target_params"]).items()))
    return RunSpec(**data)


def read_artifact(store: SweepStore, run_id: str, artifact_uri: str, name: str) -> Path:
    """A local path to one artifact of a run (in place for local stores, else downloaded)."""
    local = local_dir(artifact_uri)
    if local is not None:
        return local / name
    tmp = tempfile.mkdtemp(prefix="realspace-")
    return Path(store.client.download_artifacts(run_id, name, tmp))


def load_params(store: SweepStore, rows: pd.DataFrame) -> list[dict]:
    """The raw end-point parameters (params.npz) of each row of a load_runs frame."""
    out = []
    for run_id, uri in zip(rows["run_id"], rows["artifact_uri"], strict=True):
        with np.load(read_artifact(store, run_id, uri, "params.npz")) as z:
            out.append({k: z[k] for k in ("a", "b", "c", "e", "w")})
    return out


def load_stage(config, stage: str, tracking_uri: str | None = None) -> list[dict]:
    """The analysis-stage results of a sweep: the ``table.json`` rows of every FINISHED
    child of ``stage`` (pathology | seed_pairs | retrain), each with its ``run_id``."""
    store, parent, _ = _sweep(config, tracking_uri)
    rows = []
    for run in store.child_runs(parent, finished_only=True):
        if run.data.tags.get(STAGE_TAG) != stage:
            continue
        path = read_artifact(store, run.info.run_id, run.info.artifact_uri, "table.json")
        rows += [dict(r, run_id=run.info.run_id) for r in json.loads(path.read_text())]
    return rows


def load_params_by_id(store: SweepStore, run_ids: list[str]) -> list[dict]:
    """The raw end-point parameters of runs given by id."""
    uris = [store.client.get_run(r).info.artifact_uri for r in run_ids]
    return load_params(store, pd.DataFrame({"run_id": run_ids, "artifact_uri": uris}))
