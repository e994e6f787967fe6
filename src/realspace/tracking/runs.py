"""A sweep's runs in a tracking store: finding the parent, opening its cell runs, telling
which networks are trained (from the cells' tables), closing a cell once all its
networks are in, logging analysis units (each as ``layout`` describes it, FINISHED last).

Every write is idempotent: a table piece is named by its networks and written
atomically, a run that is FINISHED is complete and never written again, and a run that
is not is deleted and redone. That is what lets a sweep be killed at any point and
resumed.

435 lines: ``SweepStore`` is the one writer of a sweep's runs, and its protocol (open,
close, reconcile, units) reads as one piece; closing a cell reads the cell a column set
at a time, which takes three short methods of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from .artifacts import put_files, table_files
from .connection import connect
from .layout import (
    CELL_QUANTILES,
    CELL_TAG,
    KEY_TAG,
    LAYOUT,
    LAYOUT_TAG,
    PARENT_TAG,
    SWEEP_TAG,
    cell_metrics,
    cell_params,
    cell_run,
    metrics,
    network_metrics,
    network_run,
    parent_tags,
    stage_metrics,
    stage_params,
    stage_tags,
)
from .tables import Piece, list_pieces, read_arrays, read_columns, read_keys, read_table

__all__ = [
    "CellRun",
    "OldLayout",
    "Reconciled",
    "SweepStore",
    "check_layout",
]

NETWORKS_HTML = "networks.html"


class OldLayout(LookupError):
    """The sweep's parent run was written in another tracking layout."""


def check_layout(tags: dict, sweep_key: str, uri: str) -> None:
    """Refuse a parent run written in another layout (never misread it)."""
    found = tags.get(LAYOUT_TAG, "1")
    if found != LAYOUT:
        raise OldLayout(
            f"sweep {sweep_key} in {uri} was written in tracking layout {found} (realspace "
            f"0.1: a run per network); realspace {__version__} reads and writes layout "
            f"{LAYOUT} (a run per cell with tables) and does not migrate: run the sweep into "
            "a new store (--tracking-uri) or experiment (tracking.experiment)"
        )


@dataclass(frozen=True)
class CellRun:
    """One cell's MLflow run: its cell key, run id, artifact URI, name and status."""

    key: str
    run_id: str
    artifact_uri: str
    name: str
    status: str


PAGE = 50000  # runs per search query (MLflow's maximum)
BATCH = 1000  # metrics per log_batch call (MLflow's maximum)
# what closing a cell reads of every network: its metrics' columns (``cell_metrics``,
# with the census_* columns) and the run key, seed and objective that order its page
LEAN_COLUMNS = ("run_key", "seed", "run_status", "certified", "grad_norm", *CELL_QUANTILES)
# seconds a driver that created a parent run waits before looking for a second one (see
# SweepStore.find_or_create_parent): far above a create's latency, paid once per sweep
SETTLE_S = 2.0


@dataclass(frozen=True)
class Reconciled:
    """A parent's children after ``SweepStore.reconcile``: the run id of each FINISHED
    run key, and how many runs were deleted (left unfinished, or duplicates)."""

    done: dict[str, str]
    deleted: int


