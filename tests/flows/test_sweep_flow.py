"""The sweep flow end to end (in-process task runner, temporary Prefect API), read back
through MlflowClient and pyarrow and compared with the trainer's own records; its analysis stages
and the report it ends with."""

import re
from pathlib import Path

import numpy as np
import pytest
from factories import SIN_AND_TEACHER, sweep_config
from sweepstate import planned, sweep_state

from realspace.tracking import SweepReader, load_runs
from realspace.train import train_and_record

DOC = sweep_config(
    name="tiny",
    targets=SIN_AND_TEACHER,
    widths=[2, 3],
    seeds=2,
    optimizer={"steps": 60, "lr": 0.02},
    data={"n_samples": 32},
    analysis={
        "pathology_max_log2": 5,
        "retrain_widths": [3],
        "retrain_deltas": [0.01],
        "retrain_kinds": ["add", "scale"],
        "retrain_steps": 40,
        "stability_widths": [3],
        "stability_seeds": 2,
        "stability_deltas": [1e-2, 1e-3, 1e-4],
    },
)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def swept(prefect_harness, tmp_path_factory):
    from realspace.flows.sweep import sweep_flow

    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlruns.db'}"
    first = sweep_flow(DOC, uri, progress=False, report_dir=str(folder / "report"))
    return uri, first


def _children(client, uri):
    state = sweep_state(uri, "tiny")
    return state.parent, state.cells, state.units


def test_flow_writes_every_network_once_into_its_cell(swept):
    from mlflow.tracking import MlflowClient

    uri, summary = swept
    runs, _ = planned(DOC)
    assert summary.trained == len(runs) == 16 and summary.remaining == 0
    state = sweep_state(uri, "tiny")
    assert state.parent.info.status == "FINISHED"
    # 2 targets x 2 parametrizations x 2 widths; each cell's 2 seeds in its table
    assert len(state.cells) == 8 and {c.info.status for c in state.cells} == {"FINISHED"}
    assert sorted(state.keys) == sorted(r.key for r in runs)  # each once
    for c in state.cells:
        assert c.data.metrics["networks"] == 2 and "networks.html" in {
            f.path for f in MlflowClient(uri).list_artifacts(c.info.run_id)
        }
    # a small sweep (at most 64 networks) also has a run per network, under its cell
    assert sorted(n.data.tags["realspace.run_key"] for n in state.networks) == sorted(
        r.key for r in runs
    )
    assert {n.info.status for n in state.networks} == {"FINISHED"}


def test_analysis_units_are_logged_once_each_with_their_tables(swept):
    from mlflow.tracking import MlflowClient

    uri, summary = swept
    _, units = planned(DOC)
    # 6 pathology families; 8 cells with 2 seeds; sin and teacher at width 3, 2 targets
    # each; a witness unit per unrestricted problem; stability per problem and
    # parametrization
    stages = ("pathology", "seed_pairs", "retrain", "witness", "stability")
    assert [sum(u.stage == s for u in units) for s in stages] == [6, 8, 4, 2, 4]
    _, _, stages = _children(MlflowClient(uri), uri)
    assert sorted(c.data.tags["realspace.run_key"] for c in stages) == sorted(u.key for u in units)
    assert summary.analysis_units == len(units) and summary.failed_units == []

    reader = SweepReader(DOC, uri)
    path = reader.stage("pathology")
    assert len(path) == 6 * 5
    p1b = [r for r in path if r["family"] == "P1b"]
    assert all(r["r_half_raw"] == pytest.approx(np.sqrt(2), rel=1e-9) for r in p1b)
    retrain = reader.stage("retrain")
    assert len(retrain) == 4 * 2 and {r["kind"] for r in retrain} == {"add", "scale"}
    assert all(r["d_W"] == pytest.approx(0.01, rel=1e-9) for r in retrain)
    pairs = reader.stage("seed_pairs")
    assert len(pairs) == 8  # one pair per cell of two seeds
    witness = reader.stage("witness")
    runs = load_runs(DOC, uri)
    unrestricted = set(runs.loc[runs["parametrization"] == "unrestricted", "run_key"])
    assert {r["run_key"] for r in witness} == unrestricted and len(witness) == 8
    stability = [r for r in reader.stage("stability") if r["parametrization"] == "restricted"]
    assert len(stability) == 2 * 2 * 3 * 3  # targets x seeds x kinds x deltas, at width 3
    assert all(r["d_W"] == pytest.approx(r["delta"], rel=1e-9) for r in stability)
    assert all(r["d_P_bound"] == "exact" for r in stability)


