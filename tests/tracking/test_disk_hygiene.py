"""What realspace leaves on disk: no temporary download once a remote file is read; one
file's writers never tear it nor clobber each other's temporary file; every report file
renamed into place; the folders and files of a local store and of a report its owner's
alone; the credentials file ignored by git."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from realspace.tracking import artifacts, tables
from realspace.tracking.connection import Connection
from realspace.tracking.runs import CellRun, SweepStore

REMOTE = "mlflow-artifacts:/1/cell/artifacts"  # no local folder: files are downloaded


class RemoteStore:
    """An MlflowClient's artifact calls on a remote store, its files kept in ``root``:
    ``download_artifacts`` copies one into ``dst_path`` and returns where, as MLflow's."""

    def __init__(self, root: Path):
        self.root = root
        self.downloads = 0

    def list_artifacts(self, run_id, path):
        return [SimpleNamespace(path=f"{path}/{p.name}") for p in (self.root / path).iterdir()]

    def download_artifacts(self, run_id, path, dst_path):
        out = Path(dst_path) / path
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / path, out)
        self.downloads += 1
        return str(out)


def _piece(root: Path, name: str, keys: list[str]) -> dict:
    """A piece of ``keys`` written into the remote store's ``root``; its arrays."""
    M = len(keys)
    rng = np.random.default_rng(len(keys))
    arrays = {"run_key": np.array(keys)}
    arrays |= {k: rng.normal(size=(M, 3, 2)) for k in ("a",)}
    arrays |= {k: rng.normal(size=(M, 3)) for k in ("b", "c")}
    arrays |= {"e": rng.normal(size=M), "w": rng.normal(size=(M, 2))}
    arrays["history_step"] = np.array([[0, 10, -1]] * M, np.int32)
    arrays["history_loss"] = np.array([[1.0, 0.5, np.nan]] * M, np.float32)
    rows = [{"run_key": k, "target_params": json.dumps({"k": k}), "loss": 0.5} for k in keys]
    tables.put_piece(None, "cell", root.as_uri(), name, rows, arrays)
    return arrays


def test_no_temporary_folder_is_left_once_remote_pieces_are_read(tmp_path, monkeypatch):
    """A resume (the keys in a cell's tables), a cell's close (its rows, its arrays), the
    report's end points and an analysis unit's rows, read from a remote store: the values
    read are the files', and no temporary download is left behind."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    root = tmp_path / "remote"
    first = _piece(root, "p1", ["k1", "k2"])
    second = _piece(root, "p2", ["k3"])
    (root / artifacts.TABLE).write_text(json.dumps([{"unit": 1, "gap": 0.25}]))
    client = RemoteStore(root)
    store = object.__new__(SweepStore)
    store.conn = Connection("http://mlflow:5000", client, "1")
    cell = CellRun("cell-key", "cell", REMOTE, "cell", "RUNNING")

    found = store.pieces(cell)  # the resume path: which networks are there
    assert {k: p.name for k, p in found.items()} == {"k1": "p1", "k2": "p1", "k3": "p2"}
    df = store.cell_table(cell, ["k1", "k3"])  # a cell's close: its rows ...
    assert sorted(df["run_key"]) == ["k1", "k3"]
    assert df.set_index("run_key").loc["k3", "target_params"] == {"k": "k3"}
    pieces = [found["k2"], found["k3"]]
    ends = store.end_points(pieces, ["k2", "k3"])  # ... and its arrays (report, gallery)
    for end, (arrays, m) in zip(ends, [(first, 1), (second, 0)], strict=True):
        for k in ("a", "b", "c", "e", "w"):
            np.testing.assert_array_equal(end[k], arrays[k][m])
    curves = tables.read_arrays(client, found["k1"])["k1"]
    np.testing.assert_array_equal(curves["history_step"], [0, 10])
    rows = artifacts.read_table(client, "unit", REMOTE)  # an analysis unit's rows
    assert rows == [{"unit": 1, "gap": 0.25}]

    assert client.downloads >= 6
    assert sorted(p.name for p in temp.iterdir()) == []


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from realspace.tracking.artifacts import atomic_write

    target, byte, seconds = Path(sys.argv[1]), sys.argv[2].encode(), float(sys.argv[3])
    content = byte * (1 << 20)
    (target.parent / f"ready-{sys.argv[2]}").touch()
    while not (target.parent / "go").exists():
        time.sleep(0.001)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        atomic_write(target, lambda fh: fh.write(content))
    """
)


def test_two_writers_of_one_file_never_leave_it_torn_or_missing(tmp_path):
    """Two processes (two drivers in a lease's takeover window) rewrite one file with
    different contents for half a second: the file, once written, is always there and always
    one writer's whole content; neither writer fails."""
    target = tmp_path / "piece.parquet"
    contents = {b"A" * (1 << 20), b"B" * (1 << 20)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target), byte, "0.5"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for byte in ("A", "B")
    ]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-{b}").exists() for b in "AB"):
            assert time.monotonic() < deadline, "the writers did not start"
            assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs]
            time.sleep(0.01)
        (tmp_path / "go").touch()
        seen, torn, missing = 0, 0, 0
        while any(p.poll() is None for p in procs):
            try:
                data = target.read_bytes()
            except FileNotFoundError:
                missing += seen > 0
                continue
            seen += 1
            torn += data not in contents
    finally:
        errors = [p.communicate(timeout=60)[1] for p in procs]
    failed = [
        e.strip().splitlines()[-1] for p, e in zip(procs, errors, strict=True) if p.returncode
    ]
    assert not failed and seen and not torn and not missing, (failed, seen, torn, missing)
    assert target.read_bytes() in contents
    assert sorted(p.name for p in tmp_path.glob("piece.parquet.*")) == []


