"""A sweep's runs in a tracking store: finding the parent, listing and reconciling the
children, logging new ones (each as ``layout`` describes it, FINISHED last).

Every write is idempotent at the level of a run: a child that is FINISHED is complete
and never logged again, and one that is not is deleted and redone. That is what lets a
sweep be killed at any point and resumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .artifacts import put_files, read_end_points, record_files, table_files
from .connection import connect
from .layout import (
    KEY_TAG,
    PARENT_TAG,
    SHARD_TAG,
    SWEEP_TAG,
    metrics,
    parent_tags,
    record_metrics,
    record_params,
    record_run,
    stage_metrics,
    stage_params,
    stage_tags,
)

__all__ = ["Reconciled", "SweepStore"]

PAGE = 50000  # runs per search query (MLflow's maximum)
BATCH = 1000  # metrics per log_batch call (MLflow's maximum)


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
    def _parent(self, sweep_key: str):
        """The sweep's parent run (the oldest, should there be several), or None."""
        found = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{SWEEP_TAG}` = '{sweep_key}'",
            max_results=1,
            order_by=["attributes.start_time ASC"],
        )
        return found[0] if found else None

    def find_parent(self, sweep_key: str) -> str | None:
        """The sweep's parent run id; None when the sweep was never run here."""
        if self.experiment_id is None:
            return None
        found = self._parent(sweep_key)
        return found.info.run_id if found else None

    def parent_run(self, sweep_key: str, name: str, tags: dict | None = None) -> str:
        """The sweep's parent run id, created on first use and found again later (and set
        RUNNING again: a resumed sweep is running)."""
        found = self._parent(sweep_key)
        if found:
            if found.info.status != "RUNNING":
                self.client.update_run(found.info.run_id, status="RUNNING")
            return found.info.run_id
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags=parent_tags(sweep_key, tags)
        )
        return run.info.run_id

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
        """run key -> [(run id, status)] of every active child, in one paged query."""
        out: dict[str, list[tuple[str, str]]] = {}
        for run in self.child_runs(parent_id):
            key = run.data.tags.get(KEY_TAG)
            if key:
                out.setdefault(key, []).append((run.info.run_id, run.info.status))
        return out

    def reconcile(self, parent_id: str) -> Reconciled:
        """Keep one FINISHED child per run key, delete every other child.

        Children left RUNNING, FAILED or KILLED by a crash are deleted (their runs will
        be trained again); if a key has several FINISHED children (which realspace never
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

    def end_points(self, run_ids: list[str]) -> list[dict]:
        """The raw end-point parameters (a, b, c, e, w of params.npz) of runs by id."""
        pairs = [(r, self.client.get_run(r).info.artifact_uri) for r in run_ids]
        return read_end_points(self.client, pairs)

    def log_record(
        self, parent_id: str, key: str, shard_id: str, record, node: str | None = None
    ) -> str:
        """Create one child run with all of a record's data, then mark it FINISHED."""
        from mlflow.entities import Param

        name, tags = record_run(parent_id, key, shard_id, record, node)
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        run_id = run.info.run_id
        self.client.log_batch(
            run_id,
            metrics=metrics(record_metrics(record)),
            params=[Param(k, v) for k, v in record_params(record).items()],
        )
        put_files(self.client, run_id, run.info.artifact_uri, record_files(key, record))
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def log_shard(
        self,
        parent_id: str,
        shard_id: str,
        keys: list[str],
        records: list,
        node=None,
        after_each=None,
    ) -> list[str]:
        """Log a shard's records, idempotently: a retry after a failure part-way (a
        tracking server that went away) skips the runs already FINISHED and redoes the
        rest, so no run is ever logged twice. ``after_each()`` is called after each run."""
        done = self.delete_unfinished(parent_id, SHARD_TAG, shard_id)
        ids = []
        for key, rec in zip(keys, records, strict=True):
            if key not in done:
                ids.append(self.log_record(parent_id, key, shard_id, rec, node=node))
                if after_each:
                    after_each()
        return ids

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
