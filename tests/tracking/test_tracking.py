"""The tracking layer on its own (no flow): cell runs and their tables written, read back
through one SweepReader and through read-only SQL, a table cut short, analysis units
reconciled after a crash, a cell closed, a store of the old layout refused."""

import numpy as np
import pytest
from factories import sweep_config

from realspace.sweep.config import parse_config
from realspace.sweep.plan import cell_key, plan_runs, sweep_key
from realspace.tracking import SweepReader, load_runs
from realspace.tracking.layout import KEY_TAG, PARENT_TAG, SWEEP_TAG
from realspace.tracking.runs import OldLayout, Reconciled, SweepStore
from realspace.tracking.tables import (
    SHARDS,
    piece_arrays,
    piece_name,
    piece_rows,
    put_piece,
)

DOC = sweep_config(
    name="reader-check",
    parametrizations=["unrestricted"],
    widths=[2],
    seeds=4,
    optimizer={"steps": 20, "lr": 0.02},
    data={"n_samples": 16},
)


def _write(st, cell, runs, records, shard="shard-0"):
    keys = [r.key for r in runs]
    return put_piece(
        st.client,
        cell.run_id,
        cell.artifact_uri,
        piece_name(keys),
        piece_rows(keys, records, shard, None),
        piece_arrays(keys, records),
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sweep of four planned runs in one cell: the first two written as one piece, the
    third's piece cut short (a crash mid-write), the fourth never trained; and two
    analysis units left RUNNING and FAILED by an "interrupted" attempt."""
    from realspace.train import train_and_record

    cfg = parse_config(DOC)
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlruns.db'}"
    runs = plan_runs(cfg)
    st = SweepStore(uri, cfg.name)
    parent = st.parent_run(sweep_key(cfg), cfg.name)
    key = cell_key(runs[0].spec)
    [cell] = st.open_cells(parent, {key: ("sin-u-w2", runs[0].spec, 4)}).values()
    records = train_and_record([r.spec for r in runs[:3]])
    _write(st, cell, runs[:2], records[:2])
    _write(st, cell, runs[2:3], records[2:3])
    cut = st.pieces(cell)[runs[2].key]
    table = st.cell_table(cell)  # before the cut: all three
    assert len(table) == 3
    path = cell.artifact_uri.removeprefix("file://") + f"/{SHARDS}/{cut.name}.parquet"
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    for unit, status in (("unit-a", "RUNNING"), ("unit-b", "FAILED")):
        child = st.client.create_run(
            st.experiment_id, tags={PARENT_TAG: parent, KEY_TAG: unit, "realspace.stage": "x"}
        ).info.run_id
        if status != "RUNNING":
            st.client.set_terminated(child, status)
    return uri, st, parent, runs, records, cell


def test_the_reader_reports_each_planned_run(store):
    uri, _, _, runs, records, _ = store
    reader = SweepReader(DOC, uri)
    assert [r.key for r in reader.planned] == [r.key for r in runs]
    # the piece cut short does not count: its network will be trained again
    assert reader.status() == {
        runs[0].key: "done",
        runs[1].key: "done",
        runs[2].key: "pending",
        runs[3].key: "pending",
    }
    df = reader.runs()
    assert sorted(df["run_key"]) == sorted(r.key for r in runs[:2])
    assert load_runs(DOC, uri).equals(df)
    assert df["width"].dtype.kind == "i" and df["certified"].dtype == bool
    by_key = {r.key: rec for r, rec in zip(runs, records, strict=False)}
    for (_, row), end in zip(df.iterrows(), reader.params(df), strict=True):
        rec = by_key[row["run_key"]]
        assert row["loss"] == rec.loss and row["objective"] == rec.objective
        assert row["census_effective_width"] == rec.census["effective_width"]
        assert row["target_params"] == {} and row["seed"] == rec.spec.seed
        for k in "abcew":  # float64 end points, exactly as trained
            np.testing.assert_array_equal(end[k], rec.params[k])
    [again] = reader.params_by_key([df["run_key"][1]])
    assert all((again[k] == reader.params(df)[1][k]).all() for k in again)


def test_the_reader_lists_the_children_once(store, search_queries):
    """Every answer comes from one query of the parent's children (and one for the
    parent), however many questions are asked."""
    uri, *_ = store
    reader = SweepReader(DOC, uri)
    reader.status()
    df = reader.runs()
    reader.stage("pathology")
    reader.params_by_key(list(df["run_key"]))
    assert len(search_queries) == 2, search_queries


def test_status_read_with_sql_matches_the_client(store, tmp_path):
    """The read-only SQL path of `realspace status` against MLflow's client on one store,
    and nothing there yet: every run pending, no file created."""
    from realspace.tracking.reader import cell_status, sweep_status
    from realspace.tracking.sqlite_status import done_keys, done_seeds

    uri, _, _, runs, _, _ = store
    db = uri.removeprefix("sqlite:///")
    assert done_keys(db, DOC["name"], sweep_key(parse_config(DOC)), uri) == {
        runs[0].key,
        runs[1].key,
    }
    assert sweep_status(DOC, uri) == SweepReader(DOC, uri).status()
    # by cell, from the seed columns: the same counts on both paths, no key hashed
    seeds = done_seeds(db, DOC["name"], sweep_key(parse_config(DOC)), uri)
    assert {k: sorted(v.tolist()) for k, v in seeds.items()} == {cell_key(runs[0].spec): [0, 1]}
    reader = SweepReader(DOC, uri).stored_seeds()
    assert {k: sorted(v.tolist()) for k, v in reader.items()} == {cell_key(runs[0].spec): [0, 1]}
    [(cell, done)] = cell_status(DOC, uri)
    assert (cell.key, len(cell), done) == (cell_key(runs[0].spec), 4, 2)
    missing = tmp_path / "none" / "mlruns.db"
    assert set(sweep_status(DOC, f"sqlite:///{missing}").values()) == {"pending"}
    assert [n for _, n in cell_status(DOC, f"sqlite:///{missing}")] == [0]
    assert not missing.exists()
    other = {**DOC, "name": "never-ran"}
    assert set(sweep_status(other, uri).values()) == {"pending"}


def test_reconcile_keeps_the_finished_units_and_deletes_the_rest(store):
    _, st, parent, *_ = store
    first = st.reconcile(parent)
    assert isinstance(first, Reconciled) and first.deleted == 2 and first.done == {}
    assert st.reconcile(parent) == Reconciled({}, 0)  # nothing left to clean


def test_a_cell_closes_only_when_complete_then_holds_its_view(store):
    """close_cell refuses a cell with networks missing; once they are in: metrics from
    the table, networks.html with every network's realization drawn, a run per network
    on request (children of the cell), FINISHED."""
    from mlflow.tracking import MlflowClient

    from realspace.train import train_and_record

    uri, st, parent, runs, records, cell = store
    keys = [r.key for r in runs]
    with pytest.raises(RuntimeError, match="2 networks not in its tables"):
        st.close_cell(cell, keys, network_runs=False)
    rest = train_and_record([r.spec for r in runs[2:]])
    _write(st, cell, runs[2:], rest, shard="shard-1")  # the rerun's piece
    found = st.close_cell(cell, keys, network_runs=True)
    objectives = [rec.objective for rec in records[:2] + rest]
    assert found["networks"] == 4 and found["objective_min"] == min(objectives)
    assert found["objective_median"] == pytest.approx(np.median(objectives), rel=1e-12)
    client = MlflowClient(uri)
    run = client.get_run(cell.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["networks"] == 4
    assert run.data.params["seeds"] == "4" and "seed" not in run.data.params
    page = client.download_artifacts(cell.run_id, "networks.html")
    text = open(page).read()
    assert text.count("<polyline") == 5 and text.count("<use") == 4  # the target once
    assert all(k in text for k in keys)
    nets = client.search_runs([st.experiment_id], f"tags.`{PARENT_TAG}` = '{cell.run_id}'")
    assert sorted(n.data.tags[KEY_TAG] for n in nets) == sorted(keys)
    assert {n.info.status for n in nets} == {"FINISHED"}
    assert {f.path for f in client.list_artifacts(nets[0].info.run_id)} == {
        "end_point.npz",
        "realization.svg",
    }
    assert SweepReader(DOC, uri).status() == {k: "done" for k in keys}
    # closing again (a rerun after a crash part-way) adds no run
    st.close_cell(cell, keys, network_runs=True)
    again = client.search_runs([st.experiment_id], f"tags.`{PARENT_TAG}` = '{cell.run_id}'")
    assert len(again) == 4


def test_a_cell_closed_from_its_lean_columns_shows_what_its_whole_table_shows(store, monkeypatch):
    """With the page cut to 2 rows and 1 drawing (what a page of a large cell leaves
    out), the page and metrics of a cell closed from its lean columns equal those built
    from its whole table, and whole rows are read only from the pieces of the rows shown."""
    import io

    from realspace.tracking import runs as runs_module
    from realspace.tracking import views
    from realspace.tracking.layout import cell_metrics
    from realspace.tracking.tables import Piece, read_arrays

    _, st, _, runs, _, cell = store
    keys = [r.key for r in runs]
    monkeypatch.setattr(views, "MAX_ROWS", 2)
    monkeypatch.setattr(views, "MAX_DRAWN", 1)
    if len(st.cell_table(cell, keys)) < 4:  # run alone: the close test's rerun piece
        from realspace.train import train_and_record

        _write(st, cell, runs[2:], train_and_record([r.spec for r in runs[2:]]), "shard-1")
    full = st.cell_table(cell, keys)
    assert len(full) == 4 and full["piece"].nunique() == 2
    arrays = {}
    for piece in sorted(set(full["piece"])):
        arrays.update(read_arrays(st.client, Piece(cell.run_id, cell.artifact_uri, piece)))
    expected = views.cell_html(cell.name, full, arrays)
    assert expected.count("<tr>") == 3 and "2 more networks" in expected
    pages, whole = {}, []

    def put(client, run_id, artifact_uri, files):
        for name, write in files.items():
            buf = io.BytesIO()
            write(buf)
            pages[name] = buf.getvalue().decode()

    real = runs_module.read_table
    monkeypatch.setattr(runs_module, "put_files", put)
    monkeypatch.setattr(runs_module, "read_table", lambda c, p: whole.append(p.name) or real(c, p))
    found = st.close_cell(cell, keys, network_runs=False)
    assert pages["networks.html"] == expected
    assert found == {name: value for name, value, _ in cell_metrics(full)}
    best = full.sort_values("objective", kind="stable")["piece"][:2]
    assert sorted(whole) == sorted(set(best))
    # a run per network needs every row and end point, whatever the page shows
    given = []
    monkeypatch.setattr(st, "_network_runs", lambda c, rows, ends: given.append((rows, ends)))
    st.close_cell(cell, keys, network_runs=True)
    [(rows, ends)] = given
    assert sorted(rows["run_key"]) == sorted(ends) == sorted(keys)
    assert pages["networks.html"] == expected


def test_status_counts_the_cell_run_training_writes_into_when_a_cell_has_two(tmp_path):
    """A crash between creating a cell run and recording it can leave a second, newer run
    of one cell: the oldest is the cell's (``SweepStore.cells``), on both status paths."""
    import time

    from realspace.tracking.layout import cell_run
    from realspace.tracking.reader import cell_status
    from realspace.tracking.sqlite_status import done_seeds
    from realspace.train import train_and_record

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    cfg = parse_config(DOC)
    runs = plan_runs(cfg)
    st = SweepStore(uri, cfg.name)
    parent = st.parent_run(sweep_key(cfg), cfg.name)
    key = cell_key(runs[0].spec)
    [cell] = st.open_cells(parent, {key: ("sin-u-w2", runs[0].spec, 4)}).values()
    _write(st, cell, runs[:2], train_and_record([r.spec for r in runs[:2]]))
    time.sleep(0.01)  # a later start time
    st.client.create_run(st.experiment_id, tags=cell_run(parent, key, runs[0].spec, "dup"))
    db = uri.removeprefix("sqlite:///")
    seeds = done_seeds(db, DOC["name"], sweep_key(cfg), uri)
    assert {k: sorted(v.tolist()) for k, v in seeds.items()} == {key: [0, 1]}
    assert [n for _, n in cell_status(DOC, uri)] == [2]
    reader = SweepReader(DOC, uri).stored_seeds()
    assert {k: sorted(v.tolist()) for k, v in reader.items()} == {key: [0, 1]}


