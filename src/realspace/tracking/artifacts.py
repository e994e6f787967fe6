"""The artifact files of a sweep's runs: what they hold, how they are written, how they
are read back.

A training run's folder holds
  - ``realization.npz``: x, f, grad and target on the evaluation grid (when there is one);
  - ``params.npz``: the end-point parameters (a, b, c, e, w), their canonical form
    (``canonical_*``) and the loss curve (``history_step``, ``history_loss``);
  - ``record.json``: run key, spec, summary, census and projections.
An analysis unit's folder holds ``table.json``: its rows.

Every file is written atomically (a temporary sibling, then a rename), so a reader, or a
sweep resumed after a crash, never sees half a file. A local artifact store (file:// or a
plain path) is written in place; a remote one receives the files by ``log_artifacts``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = [
    "PARAMS",
    "REALIZATION",
    "RECORD",
    "TABLE",
    "atomic_write",
    "local_dir",
    "put_files",
    "read_artifact",
    "read_end_points",
    "read_table",
    "record_files",
    "table_files",
]

REALIZATION = "realization.npz"
PARAMS = "params.npz"
RECORD = "record.json"
TABLE = "table.json"

END_POINT_KEYS = ("a", "b", "c", "e", "w")  # the raw parameters in params.npz

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


def atomic_write(path: Path, write: Writer) -> None:
    """``write(file)`` into a temporary sibling, then rename: a reader (or a crash) never
    sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        write(fh)
    os.replace(tmp, path)


def _text(text: str) -> Writer:
    return lambda fh: fh.write(text.encode())


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def record_files(key: str, record) -> dict[str, Writer]:
    """The artifact files of one training run (a ``train.record`` Record) by name."""
    files: dict[str, Writer] = {}
    if record.eval_x is not None:
        files[REALIZATION] = lambda fh: np.savez(
            fh, x=record.eval_x, f=record.eval_f, grad=record.eval_grad, target=record.eval_target
        )
    can = record.canonical
    arrays = {
        **{k: np.asarray(v) for k, v in record.params.items()},
        **{
            f"canonical_{k}": np.asarray(v)
            for k, v in dict(a=can.a, b=can.b, c=can.c, e=can.e, w=can.linear).items()
        },
        "history_step": record.history_step,
        "history_loss": record.history_loss,
    }
    files[PARAMS] = lambda fh: np.savez(fh, **arrays)
    doc = {
        "run_key": key,
        "spec": record.spec.to_dict(),
        "summary": record.summary(),
        "census": record.census,
        "projections": record.projections,
    }
    files[RECORD] = _text(json.dumps(doc, indent=1, default=_json_default))
    return files


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


def read_end_points(client, runs: Iterable[tuple[str, str]]) -> list[dict]:
    """The raw end-point parameters (a, b, c, e, w of params.npz) of each (run id,
    artifact URI)."""
    out = []
    for run_id, uri in runs:
        with np.load(read_artifact(client, run_id, uri, PARAMS)) as z:
            out.append({k: z[k] for k in END_POINT_KEYS})
    return out


def read_table(client, run_id: str, artifact_uri: str) -> list[dict]:
    """The rows of an analysis unit (its table.json)."""
    return json.loads(read_artifact(client, run_id, artifact_uri, TABLE).read_text())
