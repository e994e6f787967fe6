"""Reading a sweep back from its tracking store, in bulk.

A ``SweepReader`` is opened once per (config, tracking URI): it resolves the URI, finds
the sweep's parent run and plans the sweep once, lists the parent's children (cell runs
and analysis units) in one paged query and reads the cells' tables once, kept for every
question asked of it afterwards (the status of each planned run, the networks as a
DataFrame, an analysis stage's rows, end points). Opening it changes nothing in the
store: a missing SQLite file is reported, not created.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ..core.spec import RunSpec
from .artifacts import read_table as read_unit_table
from .connection import resolve_tracking_uri, store_exists
from .layout import STAGE_TAG
from .runs import SweepStore
from .tables import Piece, list_pieces, read_pieces

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["SweepReader", "cell_status", "load_runs", "sweep_status"]

_SPEC_FIELDS = tuple(RunSpec.__dataclass_fields__)
RUN_ORDER = ["target_label", "parametrization", "width", "seed"]  # the order of ``runs``


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
        from ..sweep.plan import plan_cells, sweep_key
        from .secrets import reveal_uri

        self.config = as_config(config)
        uri = reveal_uri(resolve_tracking_uri(tracking_uri, self.config.tracking.uri))
        if not store_exists(uri):
            raise LookupError(f"no tracking store at {uri}; run the sweep first")
        self.store = SweepStore(uri, self.config.tracking.experiment or self.config.name, False)
        self.parent = self.store.find_parent(sweep_key(self.config))
        if self.parent is None:
            raise LookupError(f"sweep {self.config.name!r} has no runs in {uri}; run it first")
        self.planned = plan_cells(self.config)
        self._frames: dict[frozenset, pd.DataFrame] = {}

    @property
    def uri(self) -> str:
        return self.store.uri

    @cached_property
    def children(self) -> list:
        """Every active child of the parent (MLflow Runs: cells and analysis units, any
        status), in one paged query on first use."""
        return self.store.child_runs(self.parent)

    @cached_property
    def cells(self) -> dict:
        """cell key -> CellRun of every cell run of the sweep."""
        return self.store.cells(self.parent, self.children)

    @property
    def table(self) -> pd.DataFrame:
        """Every network in the cells' tables, every column (``frame()``)."""
        return self.frame()

    def frame(self, omit=()) -> pd.DataFrame:
        """Every network in the cells' tables, one row per run key (planned or not; of a
        key in two pieces, the first in the store's order), with its ``piece``,
        ``cell_run`` and ``cell_uri``, sorted by target label, parametrization, width and
        seed: each table's columns but those in ``omit`` (the run key, the spec's fields
        and where a row is kept are always read). Read once per ``omit``; the one copy of
        the rows a reader holds for it (``runs`` returns it as it is when every row is
        planned)."""
        omit = frozenset(omit) - {"run_key", "seed", *_SPEC_FIELDS, "target_label"}
        if omit not in self._frames:
            self._frames[omit] = self._read(omit)
        return self._frames[omit]

    def _read(self, omit: frozenset) -> pd.DataFrame:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.compute as pc

        client = self.store.client
        pieces = (
            (piece, {"cell_run": cell.run_id, "cell_uri": cell.artifact_uri})
            for cell in self.cells.values()
            for piece in list_pieces(client, cell.run_id, cell.artifact_uri)
        )
        table = read_pieces(client, pieces, omit)
        if table is None:
            return pd.DataFrame(columns=["run_key"])
        # the first row of each key (in the store's order), then those rows in RUN_ORDER
        # (a stable sort, as pandas' sort_values of several columns)
        codes = pc.dictionary_encode(table["run_key"].combine_chunks()).indices.to_numpy()
        rows = np.sort(np.unique(codes, return_index=True)[1])
        by = table.select(RUN_ORDER).take(rows)
        rows = rows[pc.sort_indices(by, [(c, "ascending") for c in RUN_ORDER]).to_numpy()]
        # taken a column at a time, each let go once taken, and converted a column at a
        # time, each freed once converted: the rows are never held twice
        schema, columns = table.schema, table.columns
        del table, by
        for i, column in enumerate(columns):
            columns[i] = column.take(rows)
            del column
        pa.default_memory_pool().release_unused()  # what the columns held, to the system
        table = pa.Table.from_arrays(columns, schema=schema)
        del columns
        df = table.to_pandas(self_destruct=True)
        del table
        parsed: dict = {}  # a sweep has a few distinct target_params: each parsed once
        df["target_params"] = [
            parsed[t] if t in parsed else parsed.setdefault(t, json.loads(t))
            for t in df["target_params"]
        ]
        return df

    def stored_seeds(self) -> dict:
        """cell key -> the seeds in that cell's tables (int64, repeats possible)."""
        cell_of = {c.run_id: k for k, c in self.cells.items()}
        df = self._any_frame()
        if not len(df):
            return {}
        return {
            cell_of[run]: np.asarray(g, np.int64)
            for run, g in df.groupby("cell_run", sort=False)["seed"]
            if run in cell_of
        }

    def status(self) -> dict[str, str]:
        """Every planned run key -> "done" (its seed in its cell's tables) or "pending"."""
        return _key_status(self.planned, self.stored_seeds())

    def _planned(self, df: pd.DataFrame):
        """Mask of the rows of ``df`` (a ``table`` frame) that the config plans: a row's
        cell run is a planned cell's and its seed one of the cell's seeds."""
        planned = {c.key: c for c in self.planned.cells}
        run_cell = {c.run_id: planned.get(k) for k, c in self.cells.items()}
        keep = np.zeros(len(df), bool)
        for run, rows in df.groupby("cell_run", sort=False).indices.items():
            cell = run_cell.get(run)
            if cell is not None:
                seeds = df["seed"].to_numpy()[rows].astype(np.int64)
                keep[rows] = np.isin(seeds, np.asarray(cell.seeds, np.int64))
        return keep

    def _any_frame(self) -> pd.DataFrame:
        """A frame already read (any ``omit``: every one has the run key, the seed and
        where each row is kept), else every column."""
        return next(iter(self._frames.values())) if self._frames else self.frame()

    def runs(self, planned_only: bool = True, omit=()) -> pd.DataFrame:
        """The trained networks: one row per network in the cells' tables.

        Columns: ``run_key``, every RunSpec field (typed; ``target_params`` a dict),
        ``target_label``, ``run_status`` (converged | plateau | budget | diverged), the
        end-point numbers (``loss``, ``objective``, ``grad_norm``, ``min_eig``,
        ``certified``, ``census_*``, ``margin_*``, ``proj_*``, ``steps_taken``, ...),
        ``shard``, ``node``, and where the row is kept (``piece``, ``cell_run``,
        ``cell_uri``). Rows sorted by target, parametrization, width, seed.
        ``planned_only`` keeps the runs the config plans now (a sweep's store may hold
        runs of earlier versions of its config). ``omit``: columns not to read (see
        ``frame``).
        """
        df = self.frame(omit)
        if not len(df):  # nothing stored yet
            return df.reset_index(drop=True)
        if planned_only:
            keep = self._planned(df)
            if not keep.all():  # a frame taken of every row would be a copy of them all
                df = df[keep]
        if not len(df):
            return df.reset_index(drop=True)
        return df.astype({"certified": bool}).reset_index(drop=True)

    def stage(self, name: str) -> list[dict]:
        """The rows of every FINISHED unit of an analysis stage (pathology | seed_pairs |
        retrain), each with its unit's ``run_id``."""
        rows = []
        for run in self.children:
            if run.info.status != "FINISHED" or run.data.tags.get(STAGE_TAG) != name:
                continue
            table = read_unit_table(self.store.client, run.info.run_id, run.info.artifact_uri)
            rows += [dict(r, run_id=run.info.run_id) for r in table]
        return rows

    def params(self, rows: pd.DataFrame) -> list[dict]:
        """The raw end points (a, b, c, e, w) of each row of a ``runs()`` frame."""
        pieces = [
            Piece(r, u, p)
            for r, u, p in zip(rows["cell_run"], rows["cell_uri"], rows["piece"], strict=True)
        ]
        return self.store.end_points(pieces, list(rows["run_key"]))

    def params_by_key(self, keys: list[str]) -> list[dict]:
        """The raw end points of networks of this sweep given by run key."""
        rows = self._any_frame().set_index("run_key", drop=False).loc[list(keys)]
        return self.params(rows)


