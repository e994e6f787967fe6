"""The per-network data of a sweep as tables: one row per trained network, written a
piece at a time, where the networks were trained.

A *piece* is the networks of one shard that belong to one cell (networks that differ
only by seed). It is two files in the cell run's ``shards/`` artifact folder, named by a
digest of the piece's run keys (so a retried shard rewrites the same files, never adds a
second copy):

- ``<piece>.npz``: the end points stacked, a (M, N, d), b (M, N), c (M, N), e (M,),
  w (M, d), float64, and the loss curves history_step (M, K) int32 (-1 past a curve's
  end), history_loss (M, K) float32 (NaN there); run_key (M,) names the rows;
- ``<piece>.parquet``: one row per network: ``run_key``, its spec (``target_params`` as
  JSON text), ``target_label``, ``run_status``, the certificates and end-point numbers of
  ``RunRecord.summary`` (``steps`` as ``steps_taken``), the census (``census_*``),
  margins (``margin_*``), projection counts (``proj_*``), ``shard`` and ``node``.

The npz is written first and the table last, each atomically: a piece whose table reads
is complete, and a table that does not read (a write cut short) is not there. Nothing
else marks a network done, which is what lets a sweep be killed anywhere and resumed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.spec import RunSpec, target_label
from .artifacts import atomic_write, local_dir, private_dir, read_artifact, refused

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "END_POINT_KEYS",
    "SHARDS",
    "Piece",
    "piece_name",
    "piece_arrays",
    "piece_rows",
    "put_piece",
    "list_pieces",
    "read_key_column",
    "read_columns",
    "read_pieces",
    "read_keys",
    "read_seed_column",
    "read_table",
    "read_arrays",
]

SHARDS = "shards"  # the folder of a cell run's pieces
END_POINT_KEYS = ("a", "b", "c", "e", "w")
_SPEC_FIELDS = tuple(RunSpec.__dataclass_fields__)


def piece_name(keys: Iterable[str]) -> str:
    """The file stem of the piece holding these run keys: the same networks, the same
    name, whichever attempt writes them."""
    return hashlib.sha256(",".join(sorted(keys)).encode()).hexdigest()[:20]


def _scalar(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def piece_rows(keys: list[str], records: list, shard: str, node: str | None) -> list[dict]:
    """One table row per (run key, RunRecord)."""
    rows = []
    for key, rec in zip(keys, records, strict=True):
        spec = rec.spec.to_dict()
        spec["target_params"] = json.dumps(spec["target_params"], sort_keys=True)
        summary = {k: _scalar(v) for k, v in rec.summary().items() if k != "status"}
        summary["steps_taken"] = summary.pop("steps")
        rows.append(
            {
                "run_key": key,
                **spec,
                "target_label": target_label(rec.spec),
                "run_status": rec.status,
                **summary,
                "shard": shard,
                "node": node or "",
            }
        )
    return rows


def piece_arrays(keys: list[str], records: list) -> dict[str, np.ndarray]:
    """The stacked end points and loss curves of one piece (networks of one width)."""
    out = {"run_key": np.array(keys)}
    for k in END_POINT_KEYS:
        out[k] = np.stack([np.asarray(r.params[k], dtype=np.float64) for r in records])
    K = max((len(r.history_step) for r in records), default=0)
    steps = np.full((len(records), K), -1, np.int32)
    loss = np.full((len(records), K), np.nan, np.float32)
    for m, r in enumerate(records):
        steps[m, : len(r.history_step)] = r.history_step
        loss[m, : len(r.history_loss)] = r.history_loss
    out["history_step"], out["history_loss"] = steps, loss
    return out


def _parquet_bytes(rows: list[dict]) -> bytes:
    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf, index=False, compression="zstd")
    return buf.getvalue()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def put_piece(
    client, run_id: str, artifact_uri: str, name: str, rows: list[dict], arrays: dict
) -> int:
    """Write one piece into a cell run's ``shards/`` folder: the arrays, then the table.
    In place for a local artifact store (``client`` unused, may be None), else uploaded
    with ``client.log_artifact``. Returns bytes written."""
    files = [(f"{name}.npz", _npz_bytes(arrays)), (f"{name}.parquet", _parquet_bytes(rows))]
    local = local_dir(artifact_uri)
    if local is not None:
        folder = private_dir(local / SHARDS)
        for fname, data in files:
            atomic_write(folder / fname, lambda fh, data=data: fh.write(data))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            for fname, data in files:
                path = Path(tmp) / fname
                path.write_bytes(data)
                try:
                    client.log_artifact(run_id, str(path), SHARDS)
                except Exception as e:
                    refusal = refused(e)
                    if refusal is None:
                        raise
                    raise refusal from None  # the original's text may hold the URI
    return sum(len(data) for _, data in files)


@dataclass(frozen=True)
class Piece:
    """Where one piece lives: its cell run, that run's artifact URI and its name."""

    run_id: str
    artifact_uri: str
    name: str


