"""Which networks of a sweep are trained, read straight from an embedded (SQLite) store.

``realspace status`` asks one question, often: how many networks of each cell are in the
sweep's cell tables. Through MLflow's client the answer costs about 5 s here before the
first query (importing MLflow about 3 s, opening the store runs its schema checks about
2 s); read-only SQL on the same file finds the parent and its cell runs in a hundredth of
a second, and the tables' ``seed`` columns (``done_seeds``; ``done_keys`` reads the run
keys) are read from the local artifact folders.

The tables read (``experiments``, ``runs``, ``tags``) are MLflow's own, so the schema
revision they were read at is pinned: a store at any other revision, or with artifacts
that are not local files, returns None and the caller asks MLflow's client instead
(tests compare both paths on one store).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .layout import CELL_TAG, LAYOUT_TAG, PARENT_TAG, SWEEP_TAG

__all__ = ["KNOWN_SCHEMAS", "done_keys", "done_seeds"]

# alembic revisions of MLflow's tracking schema whose runs/tags/experiments tables this
# module reads (MLflow 3.17.2)
KNOWN_SCHEMAS = frozenset({"dc11669786a5"})

_PARENT = """
SELECT r.run_uuid, l.value FROM runs r
JOIN experiments e ON e.experiment_id = r.experiment_id
JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = ? AND t.value = ?
LEFT JOIN tags l ON l.run_uuid = r.run_uuid AND l.key = ?
WHERE e.name = ? AND e.lifecycle_stage = 'active' AND r.lifecycle_stage = 'active'
ORDER BY r.start_time ASC LIMIT 1
"""
_CELLS = """
SELECT r.artifact_uri, c.value FROM runs r
JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = ? AND p.value = ?
JOIN tags c ON c.run_uuid = r.run_uuid AND c.key = ?
WHERE r.lifecycle_stage = 'active'
ORDER BY r.start_time ASC
"""


def done_keys(db: Path, experiment: str, sweep_key: str, uri: str) -> set[str] | None:
    """The run keys in the cell tables of the sweep's parent run (the earliest run tagged
    with ``sweep_key`` in ``experiment``, as the client's search finds it).

    Returns None when the file's schema revision is not one this module knows, or a cell's
    artifacts are not local; raises LookupError when the file, the experiment or the
    parent run does not exist, OldLayout when the sweep has another layout.
    """
    from .tables import read_key_column

    folders = _cell_folders(db, experiment, sweep_key, uri)
    if folders is None:
        return None
    done: set[str] = set()
    for path in _tables(f for fs in folders.values() for f in fs):
        done.update(read_key_column(path) or ())
    return done


def done_seeds(db: Path, experiment: str, sweep_key: str, uri: str) -> dict | None:
    """cell key -> the seeds in that cell's tables (an int64 array, unsorted, repeats
    possible), read as ``done_keys`` reads the keys: the same Nones and errors. A cell's
    seed names its run (the key is a hash of the cell's spec and the seed), and a column
    of integers reads and compares several times faster than one of 24-digit keys."""
    import numpy as np

    from .tables import read_seed_column

    folders = _cell_folders(db, experiment, sweep_key, uri)
    if folders is None:
        return None
    out = {}
    for cell, (folder, *_) in folders.items():  # the cell's oldest run, as the client's
        parts = [read_seed_column(p) for p in _tables([folder])]
        parts = [p for p in parts if p is not None]
        out[cell] = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return out


def _tables(folders):
    from .tables import SHARDS

    for folder in folders:
        yield from (folder / SHARDS).glob("*.parquet")


def _cell_folders(db: Path, experiment: str, sweep_key: str, uri: str) -> dict | None:
    """cell key -> the local artifact folders of the sweep's runs of that cell, oldest
    first (one, unless a crash left two); None and errors as ``done_keys``."""
    from .artifacts import local_dir
    from .runs import check_layout

    if not Path(db).is_file():
        raise LookupError(f"no tracking store at {db}; run the sweep first")
    # mode=ro: a status query never creates, migrates or locks the store for writing;
    # the timeout waits out a sweep's write instead of failing on a busy database
    con = sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        try:
            (revision,) = con.execute("SELECT version_num FROM alembic_version").fetchone()
        except (sqlite3.Error, TypeError):
            return None
        if revision not in KNOWN_SCHEMAS:
            return None
        found = con.execute(_PARENT, (SWEEP_TAG, sweep_key, LAYOUT_TAG, experiment)).fetchone()
        if found is None:
            raise LookupError(f"sweep {sweep_key} has no runs in {db}; run it first")
        check_layout({LAYOUT_TAG: found[1]} if found[1] else {}, sweep_key, uri)
        rows = con.execute(_CELLS, (PARENT_TAG, found[0], CELL_TAG)).fetchall()
    finally:
        con.close()
    folders: dict[str, list] = {}
    for u, cell in rows:  # oldest first: the run that SweepStore.cells trains into
        folders.setdefault(cell, []).append(local_dir(u))
    if any(f is None for fs in folders.values() for f in fs):
        return None
    return folders
