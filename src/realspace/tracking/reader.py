"""Reading a sweep back from its tracking store, in bulk.

A ``SweepReader`` is opened once per (config, tracking URI): it resolves the URI, finds
the sweep's parent run and plans the sweep once, and lists the parent's children in one
paged query, kept for every question asked of it afterwards (the status of each planned
run, the runs as a DataFrame, an analysis stage's rows, end-point parameters). Opening
it changes nothing in the store: a missing SQLite file is reported, not created.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from ..spec import RunSpec
from .artifacts import read_end_points, read_table
from .connection import resolve_tracking_uri, store_exists
from .layout import KEY_TAG, STAGE_TAG
from .runs import SweepStore

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["SweepReader", "load_runs", "run_state", "sweep_status"]

_SPEC_FIELDS = frozenset(RunSpec.__dataclass_fields__)


class SweepReader:
    """One sweep as its tracking store holds it.

    Raises LookupError when there is nothing to read: no SQLite file at the URI, or no
    parent run of this sweep in the store.
    """

    def __init__(self, config, tracking_uri: str | None = None):
        """``config``: the sweep (path, dict or SweepConfig); ``tracking_uri``: as for
        ``realspace sweep`` (--tracking-uri, else MLFLOW_TRACKING_URI, else the config's,
        else ./mlruns.db); a masked URI is resolved to the real one."""
        from ..sweep.config import as_config  # pydantic loads with the first reader
        from ..sweep.plan import plan_runs, sweep_key
        from .secrets import reveal_uri

        self.config = as_config(config)
        uri = reveal_uri(resolve_tracking_uri(tracking_uri, self.config.tracking.uri))
        if not store_exists(uri):
            raise LookupError(f"no tracking store at {uri}; run the sweep first")
        self.store = SweepStore(uri, self.config.tracking.experiment or self.config.name, False)
        self.parent = self.store.find_parent(sweep_key(self.config))
        if self.parent is None:
            raise LookupError(f"sweep {self.config.name!r} has no runs in {uri}; run it first")
        self.planned = plan_runs(self.config)

    @property
    def uri(self) -> str:
        return self.store.uri

    @cached_property
    def children(self) -> list:
        """Every active child of the parent (MLflow Runs, any status), in one paged
        query on first use; every other answer is read from this list."""
        return self.store.child_runs(self.parent)

    def _finished(self, stage: str | None) -> list:
        """The FINISHED children of an analysis stage, or with None the FINISHED training
        children (a run key and no stage tag), in the store's order."""
        out = []
        for run in self.children:
            tags = run.data.tags
            if run.info.status != "FINISHED":
                continue
            if stage is None and KEY_TAG in tags and not tags.get(STAGE_TAG):
                out.append(run)
            elif stage is not None and tags.get(STAGE_TAG) == stage:
                out.append(run)
        return out

    def status(self) -> dict[str, str]:
        """Every planned run key -> its ``run_state``."""
        seen: dict[str, set[str]] = {}
        for run in self.children:
            key = run.data.tags.get(KEY_TAG)
            if key:
                seen.setdefault(key, set()).add(run.info.status)
        return {r.key: run_state(seen.get(r.key, set())) for r in self.planned}

    def runs(self, planned_only: bool = True) -> pd.DataFrame:
        """The trained networks: one row per FINISHED training child.

        Columns: ``run_id``, ``run_key``, ``artifact_uri``, ``target_label``,
        ``run_status`` (converged | plateau | budget | diverged), every RunSpec field
        logged (typed; ``target_params`` a dict, last), and the end-point metrics
        (``loss``, ``objective``, ``grad_norm``, ``min_eig``, ``certified``, ``census_*``,
        ``steps_taken``, ...). Rows sorted by target, parametrization, width, seed.
        ``planned_only`` keeps the runs the config plans now (a sweep's store may hold
        runs of earlier versions of its config).
        """
        import pandas as pd

        planned = {r.key for r in self.planned}
        rows = []
        for run in self._finished(None):
            tags, params = run.data.tags, run.data.params
            if planned_only and tags[KEY_TAG] not in planned:
                continue
            typed = RunSpec.from_flat(params).to_dict()
            # the fields in the order the store lists them, target_params last
            spec = {k: typed[k] for k in params if k in typed and k != "target_params"}
            spec["target_params"] = typed["target_params"]
            rows.append(
                {
                    "run_id": run.info.run_id,
                    "run_key": tags[KEY_TAG],
                    "artifact_uri": run.info.artifact_uri,
                    "target_label": tags.get("target", spec.get("target")),
                    "run_status": tags.get("status"),
                    **spec,
                    # a metric named like a spec field (``steps``: the steps taken, against
                    # the budget) is renamed ``<name>_taken`` rather than overwrite the spec
                    **{
                        (f"{k}_taken" if k in _SPEC_FIELDS else k): v
                        for k, v in run.data.metrics.items()
                        if k != "train_objective"
                    },
                }
            )
        df = pd.DataFrame(rows)
        if not len(df):
            return df
        if "certified" in df:
            df["certified"] = df["certified"].astype(bool)
        order = ["target_label", "parametrization", "width", "seed"]
        return df.sort_values(order).reset_index(drop=True)

    def stage(self, name: str) -> list[dict]:
        """The rows of every FINISHED unit of an analysis stage (pathology | seed_pairs |
        retrain), each with its unit's ``run_id``."""
        rows = []
        for run in self._finished(name):
            table = read_table(self.store.client, run.info.run_id, run.info.artifact_uri)
            rows += [dict(r, run_id=run.info.run_id) for r in table]
        return rows

    def params(self, rows: pd.DataFrame) -> list[dict]:
        """The raw end-point parameters (a, b, c, e, w of params.npz) of each row of a
        ``runs()`` frame."""
        pairs = zip(rows["run_id"], rows["artifact_uri"], strict=True)
        return read_end_points(self.store.client, pairs)

    def params_by_id(self, run_ids: list[str]) -> list[dict]:
        """The raw end-point parameters of runs given by id (children of this sweep, or
        any run of the store)."""
        uris = {r.info.run_id: r.info.artifact_uri for r in self.children}
        client = self.store.client
        pairs = [(i, uris.get(i) or client.get_run(i).info.artifact_uri) for i in run_ids]
        return read_end_points(client, pairs)