def test_the_report_is_written_and_logged_to_the_parent(swept):
    import matplotlib.image as plt_image
    from mlflow.tracking import MlflowClient

    uri, summary = swept
    folder = Path(summary.report)
    for name in (
        "gap_vs_width",
        "spurious_vs_width",
        "inverse_stability",
        "census_vs_width",
        "gallery",
        "witness",
    ):
        data = (folder / f"{name}.png").read_bytes()
        assert data.startswith(PNG)
        pixels = plt_image.imread(folder / f"{name}.png")  # decodes: a valid PNG
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400 and pixels.std() > 0.01
    md = (folder / "report.md").read_text()
    verdicts = re.findall(r"^\| ([1-4]) \| (supported|not supported|inconclusive) \|", md, re.M)
    assert [v[0] for v in verdicts] == ["1", "2", "3", "4"]
    assert all(f"Claim {c} ({v})" in md for c, v in verdicts)  # with its evidence
    html = (folder / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "<table" in html
    client = MlflowClient(uri)
    parent, _, _ = _children(client, uri)
    logged = {f.path for f in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/report.html", "report/gallery.png"} <= logged
    # per-cell aggregates as metrics with step = width: MLflow draws gap vs width
    gap = [k for k in parent.data.metrics if k.startswith("gap_median/")]
    assert gap
    steps = {m.step for m in client.get_metric_history(parent.info.run_id, gap[0])}
    assert steps == {2, 3}


def test_tables_hold_the_trainers_records(swept):
    """Each network's row, end point and loss curve in its cell's table and arrays, and
    its own run, against the same runs trained again alone."""
    from mlflow.tracking import MlflowClient

    uri, _ = swept
    client = MlflowClient(uri)
    state = sweep_state(uri, "tiny")
    rows = {r["run_key"]: r for r in state.rows}
    nets = {n.data.tags["realspace.run_key"]: n for n in state.networks}
    reader = SweepReader(DOC, uri)
    runs = planned(DOC)[0][::3]  # trained alone: a run never depends on its shard
    records = [train_and_record([r.spec])[0] for r in runs]
    ends = reader.params_by_key([r.key for r in runs])
    for run, rec, end in zip(runs, records, ends, strict=True):
        row, child = rows[run.key], nets[run.key]
        spec = rec.spec
        assert (row["width"], row["seed"]) == (spec.width, spec.seed)
        assert row["parametrization"] == spec.parametrization
        assert row["loss"] == pytest.approx(rec.loss, rel=1e-4)
        assert row["certified"] == rec.certified and row["run_status"] == rec.status
        np.testing.assert_allclose(end["a"], rec.params["a"], rtol=1e-5, atol=1e-7)
        assert child.data.params["width"] == str(spec.width)
        assert child.data.params["seed"] == str(spec.seed)
        assert child.data.tags["target"].startswith(spec.target)
        assert child.data.metrics["loss"] == row["loss"]
        history = client.get_metric_history(child.info.run_id, "train_objective")
        assert 0 < len(history) <= 200
        folder = Path(client.download_artifacts(child.info.run_id, ""))
        with np.load(folder / "end_point.npz") as z:
            np.testing.assert_array_equal(z["c"], end["c"])
        assert (folder / "realization.svg").read_text().startswith("<svg")


def test_rerun_skips_everything_and_creates_nothing(swept):

    from realspace.flows.sweep import sweep_flow

    uri, _ = swept
    before = sweep_state(uri, "tiny")
    again = sweep_flow(DOC, uri, progress=False, analysis=True, report_dir=None)
    assert again.trained == 0 and again.skipped == 16 and again.analysis_units == 0
    after = sweep_state(uri, "tiny")
    assert sorted(after.keys) == sorted(before.keys) and after.pieces == before.pieces
    for kind in ("cells", "units", "networks"):
        ids = [sorted(r.info.run_id for r in getattr(s, kind)) for s in (before, after)]
        assert ids[0] == ids[1], kind


def test_load_runs_reads_one_typed_row_per_network(swept):
    uri, _ = swept
    df = load_runs(DOC, uri)
    runs, _ = planned(DOC)
    assert len(df) == 16 and sorted(df["run_key"]) == sorted(r.key for r in runs)
    assert df["width"].dtype.kind == "i" and df["lr"].dtype.kind == "f"
    assert df["certified"].dtype == bool and set(df["parametrization"]) == {
        "unrestricted",
        "restricted",
    }
    rows = {r["run_key"]: r for r in sweep_state(uri, "tiny").rows}
    for _, row in df.iterrows():
        assert row["loss"] == rows[row["run_key"]]["loss"]
        assert row["objective"] == rows[row["run_key"]]["objective"]
    from realspace.stats import specs_of

    by_key = {r.key: r.spec for r in runs}
    assert specs_of(df.iloc[:4]) == [by_key[k] for k in df["run_key"][:4]]
    assert (df["steps"] == 60).all() and (df["steps_taken"] <= 60).all()  # budget vs taken


def test_the_report_reads_the_store_once(swept, tmp_path, search_queries):
    """publish_report reads through one SweepReader: one query for the parent, one for its
    children (not one per stage and per frame)."""
    from realspace.report.publish import publish_report

    uri, _ = swept
    report = publish_report(DOC, uri, out_dir=tmp_path, log=False)
    assert len(search_queries) == 2, search_queries
    assert (tmp_path / "report.md").exists() and report.verdicts


def test_the_report_is_the_same_without_the_columns_it_leaves_unread(swept, tmp_path, monkeypatch):
    """The report reads the tables without ``UNREAD``'s columns (to hold less at scale),
    and is byte for byte the report built from every column: no statistic, table or
    figure of it reads a column left unread."""
    from realspace.report import publish as P

    uri, _ = swept
    lean = P.publish_report(DOC, uri, out_dir=tmp_path / "lean", log=False)
    frame = SweepReader(DOC, uri).runs(omit=P.UNREAD)
    assert not set(P.UNREAD) & set(frame.columns)
    monkeypatch.setattr(P, "UNREAD", ())
    whole = P.publish_report(DOC, uri, out_dir=tmp_path / "whole", log=False)
    for name in ("report.md", "report.html"):
        assert (tmp_path / "lean" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert lean.verdicts == whole.verdicts and lean.metrics == whole.metrics


def test_shards_are_handed_over_in_order_a_window_at_a_time(prefect_harness):
    """in_order submits items in their order with at most `window` in flight and yields
    each future once. (Two tasks on two threads may start in either order, so the order
    checked is the submissions', which is what in_order decides.)"""
    import threading
    import time

    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    from realspace.flows.sweep import in_order

    started, finished, order, lock = [], set(), [], threading.Lock()

    @task
    def work(i: int, seconds: float) -> int:
        with lock:
            started.append(i)
        time.sleep(seconds)
        with lock:
            finished.add(i)
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def run(window: int) -> tuple[list, int]:
        submitted, most, got = set(), 0, []

        def submit(i):
            nonlocal most
            order.append(i)
            submitted.add(i)
            with lock:
                most = max(most, len(submitted - finished))  # in flight: not finished
            return work.submit(i, 0.05 * (i % 3))

        for fut, i in in_order(submit, range(8), window):
            assert fut.result() == i
            got.append(i)
        return got, most

    got, most = run(3)
    assert sorted(got) == list(range(8)) and most <= 3
    assert order == list(range(8)) and sorted(started) == list(range(8))


def test_once_told_to_stop_in_order_submits_nothing_more_and_yields_what_flies(prefect_harness):
    """A full disk stops the handing out of shards: after ``stop()`` turns true no item
    is submitted, and every item submitted before is still yielded once."""
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    from realspace.flows.sweep import in_order

    @task
    def work(i: int) -> int:
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def run() -> tuple[list, list]:
        submitted, got = [], []

        def submit(i):
            submitted.append(i)
            return work.submit(i)

        for fut, i in in_order(submit, range(8), 3, stop=lambda: bool(got)):
            assert fut.result() == i
            got.append(i)
        return submitted, got

    submitted, got = run()
    # the window of 3, and the one submitted as the first result came back (before the
    # caller saw it and asked to stop); then nothing more
    assert submitted == [0, 1, 2, 3] and sorted(got) == submitted
