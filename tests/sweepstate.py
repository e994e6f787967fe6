"""A sweep's state read straight from its tracking store with MLflow's client and
pyarrow, independently of realspace's reader: the truth the flow tests compare with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class SweepState:
    parent: object | None  # the parent Run
    cells: list  # cell runs (children of the parent tagged realspace.cell)
    units: list  # analysis units (children tagged realspace.stage)
    networks: list  # network runs (children of the cell runs)
    rows: list[dict]  # every row of every readable table piece of every cell
    pieces: dict[str, set[str]]  # cell run id -> its pieces' file names

    @property
    def keys(self) -> list[str]:
        """Run keys in the tables, with repetitions (a duplicate shows twice)."""
        return [r["run_key"] for r in self.rows]


def sweep_state(uri: str, name: str) -> SweepState:
    import pyarrow.parquet as pq
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return SweepState(None, [], [], [], [], {})
    every = client.search_runs([exp.experiment_id], "", max_results=50000)
    parents = [r for r in every if "realspace.sweep_key" in r.data.tags]
    assert len(parents) <= 1, "two parent runs"
    if not parents:
        return SweepState(None, [], [], [], [], {})
    pid = parents[0].info.run_id
    kids = [r for r in every if r.data.tags.get("mlflow.parentRunId") == pid]
    cells = [r for r in kids if "realspace.cell" in r.data.tags]
    units = [r for r in kids if "realspace.stage" in r.data.tags]
    ids = {c.info.run_id for c in cells}
    networks = [r for r in every if r.data.tags.get("mlflow.parentRunId") in ids]
    rows, pieces = [], {}
    for c in cells:
        names = {Path(f.path).name for f in client.list_artifacts(c.info.run_id, "shards")}
        pieces[c.info.run_id] = names
        for n in sorted(names):
            if not n.endswith(".parquet"):
                continue
            path = client.download_artifacts(c.info.run_id, f"shards/{n}")
            try:
                rows += pq.read_table(path).to_pylist()
            except Exception:  # a table cut short is no table
                continue
    return SweepState(parents[0], cells, units, networks, rows, pieces)
