"""Artifact files of a sweep's runs: how they are written and read back.

The networks' tables and arrays are ``tables``' business; here: the atomic write every
file goes through, the one file of an analysis unit (``table.json``: its rows), and the
way to a run's artifact folder, local or remote.

Every file is written atomically (a temporary sibling, then a rename), so a reader, or a
sweep resumed after a crash, never sees half a file. A local artifact store (file:// or a
plain path) is written in place; a remote one receives the files by ``log_artifacts``.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "NO_SPACE",
    "TABLE",
    "NoSpace",
    "atomic_write",
    "local_dir",
    "put_files",
    "read_artifact",
    "read_table",
    "table_files",
]

TABLE = "table.json"

# a file's content, as a function that writes it into an open binary file
Writer = Callable[[BinaryIO], None]


def local_dir(uri: str) -> Path | None:
    """The folder of a file:// (or plain path) artifact URI, None for remote stores."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


# the disk is full, a quota is reached, or a file-size limit (RLIMIT_FSIZE) is hit
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class NoSpace(OSError):
    """A file of the store could not be written for lack of space; its half is removed.
    Constructed as OSError(errno, message), so that it crosses process boundaries (Ray)
    as it is."""


def atomic_write(path: Path, write: Writer) -> None:
    """``write(file)`` into a temporary sibling, then rename: a reader (or a crash) never
    sees half a file. When the write fails the temporary file is removed (it would hold
    space on a full disk); a full disk raises NoSpace naming the file and what to do."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in NO_SPACE and not isinstance(e, NoSpace):
            raise NoSpace(
                e.errno,
                f"no space to write {path} ({e.strerror}): free space (or raise the limit) "
                "and rerun the sweep; it resumes, and nothing without its data was marked "
                "FINISHED",
            ) from e
        raise


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
        local.mkdir(parents=True, exist_ok=True)
        for name, write in files.items():
            atomic_write(local / name, write)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in files.items():
            atomic_write(Path(tmp) / name, write)
        client.log_artifacts(run_id, tmp)


def read_artifact(client, run_id: str, artifact_uri: str, name: str) -> Path:
    """A local path to one artifact of a run (in place for local stores, else downloaded
    into a fresh temporary folder that the caller may keep)."""
    local = local_dir(artifact_uri)
    if local is not None:
        return local / name
    tmp = tempfile.mkdtemp(prefix="realspace-")
    return Path(client.download_artifacts(run_id, name, tmp))


def read_table(client, run_id: str, artifact_uri: str) -> list[dict]:
    """The rows of an analysis unit (its table.json)."""
    return json.loads(read_artifact(client, run_id, artifact_uri, TABLE).read_text())