def test_the_reader_keeps_the_first_row_of_a_key_in_run_order_with_the_columns_asked(tmp_path):
    """The reader's rows against pandas reading each table whole: a key in two pieces
    read from the first piece in the store's order, a column one piece lacks read as
    missing there, rows sorted by target, parametrization, width and seed; ``omit``
    leaves columns out and nothing else."""
    import pandas as pd

    from realspace.train import train_and_record

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    cfg = parse_config(DOC)
    runs = plan_runs(cfg)
    st = SweepStore(uri, cfg.name)
    parent = st.parent_run(sweep_key(cfg), cfg.name)
    [cell] = st.open_cells(parent, {cell_key(runs[0].spec): ("sin-u-w2", runs[0].spec, 4)}).values()
    records = train_and_record([r.spec for r in runs])
    # seeds 3, 1 in one piece and 1, 0, 2 in another (seed 1 twice, with two records)
    first = [(runs[3], records[3]), (runs[1], records[1])]
    second = [(runs[1], records[2]), (runs[0], records[0]), (runs[2], records[2])]
    for pairs in (first, second):
        keys = [r.key for r, _ in pairs]
        rows = piece_rows(keys, [rec for _, rec in pairs], "s", None)
        if pairs is second:
            for row in rows:
                del row["accuracy"]  # a piece written before the field existed
        arrays = piece_arrays(keys, [rec for _, rec in pairs])
        put_piece(st.client, cell.run_id, cell.artifact_uri, piece_name(keys), rows, arrays)
    folder = cell.artifact_uri.removeprefix("file://") + f"/{SHARDS}"
    names = sorted(piece_name([r.key for r, _ in pairs]) for pairs in (first, second))
    frames = [pd.read_parquet(f"{folder}/{n}.parquet").assign(piece=n) for n in names]
    expected = (
        pd.concat(frames, ignore_index=True)
        .drop_duplicates("run_key")
        .sort_values(["target_label", "parametrization", "width", "seed"])
        .reset_index(drop=True)
    )
    reader = SweepReader(DOC, uri)
    got = reader.runs()
    assert got["seed"].tolist() == [0, 1, 2, 3]
    assert got["run_key"].tolist() == expected["run_key"].tolist()
    kept = got.set_index("seed")["piece"][1]
    assert kept == names[0]  # the first piece in the store's order holds seed 1
    assert got["loss"].tolist() == expected["loss"].tolist()
    from_second = got["piece"] == piece_name([r.key for r, _ in second])
    assert got["accuracy"][from_second].isna().all()
    assert got["target_params"].tolist() == [{}] * 4
    lean = reader.runs(omit=("node", "shard", "loss", "seed"))
    assert "node" not in lean and "shard" not in lean and "loss" not in lean
    assert "seed" in lean  # a spec field is always read
    pd.testing.assert_frame_equal(lean, got.drop(columns=["node", "shard", "loss"]))


