"""A sweep's state read straight from its tracking store with MLflow's client and
pyarrow, independently of realspace's reader: the truth the flow tests compare with; what
a sweep plans (``planned``); and the invariants the fault and integration tests check on
it (``check_consistent`` at any moment, ``check_complete`` at the end)."""

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
    origins: list[tuple[str, str]] = ()  # per row: (cell run id, its table's file name)
    runs: list = ()  # every active run of the experiment

    @property
    def keys(self) -> list[str]:
        """Run keys in the tables, with repetitions (a duplicate shows twice)."""
        return [r["run_key"] for r in self.rows]


def planned(config: dict | Path) -> tuple[list, list]:
    """(planned runs, planned analysis units) of a sweep, from its document or its YAML
    file: what ``check_consistent`` and ``check_complete`` take."""
    from realspace.sweep.analysis import plan_analysis
    from realspace.sweep.config import load_config, parse_config
    from realspace.sweep.plan import plan_runs

    cfg = parse_config(config) if isinstance(config, dict) else load_config(config)
    runs = plan_runs(cfg)
    return runs, plan_analysis(cfg, runs)


def sweep_state(uri: str, name: str) -> SweepState:
    import pyarrow.parquet as pq
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return SweepState(None, [], [], [], [], {}, [], [])
    every = client.search_runs([exp.experiment_id], "", max_results=50000)
    parents = [r for r in every if "realspace.sweep_key" in r.data.tags]
    assert len(parents) <= 1, "two parent runs"
    if not parents:
        return SweepState(None, [], [], [], [], {}, [], every)
    pid = parents[0].info.run_id
    kids = [r for r in every if r.data.tags.get("mlflow.parentRunId") == pid]
    cells = [r for r in kids if "realspace.cell" in r.data.tags]
    units = [r for r in kids if "realspace.stage" in r.data.tags]
    ids = {c.info.run_id for c in cells}
    networks = [r for r in every if r.data.tags.get("mlflow.parentRunId") in ids]
    rows, pieces, origins = [], {}, []
    for c in cells:
        names = {Path(f.path).name for f in client.list_artifacts(c.info.run_id, "shards")}
        pieces[c.info.run_id] = names
        for n in sorted(names):
            if not n.endswith(".parquet"):
                continue
            path = client.download_artifacts(c.info.run_id, f"shards/{n}")
            try:
                found = pq.read_table(path).to_pylist()
            except Exception:  # a table cut short is no table
                continue
            rows += found
            origins += [(c.info.run_id, n)] * len(found)
    return SweepState(parents[0], cells, units, networks, rows, pieces, origins, every)


def placement(state: SweepState) -> dict[str, tuple[str, str, str]]:
    """run key -> (cell run id, its table's file name, its row as JSON); a key in two rows
    fails."""
    import json

    out: dict[str, tuple[str, str, str]] = {}
    for row, (cell, piece) in zip(state.rows, state.origins, strict=True):
        key = row["run_key"]
        assert key not in out, f"{key} twice in the tables: {out[key][:2]} and {(cell, piece)}"
        out[key] = (cell, piece, json.dumps(row, sort_keys=True, default=str))
    return out


def _artifacts(client, run) -> set[str]:
    return {f.path for f in client.list_artifacts(run.info.run_id)}


def check_consistent(uri: str, state: SweepState, runs, units=()) -> dict:
    """What holds at any moment, even right after a crash: one cell run per cell, every
    row in the cell run of its network and no run key in two rows, every table beside
    its arrays, a FINISHED cell with all its networks in its tables and its view, a
    FINISHED network run (a child of the cell holding its row) or analysis unit with its
    artifacts, one FINISHED run per key. ``runs``, ``units``: the planned ones. Returns
    ``placement(state)``."""
    import json
    import math

    from mlflow.tracking import MlflowClient

    from realspace.sweep.plan import cell_key

    client = MlflowClient(uri)
    members: dict[str, set[str]] = {}
    owner = {}
    for r in runs:
        owner[r.key] = cell_key(r.spec)
        members.setdefault(owner[r.key], set()).add(r.key)
    cells = {}
    for c in state.cells:
        key = c.data.tags["realspace.cell"]
        assert key not in cells, f"two cell runs for cell {key}"
        assert key in members, f"a cell run of no planned cell: {key}"
        cells[key] = c
    where = placement(state)
    held: dict[str, set[str]] = {}
    for key, (cell_id, _, _) in where.items():
        assert key in owner, f"a row of no planned network: {key}"
        assert cells[owner[key]].info.run_id == cell_id, f"{key} in another cell's table"
        held.setdefault(cell_id, set()).add(key)
    for cell_id, names in state.pieces.items():
        for n in names:  # the arrays are written first, the table last
            if n.endswith(".parquet"):
                assert n.removesuffix(".parquet") + ".npz" in names, (cell_id, n)
    for key, c in cells.items():
        if c.info.status == "FINISHED":
            assert held.get(c.info.run_id, set()) == members[key], c.info.run_name
            assert c.data.metrics["networks"] == len(members[key])
            assert "networks.html" in _artifacts(client, c)
    finished_nets = set()
    for n in state.networks:
        key = n.data.tags["realspace.run_key"]
        assert key in where and n.data.tags["mlflow.parentRunId"] == where[key][0], key
        if n.info.status != "FINISHED":
            continue
        assert key not in finished_nets, f"two FINISHED network runs for {key}"
        finished_nets.add(key)
        assert _artifacts(client, n) == {"end_point.npz", "realization.svg"}, key
        loss = json.loads(where[key][2])["loss"]
        if loss is not None and math.isfinite(loss):
            assert n.data.metrics["loss"] == loss, key
        else:
            assert "loss" not in n.data.metrics
    planned_units = {u.key for u in units}
    finished_units = set()
    for u in state.units:
        key = u.data.tags["realspace.run_key"]
        assert key in planned_units, f"a unit of no planned key: {key}"
        if u.info.status == "FINISHED":
            assert key not in finished_units, f"two FINISHED units for {key}"
            finished_units.add(key)
            assert _artifacts(client, u) == {"table.json"}, key
    return where


def check_complete(uri: str, state: SweepState, runs, units=(), network_runs=True) -> dict:
    """A sweep run to its end: ``check_consistent``, and the parent, every planned cell,
    analysis unit and (with ``network_runs``) network run there once and FINISHED, every
    planned network in the tables exactly once, and no other run in the experiment."""
    where = check_consistent(uri, state, runs, units)
    from realspace.sweep.plan import cell_key

    assert state.parent is not None and state.parent.info.status == "FINISHED"
    assert {c.data.tags["realspace.cell"] for c in state.cells} == {cell_key(r.spec) for r in runs}
    assert {c.info.status for c in state.cells} == {"FINISHED"}
    assert sorted(state.keys) == sorted(r.key for r in runs)  # each exactly once
    assert sorted(u.data.tags["realspace.run_key"] for u in state.units) == sorted(
        u.key for u in units
    )
    assert {u.info.status for u in state.units} <= {"FINISHED"}
    nets = sorted(n.data.tags["realspace.run_key"] for n in state.networks)
    assert nets == (sorted(r.key for r in runs) if network_runs else [])
    assert {n.info.status for n in state.networks} <= {"FINISHED"}
    parts = 1 + len(state.cells) + len(state.units) + len(state.networks)
    assert len(state.runs) == parts, "runs beside the parent, cells, units and networks"
    return where
