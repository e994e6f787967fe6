"""The status of a sweep's runs, read straight from an embedded (SQLite) tracking store.

``realspace status`` asks one question, often: which run keys have a FINISHED, RUNNING or
other child run. Through MLflow's client the answer costs about 5 s here before the first
query (importing MLflow about 3 s, opening the store runs its schema checks about 2 s);
read-only SQL on the same file answers in a tenth of a second and never writes to it.

The tables read (``experiments``, ``runs``, ``tags``) are MLflow's own, so the schema
revision they were read at is pinned: a store at any other revision returns None and the
caller asks MLflow's client instead (tests compare both paths on one store).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .layout import KEY_TAG, PARENT_TAG, SWEEP_TAG

__all__ = ["KNOWN_SCHEMAS", "child_statuses"]

# alembic revisions of MLflow's tracking schema whose runs/tags/experiments tables this
# module reads (MLflow 3.17.2)
KNOWN_SCHEMAS = frozenset({"dc11669786a5"})

_PARENT = """
SELECT r.run_uuid FROM runs r
JOIN experiments e ON e.experiment_id = r.experiment_id
JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = ? AND t.value = ?
WHERE e.name = ? AND e.lifecycle_stage = 'active' AND r.lifecycle_stage = 'active'
ORDER BY r.start_time ASC LIMIT 1
"""
_CHILDREN = """
SELECT k.value, r.status FROM runs r
JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = ? AND p.value = ?
JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = ?
WHERE r.lifecycle_stage = 'active'
"""


def child_statuses(db: Path, experiment: str, sweep_key: str) -> dict[str, set[str]] | None:
    """Run key -> the statuses of its active child runs (MLflow's FINISHED, RUNNING,
    FAILED, KILLED, ...) under the sweep's parent run, the earliest run tagged with
    ``sweep_key`` in ``experiment``, as the client's search finds it.

    Returns None when the file's schema revision is not one this module knows; raises
    LookupError when the file, the experiment or the parent run does not exist.
    """
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
        found = con.execute(_PARENT, (SWEEP_TAG, sweep_key, experiment)).fetchone()
        if found is None:
            raise LookupError(f"sweep {sweep_key} has no runs in {db}; run it first")
        out: dict[str, set[str]] = {}
        for key, status in con.execute(_CHILDREN, (PARENT_TAG, found[0], KEY_TAG)):
            out.setdefault(key, set()).add(status)
        return out
    finally:
        con.close()
