"""Artifact files of a sweep's runs: how they are written and read back.

The networks' tables and arrays are ``tables``' business; here: the one file of an
analysis unit (``table.json``: its rows), and the way to a run's artifact folder, local
or remote.

Every file is written atomically (``realspace.files``: a temporary sibling of its own,
then a rename), so a reader, or a sweep resumed after a crash, never sees half a file,
and two writers of one file (a driver and the one that took its lease over) never tear
it. A local artifact store (file:// or a plain path) is written in place, into folders
only their owner may enter; a remote one receives the files by ``log_artifacts``. A
remote file is read through a temporary download removed as soon as it has been read.
"""

from __future__ import annotations

import contextlib
import errno
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

# the atomic write lives in the core (the report writes its files through it too)
from ..files import NO_SPACE, NoSpace, Writer, atomic_write, private_dir

_REFUSAL = {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}

__all__ = [
    "NO_SPACE",
    "TABLE",
    "NoSpace",
    "Refused",
    "atomic_write",
    "local_dir",
    "private_dir",
    "put_files",
    "read_artifact",
    "read_table",
    "refused",
    "table_files",
]

TABLE = "table.json"


def local_dir(uri: str) -> Path | None:
    """The folder of a file:// (or plain path) artifact URI, None for remote stores."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def _text(text: str) -> Writer:
    return lambda fh: fh.write(text.encode())


def table_files(rows: list[dict]) -> dict[str, Writer]:
    """The artifact file of one analysis unit: its rows as ``table.json``."""
    return {TABLE: _text(json.dumps(rows, indent=1))}


def put_files(client, run_id: str, artifact_uri: str, files: dict[str, Writer]) -> None:
    """Write ``files`` into a run's artifact folder: in place for a local store (what
    ``log_artifacts`` would copy there), else through a temporary folder."""
    local = local_dir(artifact_uri)
    if local is not None:
        private_dir(local)
        for name, write in files.items():
            atomic_write(local / name, write)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in files.items():
            atomic_write(Path(tmp) / name, write)
        client.log_artifacts(run_id, tmp)


class Refused(PermissionError):
    """The tracking server refused this process's credentials: every retry would be
    refused too. Constructed as PermissionError(errno, message), so that it crosses
    process boundaries (Ray) as it is, and ``files.hopeless`` knows it."""


def refused(err: BaseException) -> Refused | None:
    """``err`` as Refused when it is a tracking server's refusal of the credentials
    (HTTP 401 or 403: requests' HTTPError from an artifact upload, MlflowException's
    error code from the REST API), else None."""
    status = getattr(getattr(err, "response", None), "status_code", None)
    status = status if status in (401, 403) else _REFUSAL.get(getattr(err, "error_code", None))
    if status is None:
        return None
    return Refused(
        errno.EACCES,
        f"the tracking server refused this worker's credentials (HTTP {status}): check the "
        "user and password of the tracking URI, or MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD where the workers run; the sweep resumes once they are right",
    )


@contextlib.contextmanager
def read_artifact(client, run_id: str, artifact_uri: str, name: str) -> Iterator[Path]:
    """A local path to one artifact of a run, for the ``with`` block: in place for local
    stores, else downloaded into a temporary folder that is removed when the block ends.
    Read what is needed inside the block (into memory: a lazily read file, such as
    ``np.load`` of an npz, must be loaded before the block ends)."""
    local = local_dir(artifact_uri)
    if local is not None:
        yield local / name
        return
    with tempfile.TemporaryDirectory(prefix="realspace-") as tmp:
        yield Path(client.download_artifacts(run_id, name, tmp))


def read_table(client, run_id: str, artifact_uri: str) -> list[dict]:
    """The rows of an analysis unit (its table.json)."""
    with read_artifact(client, run_id, artifact_uri, TABLE) as path:
        return json.loads(path.read_text())