def list_pieces(client, run_id: str, artifact_uri: str) -> list[Piece]:
    """The pieces of a cell run whose table is there, by name."""
    local = local_dir(artifact_uri)
    if local is not None:
        names = [p.name for p in (local / SHARDS).glob("*.parquet")]
    else:
        names = [Path(f.path).name for f in client.list_artifacts(run_id, SHARDS)]
    stems = sorted(n.removesuffix(".parquet") for n in names if n.endswith(".parquet"))
    return [Piece(run_id, artifact_uri, s) for s in stems]


def _fetch(client, piece: Piece, suffix: str) -> contextlib.AbstractContextManager[Path]:
    """A local path to one file of a piece for a ``with`` block (a remote file's download
    is removed when the block ends: read it into memory inside)."""
    return read_artifact(client, piece.run_id, piece.artifact_uri, f"{SHARDS}/{piece.name}{suffix}")


def read_key_column(path: Path) -> list[str] | None:
    """The ``run_key`` column of one table file; None when it does not read (a write cut
    short: the piece is not there). Read with pyarrow's file reader, which, unlike
    ``read_table``, does not load pandas (a second of a status query's time)."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).read(columns=["run_key"])["run_key"].to_pylist()
    except Exception:  # noqa: BLE001 - any unreadable table is a piece not written
        return None


def read_seed_column(path: Path):
    """The ``seed`` column of one table file as int64; None when it does not read."""
    import pyarrow.parquet as pq

    try:
        column = pq.ParquetFile(path).read(columns=["seed"])["seed"]
        return column.to_numpy().astype(np.int64, copy=False)
    except Exception:  # noqa: BLE001 - any unreadable table is a piece not written
        return None


def read_keys(client, piece: Piece) -> list[str] | None:
    """The run keys of a piece's table; None when the table does not read."""
    try:
        with _fetch(client, piece, ".parquet") as path:
            return read_key_column(path)
    except Exception:  # noqa: BLE001 - a remote file that will not download: not there
        return None


def read_table(client, piece: Piece) -> pd.DataFrame:
    """A piece's rows, ``target_params`` as a dict and the piece's name in ``piece``."""
    import pandas as pd

    with _fetch(client, piece, ".parquet") as path:
        df = pd.read_parquet(path)
    df["target_params"] = [json.loads(t) for t in df["target_params"]]
    df["piece"] = piece.name
    return df


def read_columns(client, piece: Piece, columns, prefixes=()) -> pd.DataFrame:
    """The columns of a piece's table named in ``columns`` or starting with one of
    ``prefixes`` (those it has), and the piece's name in ``piece``: what a question of a
    whole cell needs, without the rest of its rows."""
    import pyarrow.parquet as pq

    with _fetch(client, piece, ".parquet") as path:
        file = pq.ParquetFile(path)
        names = file.schema_arrow.names
        keep = [c for c in names if c in columns or c.startswith(tuple(prefixes))]
        df = file.read(columns=keep).to_pandas()
    df["piece"] = piece.name
    return df


def read_pieces(client, pieces: Iterable[tuple[Piece, dict]], omit=()):
    """The rows of many pieces as one arrow Table, in the pieces' order: each piece's
    columns but those named in ``omit`` (a column a piece lacks reads null), its name in
    ``piece`` and the constant columns given beside it (``{"cell_run": ...}``); a piece
    whose table does not read is skipped (a write cut short: it is not there). None when
    no piece reads.

    Arrow, not a pandas frame per piece, because the pieces then concatenate without a
    copy: every column of 10^6 networks reads into one frame at a peak of 2.0 GB, not
    2.7 GB, in half the time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    omit = set(omit)
    tables = []
    for piece, extra in pieces:
        try:
            with _fetch(client, piece, ".parquet") as path:
                file = pq.ParquetFile(path)
                table = file.read(columns=[c for c in file.schema_arrow.names if c not in omit])
        except Exception:  # noqa: BLE001 - a table cut short: the piece is not there
            continue
        for name, value in {"piece": piece.name, **extra}.items():
            table = table.append_column(name, pa.repeat(pa.scalar(value, pa.large_string()),
                                                        table.num_rows))  # fmt: skip
        tables.append(table)
    if not tables:
        return None
    # pieces written before a field existed lack its column: it reads null there
    return pa.concat_tables(tables, promote_options="default")


def read_arrays(client, piece: Piece) -> dict[str, dict[str, np.ndarray]]:
    """run key -> its end point (a, b, c, e, w) and loss curve (history_step,
    history_loss, without the padding) of one piece."""
    # np.load of an npz reads each array on access: all of them read before the file goes
    with _fetch(client, piece, ".npz") as path, np.load(path) as z:
        data = {k: z[k] for k in z.files}
    out = {}
    for m, key in enumerate(data["run_key"].tolist()):
        keep = data["history_step"][m] >= 0
        out[key] = {k: data[k][m] for k in END_POINT_KEYS} | {
            "history_step": data["history_step"][m][keep],
            "history_loss": data["history_loss"][m][keep],
        }
    return out
