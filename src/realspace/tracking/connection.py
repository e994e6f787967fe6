"""Where a sweep's runs are kept, and the way in.

This module owns:

- the tracking URI: ``--tracking-uri``, else MLFLOW_TRACKING_URI, else the config's, else
  the embedded store (``mlruns.db``, SQLite, in the working directory);
- opening an MlflowClient and the sweep's experiment on it (created on first use, with
  its artifacts beside the SQLite database when the store is one); an embedded store
  realspace creates is its owner's alone (the database file 0o600, ``mlartifacts`` 0o700);
- ``check_reachable``: a fail-fast health check, answering in seconds where MLflow's own
  client would retry for minutes.

What a store writes is ``layout``'s and ``runs``' business; nothing here knows about runs.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Connection",
    "artifact_root",
    "check_reachable",
    "connect",
    "default_tracking_uri",
    "resolve_tracking_uri",
    "sqlite_path",
    "store_exists",
]

SQLITE = "sqlite:///"


def default_tracking_uri(cwd: str | os.PathLike | None = None) -> str:
    """The embedded store: ``mlruns.db`` (SQLite) in the working directory."""
    return f"{SQLITE}{Path(cwd or os.getcwd()).resolve() / 'mlruns.db'}"


def resolve_tracking_uri(cli: str | None = None, config: str | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the config's, else the embedded store."""
    return cli or os.environ.get("MLFLOW_TRACKING_URI") or config or default_tracking_uri()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for any other store."""
    return Path(uri.removeprefix(SQLITE)) if uri.startswith(SQLITE) else None


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: for a SQLite store, ``mlartifacts``
    beside the database, not in the current directory of whoever happens to log first;
    for any other store None (the server decides)."""
    db = sqlite_path(uri)
    return (db.parent / "mlartifacts").resolve().as_uri() if db is not None else None


def store_exists(uri: str) -> bool:
    """False when the URI names a SQLite file that is not there. Opening one would create
    an empty database, so readers ask first. Any other store counts as existing (only a
    connection could tell)."""
    db = sqlite_path(uri)
    return db is None or db.exists()


@dataclass(frozen=True)
class Connection:
    """An MlflowClient on one store and the id of one experiment in it (None: opened
    without ``create`` and the experiment does not exist yet, so nothing was logged)."""

    uri: str
    client: Any  # mlflow.tracking.MlflowClient, imported only when a store is opened
    experiment_id: str | None


def connect(uri: str, experiment: str, create: bool = True) -> Connection:
    """Open the store and the experiment (with ``create``, creating it when missing).

    A deleted experiment is an error rather than silently restored or shadowed: its name
    is still taken in MLflow, and its runs would be invisible to every query here. With
    ``create`` the experiment is tagged so that the UI opens it on its runs (an experiment
    made by an older version gets the tag then); without, nothing is written.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from .layout import EXPERIMENT_KIND

    with _opening(uri):
        client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None and not create:
        exp_id = None
    elif exp is None:
        root = artifact_root(uri)
        if root is not None:  # beside a SQLite database: made private before MLflow makes it
            from .artifacts import local_dir, private_dir

            private_dir(local_dir(root))
        try:
            exp_id = client.create_experiment(
                experiment,
                artifact_location=root,
                tags={EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1]},
            )
        except MlflowException as e:
            # another driver created it between the look-up and here (names are unique)
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp_id = client.get_experiment_by_name(experiment).experiment_id
    elif exp.lifecycle_stage != "active":
        raise ValueError(
            f"experiment {experiment!r} is deleted in {uri}; "
            "restore it or choose another sweep name"
        )
    else:
        exp_id = exp.experiment_id
        if create and exp.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
            client.set_experiment_tag(exp_id, *EXPERIMENT_KIND)
    return Connection(uri, client, exp_id)


@contextlib.contextmanager
def _opening(uri: str):
    """Hold an exclusive lock on a SQLite store's folder while MLflow opens the store.

    Opening a SQLite file that has no tables yet creates them, and MLflow 3.17's tracking
    store does so without a lock: two processes opening one new store at once (two
    drivers of a sweep started together) fail with "table ... already exists". The lock
    (flock on the folder, released when the process dies) makes the second wait for the
    first's tables. Other stores create their schema on their server's side.

    A database file that is not there yet is created first, empty (SQLite's empty
    database) and readable by its owner only: SQLAlchemy would create it with the mode the
    umask gives (world-readable on most shared hosts), and SQLite gives its journal and
    WAL files the database file's mode, so the file is what has to be private. The folder
    is left as it is: it is the user's (the working directory, by default), not
    realspace's to change; a database file that exists keeps its mode too."""
    db = sqlite_path(uri)
    if db is None or os.name != "posix" or not db.parent.is_dir():
        yield
        return
    import fcntl

    fd = os.open(db.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with _quiet_schema_setup():
            yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _quiet_schema_setup():
    """MLflow logs "Creating initial MLflow database tables..." and "Updating database
    tables" at INFO when it creates a SQLite store: routine, not news for a sweep's
    terminal. Its warnings and errors still show."""
    import logging

    logger = logging.getLogger("mlflow.store.db.utils")
    level = logger.level
    logger.setLevel(max(logging.WARNING, level))
    try:
        yield
    finally:
        logger.setLevel(level)


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail fast, before any work, when the tracking store cannot be reached: an HTTP
    server must answer (any status), a database host accept a TCP connection, a SQLite
    file's folder exist. Raises ConnectionError naming the (masked) URI.

    MLflow's own client retries an unreachable server for minutes; this check answers
    within ``timeout`` seconds.
    """
    import socket
    import urllib.error
    import urllib.request
    from urllib.parse import urlparse

    from .secrets import mask

    parsed = urlparse(uri)
    scheme = parsed.scheme.split("+")[0]
    try:
        if scheme in ("http", "https"):
            port = parsed.port or (443 if scheme == "https" else 80)
            base = f"{parsed.scheme}://{parsed.hostname}:{port}"
            try:
                urllib.request.urlopen(base + "/health", timeout=timeout).close()
            except urllib.error.HTTPError:
                pass  # it answered: reachable (authentication is MLflow's business)
        elif scheme in ("postgresql", "mysql", "mssql"):
            default = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}[scheme]
            socket.create_connection((parsed.hostname, parsed.port or default), timeout).close()
        elif scheme == "sqlite":
            # the file itself may be missing (the first sweep creates it), its folder not
            folder = Path(uri.removeprefix(SQLITE)).parent
            if not folder.is_dir():
                raise OSError(f"folder {folder} does not exist")
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise ConnectionError(
            f"tracking store {mask(uri)} is not reachable: {mask(str(reason))}"
        ) from None