def load_runs(config, tracking_uri: str | None = None, planned_only: bool = True):
    """The trained networks of a sweep as a DataFrame, one row per FINISHED child run
    (see ``SweepReader.runs``). ``config``: a YAML path, dict or SweepConfig."""
    return SweepReader(config, tracking_uri).runs(planned_only)


def run_state(statuses: set[str]) -> str:
    """One planned run's state from the statuses of its child runs: "done" (a FINISHED
    child), "running" (else a RUNNING one), "failed" (only FAILED or KILLED ones) or
    "pending" (no child)."""
    if not statuses:
        return "pending"
    if "FINISHED" in statuses:
        return "done"
    return "running" if "RUNNING" in statuses else "failed"


def sweep_status(config, tracking_uri: str | None = None, planned=None) -> dict[str, str]:
    """Every planned run key -> its ``run_state``; every run "pending" when the store or
    the sweep does not exist yet. An embedded (SQLite) store is read with read-only SQL
    (``sqlite_status``: a tenth of a second instead of MLflow's five), any other store,
    or an unknown schema, through a ``SweepReader``. ``planned``: the config's planned
    runs when the caller has them already (planning a large sweep takes seconds)."""
    from ..sweep.config import as_config
    from ..sweep.plan import plan_runs, sweep_key
    from .connection import sqlite_path
    from .secrets import reveal_uri
    from .sqlite_status import child_statuses

    cfg = as_config(config)
    uri = reveal_uri(resolve_tracking_uri(tracking_uri, cfg.tracking.uri))
    planned = plan_runs(cfg) if planned is None else planned
    try:
        db = sqlite_path(uri)
        seen = (
            child_statuses(db, cfg.tracking.experiment or cfg.name, sweep_key(cfg))
            if db is not None
            else None
        )
        if seen is None:
            return SweepReader(cfg, uri).status()
    except LookupError:  # no store, no experiment or no parent yet: nothing has run
        return {r.key: "pending" for r in planned}
    return {r.key: run_state(seen.get(r.key, set())) for r in planned}
