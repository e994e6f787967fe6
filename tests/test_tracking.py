"""The tracking layer on its own (no flow): reconciling a parent's children after a crash,
and reading a sweep back through one SweepReader."""

import os

import pytest

os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")

from realspace.sweep.config import parse_config  # noqa: E402
from realspace.sweep.plan import plan_runs, sweep_key  # noqa: E402
from realspace.tracking import SweepReader, load_runs  # noqa: E402
from realspace.tracking.layout import KEY_TAG, PARENT_TAG  # noqa: E402
from realspace.tracking.runs import Reconciled, SweepStore  # noqa: E402

DOC = {
    "name": "reader-check",
    "targets": [{"name": "sin"}],
    "parametrizations": ["unrestricted"],
    "widths": [2],
    "seeds": 3,
    "optimizer": {"steps": 20, "lr": 0.02},
    "data": {"n_samples": 16},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sweep of three planned runs: the first logged (FINISHED), the second left
    RUNNING and the third FAILED by an "interrupted" attempt."""
    from realspace.train import train_and_record

    cfg = parse_config(DOC)
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlruns.db'}"
    runs = plan_runs(cfg)
    st = SweepStore(uri, cfg.name)
    parent = st.parent_run(sweep_key(cfg), cfg.name)
    [record] = train_and_record([runs[0].spec])
    st.log_shard(parent, "shard-0", [runs[0].key], [record])
    for run, status in zip(runs[1:], ("RUNNING", "FAILED"), strict=True):
        child = st.client.create_run(
            st.experiment_id, tags={PARENT_TAG: parent, KEY_TAG: run.key}
        ).info.run_id
        if status != "RUNNING":
            st.client.set_terminated(child, status)
    return uri, st, parent, runs


def test_the_reader_reports_each_planned_run(store):
    uri, _, _, runs = store
    reader = SweepReader(DOC, uri)
    assert [r.key for r in reader.planned] == [r.key for r in runs]
    assert reader.status() == {
        runs[0].key: "done",
        runs[1].key: "running",
        runs[2].key: "failed",
    }
    df = reader.runs()
    assert list(df["run_key"]) == [runs[0].key]  # FINISHED only
    assert load_runs(DOC, uri).equals(df)
    [by_row] = reader.params(df)
    [by_id] = reader.params_by_id(list(df["run_id"]))
    assert sorted(by_row) == ["a", "b", "c", "e", "w"]
    assert all((by_row[k] == by_id[k]).all() for k in by_row)


def test_the_reader_lists_the_children_once(store, search_queries):
    """Every answer comes from one query of the parent's children (and one for the
    parent), however many questions are asked."""
    uri, _, _, _ = store
    reader = SweepReader(DOC, uri)
    reader.status()
    df = reader.runs()
    reader.stage("pathology")
    reader.params_by_id(list(df["run_id"]))
    assert len(search_queries) == 2, search_queries


def test_reconcile_keeps_the_finished_and_deletes_the_rest(store):
    _, st, parent, runs = store
    first = st.reconcile(parent)
    assert isinstance(first, Reconciled) and first.deleted == 2
    assert list(first.done) == [runs[0].key]
    again = st.reconcile(parent)  # nothing left to clean
    assert again == Reconciled(first.done, 0)
    assert SweepReader(DOC, st.uri).status()[runs[1].key] == "pending"


def test_a_missing_store_is_reported_not_created(tmp_path):
    db = tmp_path / "mlruns.db"
    with pytest.raises(LookupError, match="no tracking store at .*run the sweep first"):
        SweepReader(DOC, f"sqlite:///{db}")
    assert not db.exists()
    SweepStore(f"sqlite:///{db}", "another-sweep")  # a store, without this sweep in it
    with pytest.raises(LookupError, match="'reader-check' has no runs"):
        load_runs(DOC, f"sqlite:///{db}")


def test_status_read_with_sql_matches_the_client(store, tmp_path):
    """The read-only SQL path of `realspace status` against MLflow's client on one store:
    the same state for every planned run (done, running, failed), and a deleted child is
    not counted (MLflow's default search sees active runs only)."""
    from realspace.tracking.reader import sweep_status
    from realspace.tracking.sqlite_status import child_statuses

    uri, st, parent, runs = store
    assert sweep_status(DOC, uri) == SweepReader(DOC, uri).status()
    db = uri.removeprefix("sqlite:///")
    assert child_statuses(db, DOC["name"], sweep_key(parse_config(DOC))) is not None  # known
    # a deleted FINISHED duplicate of the third run changes nothing (other tests of this
    # module may have reconciled the store, so its state is read first)
    before = sweep_status(DOC, uri)[runs[2].key]
    assert before != "done"
    extra = st.client.create_run(
        st.experiment_id, tags={PARENT_TAG: parent, KEY_TAG: runs[2].key}
    ).info.run_id
    st.client.set_terminated(extra, "FINISHED")
    st.client.delete_run(extra)
    assert sweep_status(DOC, uri)[runs[2].key] == before
    assert sweep_status(DOC, uri) == SweepReader(DOC, uri).status()
    # nothing there yet: every run pending, and no file created
    missing = tmp_path / "none" / "mlruns.db"
    assert set(sweep_status(DOC, f"sqlite:///{missing}").values()) == {"pending"}
    assert not missing.exists()
    other = {**DOC, "name": "never-ran"}
    assert set(sweep_status(other, uri).values()) == {"pending"}


def test_the_experiment_opens_on_its_runs_in_the_ui(store):
    """MLflow 3's UI opens an untagged experiment on its traces overview ("Traces: 0");
    a sweep's experiment carries the tag that makes the runs table its landing page."""
    from realspace.tracking.layout import EXPERIMENT_KIND

    _, st, _, _ = store
    exp = st.client.get_experiment(st.experiment_id)
    assert exp.tags.get(EXPERIMENT_KIND[0]) == EXPERIMENT_KIND[1]