def test_a_sweep_with_nothing_stored_reads_as_no_networks(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    cfg = parse_config(DOC)
    SweepStore(uri, cfg.name).parent_run(sweep_key(cfg), cfg.name)
    reader = SweepReader(DOC, uri)
    assert reader.runs().empty and reader.stored_seeds() == {}
    assert set(reader.status().values()) == {"pending"}


def test_a_missing_store_is_reported_not_created(tmp_path):
    db = tmp_path / "mlruns.db"
    with pytest.raises(LookupError, match="no tracking store at .*run the sweep first"):
        SweepReader(DOC, f"sqlite:///{db}")
    assert not db.exists()
    SweepStore(f"sqlite:///{db}", "another-sweep")  # a store, without this sweep in it
    with pytest.raises(LookupError, match="'reader-check' has no runs"):
        load_runs(DOC, f"sqlite:///{db}")


def test_a_sweep_of_the_old_layout_is_refused_not_misread(tmp_path):
    """A parent run written by realspace 0.1 (a run per network, no layout tag): every
    way in names the layout and changes nothing."""
    from realspace.tracking.reader import sweep_status

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    key = sweep_key(parse_config(DOC))
    st = SweepStore(uri, DOC["name"])
    old = st.client.create_run(st.experiment_id, tags={SWEEP_TAG: key}).info.run_id
    for read in (
        lambda: SweepReader(DOC, uri),
        lambda: sweep_status(DOC, uri),
        lambda: st.parent_run(key, DOC["name"]),
    ):
        with pytest.raises(OldLayout, match="tracking layout 1 .*does not migrate"):
            read()
    assert len(st.client.search_runs([st.experiment_id], "")) == 1
    assert st.client.get_run(old).info.status == "RUNNING"


# what MLflow 3's UI reads to choose an experiment's landing page: the experiment tag
# "mlflow.experimentKind" with the value of its ExperimentKind.CUSTOM_MODEL_DEVELOPMENT
# (MLflow's names, written out here rather than taken from the implementation)
UI_KIND_TAG = "mlflow.experimentKind"
UI_RUNS_KIND = "custom_model_development"


def _ui_bundle() -> str | None:
    """The JavaScript of the installed MLflow UI's main bundle (None without the UI)."""
    from pathlib import Path

    import mlflow

    js = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    main = sorted(js.glob("main.*.js"))
    return main[0].read_text(errors="replace") if main else None


def test_the_experiment_opens_on_its_runs_in_the_ui(store, tmp_path):
    """MLflow 3's UI opens an untagged experiment on its traces overview ("Traces: 0");
    a sweep's experiment carries the tag that makes the runs table its landing page, by
    MLflow's own key and value (the UI bundle that is installed reads those very
    strings); an experiment made before the tag existed gets it when a sweep opens it."""
    from realspace.tracking.connection import connect

    uri, st, *_ = store
    exp = st.client.get_experiment(st.experiment_id)
    assert exp.tags.get(UI_KIND_TAG) == UI_RUNS_KIND, exp.tags
    bundle = _ui_bundle()
    if bundle is not None:  # the pinned MLflow's UI: the key it looks up, the value it knows
        assert f'"{UI_KIND_TAG}"' in bundle
        assert f'CUSTOM_MODEL_DEVELOPMENT="{UI_RUNS_KIND}"' in bundle
    older = st.client.create_experiment("made-before-the-tag", tmp_path.as_uri())
    assert UI_KIND_TAG not in st.client.get_experiment(older).tags
    conn = connect(uri, "made-before-the-tag")
    assert conn.experiment_id == older
    assert st.client.get_experiment(older).tags.get(UI_KIND_TAG) == UI_RUNS_KIND


# the URL parameter MLflow 3's UI reads to choose between its GenAI and machine-learning
# navigation, and the value of the latter (MLflow's names, written out)
UI_VIEW_PARAM, UI_ML_VIEW = "workflowType", "machine_learning"


def test_every_link_into_the_ui_names_the_machine_learning_view():
    """A link to a run's page carries MLflow's own view parameter (the installed bundle
    reads those strings); a tracking server's links lose its credentials, however the
    password is written; a store that is not a server has no link."""
    from realspace.app.console import look as _look
    from realspace.sweep.summary import SweepSummary
    from realspace.tracking.layout import experiment_url, run_url, ui_base

    bundle = _ui_bundle()
    if bundle is not None:
        assert f'MACHINE_LEARNING="{UI_ML_VIEW}"' in bundle and UI_VIEW_PARAM in bundle
    view = f"?{UI_VIEW_PARAM}={UI_ML_VIEW}"
    assert run_url("http://h:5000/", "3", "abc") == f"http://h:5000/#/experiments/3/runs/abc{view}"
    assert experiment_url("http://h:5000", "3") == f"http://h:5000/#/experiments/3/runs{view}"
    for uri, base in [
        ("http://bob:***@mlflow.example:5000", "http://mlflow.example:5000"),
        ("https://bob:top/se?cret@mlflow.example/prefix/", "https://mlflow.example/prefix"),
        ("HTTP://[::1]:5000", "http://[::1]:5000"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://bob:pw@host:notaport", None),
        ("sqlite:////tmp/mlruns.db", None),
        ("postgresql://u:pw@127.0.0.1:5432/db", None),
    ]:
        assert ui_base(uri) == base, uri
    summary = dict(experiment="e", parent_run="abc", runs=1, skipped=0, trained=1)
    summary.update(diverged=0, remaining=0, shards=1)
    served = SweepSummary(tracking_uri="http://u:***@h:5000", experiment_id="7", **summary)
    assert _look(served, "c.yaml") == f"http://h:5000/#/experiments/7/runs/abc{view}"
    local = SweepSummary(tracking_uri="sqlite:///m.db", experiment_id="7", **summary)
    assert _look(local, "c.yaml").startswith("realspace ui c.yaml")


def test_a_write_cut_short_by_a_full_disk_names_the_file_and_leaves_no_half(tmp_path):
    """A full disk (here: a writer that fails as the kernel would) raises NoSpace naming
    the file and what to do; the temporary half is gone; the error keeps its class and
    errno across a pickle (it comes back from a Ray worker that way)."""
    import errno
    import pickle

    from realspace.tracking.artifacts import NoSpace, atomic_write

    def fills_the_disk(fh):
        fh.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "piece.parquet"
    with pytest.raises(NoSpace, match=r"no space to write .*piece\.parquet \(No space left"):
        atomic_write(target, fills_the_disk)
    assert list(tmp_path.iterdir()) == []
    try:
        atomic_write(target, fills_the_disk)
    except NoSpace as e:
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is NoSpace and back.errno == errno.ENOSPC and str(back) == str(e)
    with pytest.raises(ValueError):  # any other failure is itself, and leaves no half either
        atomic_write(target, lambda fh: (fh.write(b"x"), int("x")))
    assert list(tmp_path.iterdir()) == []


REFUSALS = {
    "an artifact upload (requests' HTTPError)": lambda status: _http_error(status),
    "a REST call (MlflowException)": lambda status: _mlflow_error(status),
}


def _http_error(status):
    import requests

    reply = requests.Response()
    reply.status_code = status
    return requests.HTTPError(f"{status} Client Error for url: http://u:pw@h/x", response=reply)


def _mlflow_error(status):
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2 as codes

    code = {401: codes.UNAUTHENTICATED, 403: codes.PERMISSION_DENIED, 500: codes.INTERNAL_ERROR}
    return MlflowException("API request to http://u:pw@h/x failed", error_code=code[status])


@pytest.mark.parametrize("source", REFUSALS)
def test_refused_credentials_fail_a_shard_at_once_and_stop_the_sweep(monkeypatch, source):
    """A tracking server that refuses a worker's credentials (HTTP 401 or 403) refuses
    every retry: the piece's write is not retried (it waited 100 s per piece), nor the
    shard (which trained again each time), and the driver hands out no more shards
    (``files.hopeless``), as for a full disk. Other server errors are retried as before."""
    import errno
    import pickle

    import realspace.tasks.train as train_task
    from realspace.files import hopeless
    from realspace.tracking.artifacts import Refused

    class Client:
        def __init__(self, status):
            self.status, self.calls = status, 0

        def log_artifact(self, *args):
            self.calls += 1
            raise REFUSALS[source](self.status)

    slept = []
    monkeypatch.setattr(train_task.time, "sleep", slept.append)
    cells = {"k": {"cell": "c", "run_id": "r", "artifact_uri": "mlflow-artifacts:/1/r/artifacts"}}
    record = {"ignored": None}
    monkeypatch.setattr("realspace.tracking.tables.piece_rows", lambda *a: [{"run_key": "k"}])
    monkeypatch.setattr("realspace.tracking.tables.piece_arrays", lambda *a: {"x": np.zeros(1)})
    for status in (401, 403):
        client = Client(status)
        with pytest.raises(Refused, match=f"refused this worker's credentials \\(HTTP {status}\\)"):
            train_task._write_pieces(client, "s", ["k"], [record], cells, None)
        assert client.calls == 1 and slept == []
    try:
        train_task._write_pieces(Client(401), "s", ["k"], [record], cells, None)
    except Refused as e:
        back = pickle.loads(pickle.dumps(e))  # as it comes back from a Ray worker
        assert hopeless(back) and back.errno == errno.EACCES and "pw" not in str(back)
        state = type("State", (), {"data": back})
        assert train_task._retry_unless_hopeless(None, None, state) is False
    # a server error is no refusal: retried with the backoff, then raised as it is
    client = Client(500)
    with pytest.raises(Exception) as info:
        train_task._write_pieces(client, "s", ["k"], [record], cells, None)
    assert not isinstance(info.value, Refused) and not hopeless(info.value)
    assert client.calls == 1 + len(train_task.WRITE_DELAYS)
    assert slept == list(train_task.WRITE_DELAYS)
