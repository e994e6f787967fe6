"""A classification sweep end to end through the flow (in-process task runner, temporary
Prefect API): binary logistic and 3-class cross-entropy runs in both parametrizations,
their end points read back from the store and scored again in numpy (float64), and the
report's classification section with its references."""

from pathlib import Path

import pytest
from factories import LIGHT_ANALYSIS, sweep_config

from realspace.core.problem import make_data, network_from_params
from realspace.core.restricted import in_restricted_set
from realspace.core.spec import RunSpec
from realspace.core.targets import classification_scores, cross_entropy_loss, logistic_loss
from realspace.tracking import SweepReader, load_runs

# a sweep through the flow with its analysis (convex references for both losses): 80 s
# here, so it runs with the slow tests; the shards' training, certificates and scores are
# checked in the default run by test_logistic.py and test_cross_entropy.py
pytestmark = pytest.mark.slow

DOC = sweep_config(
    name="classes",
    targets=[
        {"name": "spirals", "n_classes": 3, "weight_decay": 0.02},
        {"name": "teacher_labels", "teacher_width": 4, "teacher_seed": 2, "weight_decay": 0.01},
    ],
    input_dim=2,
    widths=[2, 4],
    seeds=2,
    optimizer={"steps": 200, "lr": 0.02},
    data={"n_samples": 24},
    execution={"dtype": "float64"},
    analysis={**LIGHT_ANALYSIS, "seed_pairs": 0},
)


@pytest.fixture(scope="module")
def swept(prefect_harness, tmp_path_factory):
    from realspace.flows.sweep import sweep_flow

    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlruns.db'}"
    summary = sweep_flow(DOC, uri, progress=False, report_dir=str(folder / "report"))
    return uri, summary


def test_every_classifier_is_stored_and_scores_again_from_its_end_point(swept):
    uri, summary = swept
    df = load_runs(DOC, uri)
    assert len(df) == 2 * 2 * 2 * 2 and summary.trained == 16
    ends = SweepReader(DOC, uri).params_by_key(list(df["run_key"]))
    for (_, row), end in zip(df.iterrows(), ends, strict=True):
        spec = RunSpec.from_row(row)
        net = network_from_params(end, spec.restricted)
        x, y = make_data(spec)
        assert net.outputs == (3 if spec.target == "spirals" else 1)
        loss = cross_entropy_loss(net, x, y) if net.outputs > 1 else logistic_loss(net, x, y)
        assert row["loss"] == pytest.approx(loss, rel=1e-9)
        accuracy, margin = classification_scores(net, x, y)
        assert row["accuracy"] == pytest.approx(accuracy)
        assert row["normalized_margin"] == pytest.approx(margin, rel=1e-9, abs=1e-12)
        if spec.restricted:
            assert in_restricted_set(net, spec.D)  # R1 with ||c_i||_2 for the 3 outputs


def test_the_report_gives_claim_1_for_the_classification_losses(swept):
    _, summary = swept
    folder = Path(summary.report)
    md = (folder / "report.md").read_text()
    assert "## Classification: claim 1 for the logistic and cross-entropy losses" in md
    section = md.split("## Classification")[1].split("\n## ")[0]
    # the 3-class unrestricted cells are judged against the relaxation's lower bound
    assert "convex_relaxation_lower_bound" in section
    assert "cross_entropy" in section and "logistic" in section
    assert (folder / "gallery.png").stat().st_size > 10_000  # decision regions drawn