class SweepStore:
    """One sweep's experiment, parent run and children in an MLflow tracking store."""

    def __init__(self, tracking_uri: str, experiment: str, create: bool = True):
        """Open (and with ``create``, create if missing) the sweep's experiment; without
        ``create`` a missing experiment leaves ``experiment_id`` None (nothing logged yet)."""
        self.conn = connect(tracking_uri, experiment, create)

    @property
    def uri(self) -> str:
        return self.conn.uri

    @property
    def client(self):
        return self.conn.client

    @property
    def experiment_id(self) -> str | None:
        return self.conn.experiment_id

    def _search(self, query: str) -> list:
        """Every active run of the experiment matching ``query``, page by page."""
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], query, max_results=PAGE, page_token=token
            )
            runs += list(page)
            token = page.token
            if not token:
                return runs

    # -- parent ----------------------------------------------------------------
    def _parents(self, sweep_key: str) -> list:
        """The sweep's parent runs, the one every driver takes first: the oldest, the
        smaller run id between two of the same millisecond (there is one, except for a
        moment when two drivers created one each: see ``parent_run``). Raises OldLayout
        when it was written in another layout."""
        found = self._search(f"tags.`{SWEEP_TAG}` = '{sweep_key}'")
        found.sort(key=lambda r: (r.info.start_time, r.info.run_id))
        if found:
            check_layout(found[0].data.tags, sweep_key, self.uri)
        return found

    def _parent(self, sweep_key: str):
        """The sweep's parent run (``_parents``' first), or None."""
        found = self._parents(sweep_key)
        return found[0] if found else None

    def find_parent(self, sweep_key: str) -> str | None:
        """The sweep's parent run id; None when the sweep was never run here."""
        if self.experiment_id is None:
            return None
        found = self._parent(sweep_key)
        return found.info.run_id if found else None

    def find_or_create_parent(
        self, sweep_key: str, name: str, tags: dict | None = None, settle: float = SETTLE_S
    ) -> str:
        """The sweep's parent run id, created on first use (its status left as it is).

        Two drivers starting a new sweep at once may both find no parent and create one
        each (a search and a create are two requests; MLflow has no unique key on a tag).
        So a driver that created one waits ``settle`` seconds, by when the other's create
        has landed, and looks again: both then take the same one (``_parents`` orders
        them alike for everyone) and the other is deleted by whoever created it. This
        holds when each create lands within ``settle`` of the other's search; the lease
        (``lease``) on that parent then admits one driver.
        """
        found = self._parent(sweep_key)
        if found:
            return found.info.run_id
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags=parent_tags(sweep_key, tags)
        )
        mine = run.info.run_id
        time.sleep(settle)
        first = self._parent(sweep_key).info.run_id
        if first != mine:
            self.client.delete_run(mine)
        return first

    def parent_run(self, sweep_key: str, name: str, tags: dict | None = None) -> str:
        """The sweep's parent run id, created on first use and found again later (and set
        RUNNING again: a resumed sweep is running)."""
        parent = self.find_or_create_parent(sweep_key, name, tags)
        if self.client.get_run(parent).info.status != "RUNNING":
            self.client.update_run(parent, status="RUNNING")
        return parent

    def finish_parent(self, parent_id: str, totals: dict, status: str = "FINISHED") -> None:
        """The sweep's totals as metrics, then its final status."""
        batch = metrics((k, v, 0) for k, v in totals.items())
        self.client.log_batch(parent_id, metrics=batch)
        self.client.set_terminated(parent_id, status)

    def log_report(self, parent_id: str, folder: Path, cells: list[tuple[str, float, int]]):
        """The report folder as the parent's ``report/`` artifacts, and per-cell
        aggregates as metrics (name, value, step = width)."""
        batch = metrics(cells)
        for i in range(0, len(batch), BATCH):
            self.client.log_batch(parent_id, metrics=batch[i : i + BATCH])
        self.client.log_artifacts(parent_id, str(folder), artifact_path="report")

    # -- children ----------------------------------------------------------------
    def child_runs(self, parent_id: str, finished_only: bool = False) -> list:
        """Every active child run of the parent (MLflow Run objects), in paged queries."""
        query = f"tags.`{PARENT_TAG}` = '{parent_id}'"
        if finished_only:
            query += " and attributes.status = 'FINISHED'"
        return self._search(query)

    def children(self, parent_id: str) -> dict[str, list[tuple[str, str]]]:
        """run key -> [(run id, status)] of every active child with a run key (analysis
        units), in one paged query."""
        out: dict[str, list[tuple[str, str]]] = {}
        for run in self.child_runs(parent_id):
            key = run.data.tags.get(KEY_TAG)
            if key:
                out.setdefault(key, []).append((run.info.run_id, run.info.status))
        return out

    def reconcile(self, parent_id: str) -> Reconciled:
        """Keep one FINISHED analysis unit per run key, delete every other one.

        Units left RUNNING, FAILED or KILLED by a crash are deleted (they will be
        computed again); if a key has several FINISHED runs (which realspace never
        creates, but a user might), the oldest is kept and the others are deleted.
        """
        done: dict[str, str] = {}
        deleted = 0
        for key, runs in self.children(parent_id).items():
            finished = sorted(r for r, status in runs if status == "FINISHED")
            for run_id, status in runs:
                if status != "FINISHED" or (finished and run_id != finished[0]):
                    self.client.delete_run(run_id)
                    deleted += 1
            if finished:
                done[key] = finished[0]
        return Reconciled(done, deleted)

    def delete_unfinished(self, parent_id: str, tag: str, value: str) -> set[str]:
        """Delete the children with ``tag`` = ``value`` that are not FINISHED (left by an
        interrupted attempt: they will be redone); return the run keys of the FINISHED
        ones, which are kept."""
        done = set()
        for run in self._search(
            f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.`{tag}` = '{value}'"
        ):
            if run.info.status == "FINISHED":
                done.add(run.data.tags.get(KEY_TAG))
            else:
                self.client.delete_run(run.info.run_id)
        return done

    # -- cells -----------------------------------------------------------------------
    def cells(self, parent_id: str, runs: list | None = None) -> dict[str, CellRun]:
        """cell key -> CellRun of every active cell run of the parent (the oldest, should
        there be several); ``runs``: the parent's children when listed already."""
        out: dict[str, CellRun] = {}
        children = self.child_runs(parent_id) if runs is None else runs
        for run in sorted(children, key=lambda r: r.info.start_time):
            key = run.data.tags.get(CELL_TAG)
            if key and key not in out:
                info = run.info
                out[key] = CellRun(key, info.run_id, info.artifact_uri, info.run_name, info.status)
        return out

    def open_cells(
        self, parent_id: str, wanted: dict[str, tuple[str, object, int]]
    ) -> dict[str, CellRun]:
        """The cell runs of ``wanted`` (cell key -> (name, spec, seeds)), created where
        missing (RUNNING, with the cell's spec as params)."""
        from mlflow.entities import Param

        have = self.cells(parent_id)
        for key, (name, spec, seeds) in wanted.items():
            if key in have:
                continue
            tags = cell_run(parent_id, key, spec, name)
            run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
            params = [Param(k, v) for k, v in cell_params(spec, seeds).items()]
            self.client.log_batch(run.info.run_id, params=params)
            have[key] = CellRun(key, run.info.run_id, run.info.artifact_uri, name, "RUNNING")
        return have

    def pieces(self, cell: CellRun) -> dict[str, Piece]:
        """run key -> the piece holding it, of every network in the cell's tables (a key
        in two pieces, which realspace never writes, counts once: the first by name)."""
        out: dict[str, Piece] = {}
        for piece in list_pieces(self.client, cell.run_id, cell.artifact_uri):
            for key in read_keys(self.client, piece) or ():
                out.setdefault(key, piece)
        return out

    def cell_table(self, cell: CellRun, keys=None):
        """The rows of a cell's networks (of ``keys`` only, when given), one per run key."""
        return self._read_rows(self._cell_pieces(cell), keys)

    def _cell_pieces(self, cell: CellRun) -> list[Piece]:
        return sorted(set(self.pieces(cell).values()), key=lambda p: p.name)

    def _read_rows(self, pieces, keys=None, read=None, columns=()):
        """The rows of ``keys`` (every row, when None) in ``pieces``, one per run key (the
        first piece holding a key wins), each piece read by ``read(client, piece)`` and
        cut to ``keys`` before the next is read (default: whole, ``read_table``); no
        piece: an empty frame of ``columns``."""
        import pandas as pd

        read = read or read_table
        wanted = None if keys is None else set(keys)
        frames = []
        for piece in pieces:
            df = read(self.client, piece)
            frames.append(df if wanted is None else df[df["run_key"].isin(wanted)])
        if not frames:
            return pd.DataFrame(columns=list(columns))
        return pd.concat(frames, ignore_index=True).drop_duplicates("run_key")

    def close_cell(self, cell: CellRun, keys: list[str], network_runs: bool) -> dict:
        """Once every network of ``keys`` is in the cell's tables: its metrics, its
        ``networks.html``, with ``network_runs`` a run per network, then FINISHED.
        Idempotent: a rerun after a crash part-way redoes what is not FINISHED. Returns
        the metrics logged.

        Without network runs, the cell is read in the columns its metrics and its page's
        order need; whole rows and end points only of the networks the page shows (the
        best ``views.MAX_ROWS``, ``views.MAX_DRAWN`` of them drawn): a cell of 250,000
        networks closes in the memory of a few pieces, not of all of its rows."""
        from .views import MAX_DRAWN, MAX_ROWS, cell_html, page_order

        lean = self._cell_columns(cell, keys)
        if len(lean) < len(set(keys)):
            missing = len(set(keys)) - len(lean)
            raise RuntimeError(f"cell {cell.name}: {missing} networks not in its tables")
        shown = lean if network_runs else page_order(lean).head(MAX_ROWS)
        drawn = set(shown["run_key"]) if network_runs else set(shown["run_key"][:MAX_DRAWN])
        rows = self._rows(cell, shown)
        arrays = {}
        for piece in sorted(set(shown["piece"][shown["run_key"].isin(drawn)])):
            got = read_arrays(self.client, Piece(cell.run_id, cell.artifact_uri, piece))
            arrays.update((k, v) for k, v in got.items() if k in drawn)
        page = cell_html(cell.name, rows, arrays, total=len(lean))
        files = {NETWORKS_HTML: lambda fh: fh.write(page.encode())}
        put_files(self.client, cell.run_id, cell.artifact_uri, files)
        if network_runs:
            self._network_runs(cell, rows, arrays)
        found = cell_metrics(lean)
        batch = metrics(found)
        for i in range(0, len(batch), BATCH):
            self.client.log_batch(cell.run_id, metrics=batch[i : i + BATCH])
        self.client.set_terminated(cell.run_id, "FINISHED")
        return {name: value for name, value, _ in found}

    def _cell_columns(self, cell: CellRun, keys):
        """``cell_table`` in the columns of ``LEAN_COLUMNS`` (with the census)."""
        return self._read_rows(
            self._cell_pieces(cell),
            keys,
            lambda client, p: read_columns(client, p, LEAN_COLUMNS, ("census_",)),
            (*LEAN_COLUMNS, "piece"),
        )

    def _rows(self, cell: CellRun, shown):
        """The whole rows of the networks of ``shown`` (a ``_cell_columns`` frame), in
        its order."""
        pieces = [Piece(cell.run_id, cell.artifact_uri, p) for p in sorted(set(shown["piece"]))]
        rows = self._read_rows(pieces, shown["run_key"], columns=shown.columns)
        order = list(shown["run_key"])
        return rows.set_index("run_key", drop=False).loc[order].reset_index(drop=True)

    def _network_runs(self, cell: CellRun, df, arrays: dict) -> None:
        """A run per network of the cell (children of the cell run), skipping those
        FINISHED by an earlier attempt."""
        import numpy as np
        from mlflow.entities import Param

        from ..core.spec import RunSpec
        from .views import realization_svg

        done = self.delete_unfinished(cell.run_id, PARENT_TAG, cell.run_id)
        for _, row in df.iterrows():
            key = row["run_key"]
            if key in done:
                continue
            name, tags = network_run(cell.run_id, row)
            run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
            spec = RunSpec.from_row(row)
            end = arrays[key]
            self.client.log_batch(
                run.info.run_id,
                metrics=metrics(network_metrics(row, end)),
                params=[Param(k, v) for k, v in spec.flat().items()],
            )
            svg = realization_svg(spec, end)
            files = {"end_point.npz": lambda fh, e=end: np.savez(fh, **e)}
            if svg:
                files["realization.svg"] = lambda fh, t=svg: fh.write(t.encode())
            put_files(self.client, run.info.run_id, run.info.artifact_uri, files)
            self.client.set_terminated(run.info.run_id, "FINISHED")

    def end_points(self, pieces: list[Piece], keys: list[str]) -> list[dict]:
        """The raw end points (a, b, c, e, w) of networks by run key; ``pieces``: the
        piece of each key (each piece read once)."""
        read: dict[Piece, dict] = {}
        out = []
        for piece, key in zip(pieces, keys, strict=True):
            if piece not in read:
                read[piece] = read_arrays(self.client, piece)
            out.append({k: read[piece][key][k] for k in ("a", "b", "c", "e", "w")})
        return out

    def log_stage(
        self, parent_id: str, key: str, stage: str, name: str, rows: list[dict], params: dict
    ) -> str:
        """One analysis unit as a child run: its inputs as params, its rows as
        ``table.json``, and per numeric column the median as a metric; FINISHED last.
        Idempotent: a unit already FINISHED is not logged again (returns "")."""
        from mlflow.entities import Param

        if key in self.delete_unfinished(parent_id, KEY_TAG, key):
            return ""
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags=stage_tags(parent_id, key, stage)
        )
        run_id = run.info.run_id
        self.client.log_batch(
            run_id,
            metrics=metrics(stage_metrics(rows)),
            params=[Param(k, v) for k, v in stage_params(params).items()],
        )
        put_files(self.client, run_id, run.info.artifact_uri, table_files(rows))
        self.client.set_terminated(run_id, "FINISHED")
        return run_id