def test_a_write_never_takes_another_writers_temporary_file(tmp_path):
    """Another writer's temporary file beside the target, mid-write, is left alone by a
    piece's write and by a checkpoint's save: each writes a sibling of its own."""
    import torch

    from realspace.train.state import Layout, LoopState

    piece = tmp_path / "p.parquet"
    theirs = tmp_path / "p.parquet.tmp"  # what the other writer is filling
    theirs.write_bytes(b"half")
    artifacts.atomic_write(piece, lambda fh: fh.write(b"whole"))
    assert piece.read_bytes() == b"whole" and theirs.read_bytes() == b"half"

    ckpt = tmp_path / "shard.pt"
    theirs = tmp_path / "shard.pt.tmp"
    theirs.write_bytes(b"half")
    state = LoopState.start(Layout(("a",), {"a": (2,)}, 1), {"a": torch.ones(1, 2)}, "sgd")
    state.save(ckpt, ["shard"])
    assert theirs.read_bytes() == b"half"
    assert LoopState.load(ckpt, ["shard"], "cpu").theta.tolist() == [[1.0, 1.0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "p.parquet",
        "p.parquet.tmp",
        "shard.pt",
        "shard.pt.tmp",
    ]


def _empty_report(folder: Path):
    from realspace.report.build import build_report

    return build_report(pd.DataFrame(), {}, folder, 1e-3, "a report")


def test_every_report_file_is_renamed_into_place(tmp_path, monkeypatch):
    """report.md, report.html and each figure reach their names by a rename of a whole
    file (a reader of the folder never opens half a report)."""
    renamed = {}
    replace = os.replace

    def recorded(src, dst):
        renamed[Path(dst).name] = Path(src).read_bytes()
        replace(src, dst)

    monkeypatch.setattr(os, "replace", recorded)
    report = _empty_report(tmp_path / "reports" / "s")
    names = [p.name for p in report.files]
    assert names[:2] == ["report.md", "report.html"] and len(names) > 2
    assert sorted(renamed) == sorted(names)
    for path in report.files:
        assert renamed[path.name] == path.read_bytes()
    assert sorted(p.name for p in report.folder.iterdir()) == sorted(names)  # nothing else


@pytest.fixture
def umask_022():
    """The usual umask of a shared host: what a process creates is readable by all."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_report_folders_and_files_are_their_owners_alone(tmp_path, umask_022):
    report = _empty_report(tmp_path / "reports" / "s")
    assert _mode(tmp_path / "reports") == _mode(report.folder) == "0o700"
    assert {_mode(p) for p in report.files} == {"0o600"}


def test_local_store_folders_and_files_are_their_owners_alone(tmp_path, umask_022):
    """The folders realspace makes for a local artifact store (a run's, its shards') and
    the files it writes there; a folder that was there keeps its mode."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    run = shared / "mlartifacts" / "1" / "run" / "artifacts"
    _piece(run, "p1", ["k1"])
    artifacts.put_files(None, "run", run.as_uri(), {"table.json": lambda fh: fh.write(b"[]")})
    made = [run.parents[2], run.parents[1], run.parent, run, run / tables.SHARDS]
    assert {str(p.relative_to(shared)): _mode(p) for p in made} == {
        str(p.relative_to(shared)): "0o700" for p in made
    }
    files = [run / "table.json", *(run / tables.SHARDS).iterdir()]
    assert len(files) == 3 and {_mode(p) for p in files} == {"0o600"}
    assert _mode(shared) == "0o755"


def test_an_embedded_store_is_its_owners_alone(tmp_path, umask_022):
    """A SQLite store realspace creates: the database file 0o600 (SQLite gives its
    journals the same mode) and its ``mlartifacts`` folder 0o700; the folder the store
    was created in is the user's and keeps its mode."""
    from realspace.tracking.connection import connect

    folder = tmp_path / "work"
    folder.mkdir(mode=0o755)
    conn = connect(f"sqlite:///{folder / 'mlruns.db'}", "sweep")
    assert conn.experiment_id is not None
    assert _mode(folder / "mlruns.db") == "0o600"
    assert _mode(folder / "mlartifacts") == "0o700"
    assert _mode(folder) == "0o755"


def test_the_credentials_file_is_ignored_by_git():
    root = Path(__file__).resolve().parents[2]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    for name in (".env", "infra/.env"):
        res = subprocess.run(
            ["git", "check-ignore", "-q", name], cwd=root, capture_output=True, timeout=30
        )
        assert res.returncode == 0, f"{name} is not ignored by git"
