"""The sweep flow end to end (in-process task runner, temporary Prefect API), read back
through MlflowClient and compared with the trainer's own records."""

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from realspace.sweep.config import parse_config  # noqa: E402
from realspace.sweep.plan import plan_runs  # noqa: E402
from realspace.train import train_and_record  # noqa: E402

DOC = {
    "name": "tiny",
    "targets": [{"name": "sin"}, {"name": "teacher", "teacher_width": 2}],
    "widths": [2, 3],
    "seeds": 2,
    "optimizer": {"steps": 60, "lr": 0.02},
    "data": {"n_samples": 32},
}


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def swept(harness, tmp_path_factory):
    from realspace.flows.sweep import sweep_flow

    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlruns.db'}"
    first = sweep_flow(DOC, uri, progress=False)
    return uri, first


def test_flow_logs_one_finished_child_per_run(swept):
    from mlflow.tracking import MlflowClient

    uri, summary = swept
    runs = plan_runs(parse_config(DOC))
    assert summary["trained"] == len(runs) == 16 and summary["remaining"] == 0
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny")
    parents = client.search_runs([exp.experiment_id], "tags.`realspace.sweep_key` != ''")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = client.search_runs(
        [exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'"
    )
    assert sorted(c.data.tags["realspace.run_key"] for c in children) == sorted(r.key for r in runs)
    assert {c.info.status for c in children} == {"FINISHED"}


def test_children_hold_the_trainers_records(swept):
    from mlflow.tracking import MlflowClient

    uri, _ = swept
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny")
    by_key = {
        c.data.tags["realspace.run_key"]: c
        for c in client.search_runs([exp.experiment_id], "tags.`realspace.run_key` != ''")
    }
    runs = plan_runs(parse_config(DOC))[::3]  # trained alone: a run never depends on its shard
    records = [train_and_record([r.spec])[0] for r in runs]
    for run, rec in zip(runs, records, strict=True):
        child = by_key[run.key]
        spec = rec.spec
        assert child.data.params["width"] == str(spec.width)
        assert child.data.params["seed"] == str(spec.seed)
        assert child.data.params["parametrization"] == spec.parametrization
        assert child.data.tags["target"].startswith(spec.target)
        assert child.data.metrics["loss"] == pytest.approx(rec.loss, rel=1e-4)
        history = client.get_metric_history(child.info.run_id, "train_objective")
        assert 0 < len(history) <= 200
        folder = Path(client.download_artifacts(child.info.run_id, ""))
        params = np.load(folder / "params.npz")
        np.testing.assert_allclose(params["a"], rec.params["a"], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(params["canonical_c"], rec.canonical.c, rtol=1e-5, atol=1e-7)
        real = np.load(folder / "realization.npz")
        np.testing.assert_allclose(real["f"], rec.network(real["x"]), rtol=1e-9, atol=1e-12)
        assert (folder / "record.json").read_text().count(run.key) == 1


def test_rerun_skips_everything_and_creates_nothing(swept):
    from mlflow.tracking import MlflowClient
    from realspace.flows.sweep import sweep_flow

    uri, _ = swept
    again = sweep_flow(DOC, uri, progress=False)
    assert again["trained"] == 0 and again["skipped"] == 16
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny")
    assert len(client.search_runs([exp.experiment_id], "tags.`realspace.run_key` != ''")) == 16