def load_runs(config, tracking_uri: str | None = None, planned_only: bool = True):
    """The trained networks of a sweep as a DataFrame, one row per FINISHED child run
    (see ``SweepReader.runs``). ``config``: a YAML path, dict or SweepConfig."""
    return SweepReader(config, tracking_uri).runs(planned_only)


def cell_status(config, tracking_uri: str | None = None, plan=None) -> list[tuple]:
    """(PlannedCell, networks of it in its tables) of every planned cell, in plan order;
    every count 0 when the store or the sweep does not exist yet. An embedded (SQLite)
    store with local artifacts is read with read-only SQL and the tables' seed columns
    (``sqlite_status``: a fraction of a second instead of MLflow's five), any other store
    through a ``SweepReader``. No run key is hashed: a cell's seed names its run. ``plan``:
    the config's Plan when the caller has it. Raises OldLayout for a sweep of another
    layout."""
    cfg, plan, stored = _stored(config, tracking_uri, plan)
    return [(c, int(np.count_nonzero(c.found(stored.get(c.key))))) for c in plan.cells]


def sweep_status(config, tracking_uri: str | None = None, plan=None) -> dict[str, str]:
    """Every planned run key -> "done" or "pending" (``cell_status`` network by network:
    for a caller that wants the keys; they are hashed here)."""
    _, plan, stored = _stored(config, tracking_uri, plan)
    return _key_status(plan, stored)


def _key_status(plan, stored: dict) -> dict[str, str]:
    out = {}
    for cell in plan.cells:
        found = cell.found(stored.get(cell.key))
        out.update(
            (key, "done" if f else "pending") for key, f in zip(cell.keys(), found, strict=True)
        )
    return out


def _stored(config, tracking_uri, plan):
    """(config, plan, cell key -> the seeds in its tables)."""
    from ..sweep.config import as_config
    from ..sweep.plan import plan_cells, sweep_key
    from .connection import sqlite_path
    from .runs import OldLayout
    from .secrets import reveal_uri
    from .sqlite_status import done_seeds

    cfg = as_config(config)
    uri = reveal_uri(resolve_tracking_uri(tracking_uri, cfg.tracking.uri))
    plan = plan_cells(cfg) if plan is None else plan
    try:
        db = sqlite_path(uri)
        name = cfg.tracking.experiment or cfg.name
        stored = done_seeds(db, name, sweep_key(cfg), uri) if db is not None else None
        if stored is None:
            stored = SweepReader(cfg, uri).stored_seeds()
    except OldLayout:
        raise
    except LookupError:  # no store, no experiment or no parent yet: nothing has run
        stored = {}
    return cfg, plan, stored
